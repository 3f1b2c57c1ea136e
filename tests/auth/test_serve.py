"""Auth on a real ``ritornello serve`` with a real uvicorn endpoint, all on loopback: the admin
API's and the ingress's bearer tokens, requests signed end to end, request headers reaching the
handler with the configured ones redacted before they are journaled, and a signing secret that
does not match failing invocations loudly."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.procs import Endpoint, Orchestrator, http, wait_until

HERE = Path(__file__).parent
ADMIN_TOKEN = "admin-token-7f3a9c"
INGRESS_TOKEN = "ingress-token-b41e02"
SECRET = "signing-secret-5d8e17"
ADMIN = {"authorization": f"Bearer {ADMIN_TOKEN}"}
INGRESS = {"authorization": f"Bearer {INGRESS_TOKEN}"}


class Stack:
    def __init__(self, tmp: Path, orch: Orchestrator, endpoint: Endpoint) -> None:
        self.tmp, self.orch, self.endpoint = tmp, orch, endpoint


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("serve-auth")
    endpoint = Endpoint(tmp, HERE, "authapp", RITORNELLO_SIGNING_SECRET=SECRET).start()
    orch = Orchestrator(
        tmp,
        RITORNELLO_ADMIN_TOKEN=ADMIN_TOKEN,
        RITORNELLO_INGRESS_TOKEN=INGRESS_TOKEN,
        RITORNELLO_SIGNING_SECRET=SECRET,
    )
    try:
        orch.start()
        status, body, _ = http(
            "POST", f"{orch.admin}/deployments", {"uri": endpoint.uri}, headers=ADMIN
        )
        assert status == 201, (body, orch.output())
        yield Stack(tmp, orch, endpoint)
    finally:
        orch.terminate()
        endpoint.terminate()


def refused(status: int, body: Any, headers: dict[str, str], key: str) -> bool:
    challenge = {k.lower(): v for k, v in headers.items()}.get("www-authenticate", "")
    return status == 401 and challenge.startswith("Bearer") and isinstance(body[key], str)


def test_admin_requires_its_token(stack: Stack) -> None:
    admin = stack.orch.admin
    paths = ("/deployments", "/invocations", "/version", "/openapi.json", "/no-such-path")
    for path in (*paths, "/services/Echo/openapi"):
        assert refused(*http("GET", f"{admin}{path}"), "detail"), path
        wrong = {"authorization": "Bearer not-the-token"}
        assert refused(*http("GET", f"{admin}{path}", headers=wrong), "detail"), path
        # the ingress's token is not the admin's
        assert refused(*http("GET", f"{admin}{path}", headers=INGRESS), "detail"), path
    status, body, _ = http("DELETE", f"{admin}/deployments/dp_x")
    assert status == 401, body
    status, body, _ = http("GET", f"{admin}/deployments", headers=ADMIN)
    assert status == 200 and len(body["deployments"]) == 1, body
    assert http("GET", f"{admin}/health")[0] == 200  # load balancers' check: no token
    assert http("HEAD", f"{admin}/health")[:2] == (200, None)
    status, doc, _ = http("GET", f"{admin}/openapi.json", headers=ADMIN)
    assert status == 200
    assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert doc["security"] == [{"bearerAuth": []}]
    assert doc["paths"]["/health"]["get"]["security"] == []
    assert "401" in doc["paths"]["/deployments"]["get"]["responses"]


def test_ingress_requires_its_token(stack: Stack) -> None:
    url = f"{stack.orch.ingress}/restate/call/Echo/headers"
    assert refused(*http("POST", url, "ada"), "message")
    wrong = {"authorization": "Bearer not-the-token"}
    assert refused(*http("POST", url, "ada", headers=wrong), "message")
    assert refused(*http("POST", url, "ada", headers=ADMIN), "message")
    assert refused(*http("GET", f"{stack.orch.ingress}/restate/attach/inv_x"), "message")
    status, body, _ = http("POST", url, "ada", headers=INGRESS)
    assert status == 200 and body["name"] == "ada", (body, stack.orch.output())


def test_a_signed_multi_step_invocation_streams_with_bound_acks(stack: Stack) -> None:
    """After its first checkpoint the handler is invoked streamed: each ack carries its MAC
    over the request's binding (the endpoint checks them), and the steps run to the end."""
    status, body, rh = http(
        "POST", f"{stack.orch.ingress}/restate/call/Steps/count", 6, headers=INGRESS
    )
    assert status == 200 and body == 15, (body, stack.orch.output())
    inv = {k.lower(): v for k, v in rh.items()}["x-restate-id"]
    status, detail, _ = http("GET", f"{stack.orch.admin}/invocations/{inv}", headers=ADMIN)
    assert not detail.get("last_failure"), detail  # no ack was refused: no attempt failed
    assert detail.get("attempt", 1) == 1, detail


def test_headers_reach_the_handler_redacted_and_secrets_never_reach_the_store(
    stack: Stack,
) -> None:
    secrets = {"x-api-key": "apikey-SECRET-91c2", "cookie": "session=COOKIE-SECRET-77ab"}
    status, body, rh = http(
        "POST",
        f"{stack.orch.ingress}/restate/call/Echo/headers",
        "grace",
        headers={**INGRESS, **secrets, "x-trace-id": "trace-VISIBLE-4410"},
    )
    assert status == 200, (body, stack.orch.output())
    seen = body["headers"]
    assert seen["x-trace-id"] == "trace-VISIBLE-4410"
    assert seen["x-api-key"] == seen["cookie"] == seen["authorization"] == "[redacted]"
    inv = {k.lower(): v for k, v in rh.items()}["x-restate-id"]
    status, detail, _ = http("GET", f"{stack.orch.admin}/invocations/{inv}", headers=ADMIN)
    assert status == 200 and detail["status"] == "completed", detail

    def stored() -> bytes:  # the database and its write-ahead log, as they are on disk
        return b"".join(p.read_bytes() for p in stack.tmp.glob("ritornello.db*"))

    wait_until(lambda: b"trace-VISIBLE-4410" in stored(), 10, "the journaled headers on disk")
    data = stored()
    for secret in (*secrets.values(), INGRESS_TOKEN, ADMIN_TOKEN, SECRET):
        assert secret.encode() not in data, secret


def test_a_signing_secret_that_does_not_match_fails_invocations_loudly(tmp_path: Path) -> None:
    endpoint = Endpoint(tmp_path, HERE, "authapp", RITORNELLO_SIGNING_SECRET=SECRET).start()
    orch = Orchestrator(
        tmp_path, RITORNELLO_SIGNING_SECRET="the-old-secret", RITORNELLO_RETRY_MAX_MS="200"
    )
    try:
        orch.start()
        status, body, _ = http("POST", f"{orch.admin}/deployments", {"uri": endpoint.uri})
        assert status == 502, body  # discovery itself is refused
        assert "401" in body["detail"] and "bad signature" in body["detail"], body
        # registered while the secrets matched, then the endpoint's secret changes under it
        orch.terminate()
        orch = Orchestrator(
            tmp_path, RITORNELLO_SIGNING_SECRET=SECRET, RITORNELLO_RETRY_MAX_MS="200"
        )
        orch.start()
        status, body, _ = http("POST", f"{orch.admin}/deployments", {"uri": endpoint.uri})
        assert status == 201, body
        endpoint.terminate()
        endpoint.env["RITORNELLO_SIGNING_SECRET"] = "a-rotated-secret"
        endpoint.start()
        status, body, _ = http("POST", f"{orch.ingress}/restate/send/Echo/headers", "ada")
        assert status == 202, body
        inv = body["invocationId"]

        def failure() -> str:
            got = http("GET", f"{orch.admin}/invocations/{inv}")[1]
            return str(got.get("last_failure") or "")

        wait_until(failure, 20, "a failed attempt")
        text = failure()
        assert "refused" in text and "401" in text and "bad signature" in text, text
        assert http("GET", f"{orch.admin}/invocations/{inv}")[1]["status"] != "completed"
    finally:
        orch.terminate()
        endpoint.terminate()
