"""A handler endpoint with a signing secret, served by a real uvicorn on loopback: it refuses
unsigned, badly signed and stale requests with 401 before looking at them, and answers the
signed ones; without a secret it answers everything (local development)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ritornello.protocol import Signer
from tests.procs import Endpoint, http

HERE = Path(__file__).parent
SECRET = "endpoint-secret-0123456789"
INVOKE = "/invoke/Echo/headers"
BODY = json.dumps(
    {
        "version": 1,
        "type": "invoke",
        "id": "inv_1testtesttesttesttest",
        "service": "Echo",
        "handler": "headers",
        "key": None,
        "attempt": 1,
        "journal": [{"kind": "input", "value": "ada", "headers": {"x-trace": "t-1"}}],
        "completions": [],
        "state": None,
    }
).encode()


@pytest.fixture(scope="module")
def signed_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoint]:
    tmp = tmp_path_factory.mktemp("signed-endpoint")
    endpoint = Endpoint(tmp, HERE, "authapp", RITORNELLO_SIGNING_SECRET=SECRET).start()
    try:
        yield endpoint
    finally:
        endpoint.terminate()


def signed(secret: str, method: str, path: str, body: bytes, at: float | None = None) -> dict:
    return Signer(secret).headers(method, path, body, time.time() if at is None else at)


def test_unsigned_requests_are_refused_with_401(signed_endpoint: Endpoint) -> None:
    base = signed_endpoint.uri
    status, body, headers = http("GET", f"{base}/discover")
    assert status == 401, body
    assert "unsigned request" in body["message"] and "signing secret" in body["message"]
    assert "www-authenticate" in {k.lower() for k in headers}
    status, body, _ = http("POST", f"{base}{INVOKE}", raw=BODY)
    assert status == 401 and "unsigned request" in body["message"]
    # refused before routing: an unsigned caller cannot even learn which handlers exist
    status, body, _ = http("POST", f"{base}/invoke/Nope/nothing", raw=BODY)
    assert status == 401
    assert http("GET", f"{base}/health")[0] == 200  # liveness stays open


def test_bad_or_stale_signatures_are_refused(signed_endpoint: Endpoint) -> None:
    base = signed_endpoint.uri
    wrong = signed("another-secret", "POST", INVOKE, BODY)
    status, body, _ = http("POST", f"{base}{INVOKE}", raw=BODY, headers=wrong)
    assert status == 401 and "bad signature" in body["message"], body
    other_body = BODY.replace(b'"ada"', b'"eve"')
    moved = signed(SECRET, "POST", INVOKE, BODY)  # signed for another body
    status, body, _ = http("POST", f"{base}{INVOKE}", raw=other_body, headers=moved)
    assert status == 401 and "bad signature" in body["message"], body
    stale = signed(SECRET, "POST", INVOKE, BODY, at=time.time() - 3600)
    status, body, _ = http("POST", f"{base}{INVOKE}", raw=BODY, headers=stale)
    assert status == 401 and "stale signature" in body["message"], body


def test_signed_requests_are_answered(signed_endpoint: Endpoint) -> None:
    base = signed_endpoint.uri
    status, body, _ = http(
        "GET", f"{base}/discover", headers=signed(SECRET, "GET", "/discover", b"")
    )
    assert status == 200 and body["services"][0]["name"] == "Echo", body
    headers = signed(SECRET, "POST", INVOKE, BODY)
    status, body, _ = http("POST", f"{base}{INVOKE}", raw=BODY, headers=headers)
    assert status == 200, body
    assert body["status"] == "done"
    assert body["entries"][-1]["value"] == {"name": "ada", "headers": {"x-trace": "t-1"}}


def test_an_endpoint_without_a_secret_answers_unsigned_requests(tmp_path: Path) -> None:
    endpoint = Endpoint(tmp_path, HERE, "authapp", RITORNELLO_SIGNING_SECRET="").start()
    try:
        status, body, _ = http("GET", f"{endpoint.uri}/discover")
        assert status == 200, body
        status, body, _ = http("POST", f"{endpoint.uri}{INVOKE}", raw=BODY)
        assert status == 200 and body["status"] == "done", body
    finally:
        endpoint.terminate()
