"""Signing on the Lambda paths: the orchestrator's Invoke payloads in the signed envelope,
through ``ritornello lambda-emulator`` (the real ``Endpoint.lambda_handler()`` behind Lambda's
Invoke API on loopback) and a real ``ritornello serve``; Function URL requests signed in
headers; a payload whose signed form would pass Lambda's limit gzipped first."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ritornello import Endpoint
from ritornello.orchestrator.invokers._lambda import MAX_PAYLOAD, encode_payload, sign_payload
from ritornello.protocol import Signer, Verifier
from ritornello.sdk._lambda import decode_envelope
from tests.auth.authapp import echo
from tests.integration.test_lambda import ARN
from tests.procs import LambdaEmulatorProcess, Orchestrator, aws_env, http

SECRET = "lambda-signing-secret-3e9f"
APP = str(Path(__file__).parent / "authapp.py")


@pytest.fixture(scope="module")
def emulator(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Path, LambdaEmulatorProcess]]:
    tmp = tmp_path_factory.mktemp("lambda-auth")
    emu = LambdaEmulatorProcess(tmp, APP, RITORNELLO_SIGNING_SECRET=SECRET).start()
    try:
        yield tmp, emu
    finally:
        emu.terminate()


def test_an_unsigned_invoke_is_refused(emulator: tuple[Path, LambdaEmulatorProcess]) -> None:
    _, emu = emulator
    url = f"http://127.0.0.1:{emu.port}/2015-03-31/functions/app/invocations"
    status, body, _ = http("POST", url, {"ritornello": "discover"})
    assert status == 200, body
    assert body["status"] == "error" and body["error"]["kind"] == "unauthorized", body
    assert "unsigned Lambda event" in body["error"]["message"]
    forged = json.loads(
        Signer("not-the-secret").lambda_payload(b'{"ritornello":"discover"}', time.time())
    )
    status, body, _ = http("POST", url, forged)
    assert body["error"]["kind"] == "unauthorized" and "bad signature" in body["error"]["message"]


def test_the_orchestrator_signs_discovery_and_invocations(
    emulator: tuple[Path, LambdaEmulatorProcess], tmp_path: Path
) -> None:
    tmp, emu = emulator
    wrong = Orchestrator(
        tmp_path, **aws_env(emu.port, tmp), RITORNELLO_SIGNING_SECRET="other"
    ).start()
    try:
        status, body, _ = http("POST", f"{wrong.admin}/deployments", {"arn": ARN})
        assert status == 502, body
        assert "refused: unauthorized: bad signature" in body["detail"], body
    finally:
        wrong.terminate()
    orch = Orchestrator(tmp, **aws_env(emu.port, tmp), RITORNELLO_SIGNING_SECRET=SECRET).start()
    try:
        status, body, _ = http("POST", f"{orch.admin}/deployments", {"arn": ARN})
        assert status == 201, (body, orch.output())
        status, body, _ = http(
            "POST",
            f"{orch.ingress}/restate/call/Echo/headers",
            "ada",
            headers={"x-trace-id": "t-77", "authorization": "Basic c2VjcmV0"},
        )
        assert status == 200, (body, orch.output())
        assert body["name"] == "ada"
        assert body["headers"]["x-trace-id"] == "t-77"
        assert body["headers"]["authorization"] == "[redacted]"
    finally:
        orch.terminate()


def url_event(method: str, path: str, body: str, headers: dict[str, str]) -> dict[str, object]:
    return {
        "version": "2.0",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"content-type": "application/json", **headers},
        "requestContext": {"http": {"method": method, "path": path}},
        "body": body,
        "isBase64Encoded": False,
    }


def test_function_url_requests_are_checked_from_their_headers() -> None:
    handler = Endpoint([echo], signing_secret=SECRET).lambda_handler()
    answer = handler(url_event("GET", "/discover", "", {}), None)
    assert answer["statusCode"] == 401, answer
    assert "unsigned request" in json.loads(answer["body"])["message"]
    assert "www-authenticate" in answer["headers"]
    signed = Signer(SECRET).headers("GET", "/discover", b"", time.time())
    answer = handler(url_event("GET", "/discover", "", signed), None)
    assert answer["statusCode"] == 200, answer
    assert json.loads(answer["body"])["services"][0]["name"] == "Echo"


def test_a_payload_too_big_once_signed_is_gzipped_first() -> None:
    # ~4.8 MB of JSON (under the 5 MiB gzip threshold) that doubles when escaped into a string
    body = json.dumps({"text": '"' * 2_400_000}).encode()
    payload = encode_payload(body)
    assert payload is body
    signed = sign_payload(Signer(SECRET), body, payload, time.time())
    assert len(signed) <= MAX_PAYLOAD
    inner = Verifier([SECRET]).open_lambda(json.loads(signed), time.time())
    assert inner["ritornello_encoding"] == "gzip"
    assert decode_envelope(inner) == json.loads(body)
