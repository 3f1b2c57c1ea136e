"""The raw ASGI app, called directly with hand-made scope, receive and send."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from ritornello import Endpoint
from ritornello.protocol import InvokeRequest, InvokeResponse

from ._handlers import ALL_SERVICES

APP = Endpoint(ALL_SERVICES, durability="batch").asgi()


def call(
    method: str, path: str, body: bytes = b"", *, chunk: int | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP exchange with the app: (status, headers, body)."""
    pieces = [body[i : i + chunk] for i in range(0, len(body), chunk)] if chunk else [body]
    incoming = [
        {"type": "http.request", "body": piece, "more_body": i < len(pieces) - 1}
        for i, piece in enumerate(pieces)
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "headers": [], "query_string": b""}
    asyncio.run(APP(scope, receive, send))  # type: ignore[arg-type]
    start, payload = sent
    assert start["type"] == "http.response.start" and payload["type"] == "http.response.body"
    headers = {k.decode(): v.decode() for k, v in start["headers"]}
    assert headers["content-length"] == str(len(payload["body"]))
    return start["status"], headers, payload["body"]


def _request(**changes: Any) -> bytes:
    request = InvokeRequest(
        "inv_a", "Greeter", "greet", None, 1, [{"kind": "input", "value": "Ada"}]
    )
    body = request.to_dict() | changes
    return json.dumps(body).encode()


def test_discover_and_health() -> None:
    status, headers, body = call("GET", "/discover")
    assert status == 200 and headers["content-type"] == "application/json"
    assert {s["name"] for s in json.loads(body)["services"]} >= {"Greeter", "Counter"}
    status, _, body = call("GET", "/health")
    assert status == 200 and json.loads(body) == {"status": "ok"}


@pytest.mark.parametrize("chunk", [None, 7])
def test_invoke(chunk: int | None) -> None:
    status, _, body = call("POST", "/invoke/Greeter/greet", _request(), chunk=chunk)
    assert status == 200
    response = InvokeResponse.decode(body)
    assert response.status == "done"
    assert response.entries[-1] == {"kind": "output", "value": "HELLO, ADA!"}


def test_the_same_bytes_as_in_process() -> None:
    _, _, over_http = call("POST", "/invoke/Greeter/greet", _request())
    inprocess = Endpoint(ALL_SERVICES, durability="batch").inprocess()
    assert asyncio.run(inprocess.invoke(_request())) == over_http


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{not json", "not JSON"),
        (_request(version=2), "version"),
        (_request(type="other"), "invoke"),
        (_request(journal=[]), "input"),
        (_request(handler="fail"), "the path Greeter/greet"),
    ],
)
def test_bodies_that_do_not_decode_get_400(body: bytes, fragment: str) -> None:
    status, _, answer = call("POST", "/invoke/Greeter/greet", body)
    assert status == 400
    assert fragment in json.loads(answer)["message"]


def test_a_request_that_decodes_but_is_wrong_is_an_error_answer() -> None:
    status, _, body = call(
        "POST", "/invoke/Counter/add", _request(service="Counter", handler="add")
    )
    assert status == 200
    response = InvokeResponse.decode(body)
    assert response.status == "error" and response.error is not None
    assert response.error["kind"] == "protocol"


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("POST", "/invoke/Greeter/nope", 404),
        ("POST", "/invoke/Nope/greet", 404),
        ("GET", "/invoke/Greeter/greet", 405),
        ("POST", "/discover", 405),
        ("DELETE", "/health", 405),
        ("GET", "/", 404),
        ("GET", "/invoke/Greeter", 404),
        ("POST", "/invoke/Greeter/greet/extra", 404),
    ],
)
def test_other_routes(method: str, path: str, status: int) -> None:
    got, headers, body = call(method, path, _request())
    assert got == status
    assert json.loads(body)["message"]
    if status == 405:
        assert headers["allow"] in {"GET", "POST"}


def test_lifespan() -> None:
    incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(APP({"type": "lifespan"}, receive, send))  # type: ignore[arg-type]
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


def _exchange(
    app: Any, path: str, headers: list[tuple[bytes, bytes]], pieces: list[bytes]
) -> tuple[int, dict[str, str], bytes, int]:
    """(status, headers, body, how many body messages the app read)."""
    incoming = [
        {"type": "http.request", "body": piece, "more_body": i < len(pieces) - 1}
        for i, piece in enumerate(pieces)
    ]
    read = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal read
        read += 1
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": path, "headers": headers}
    asyncio.run(app(scope, receive, send))
    start, payload = sent
    out = {k.decode(): v.decode() for k, v in start["headers"]}
    return start["status"], out, payload["body"], read


def test_bodies_past_max_request_bytes_get_413_as_soon_as_they_pass() -> None:
    limit = len(_request())
    app = Endpoint(ALL_SERVICES, max_request_bytes=limit).asgi()
    path = "/invoke/Greeter/greet"
    passed = limit // 60 + 1  # the message that takes the body past the limit
    status, headers, body, read = _exchange(app, path, [], [b"x" * 60] * 100)
    assert status == 413 and read == passed, (status, read)  # none read after it
    assert f"max_request_bytes ({limit:,} bytes" in json.loads(body)["message"]
    assert headers["connection"] == "close"
    stream = [(b"x-ritornello-stream", b"1")]
    status, _, _, read = _exchange(app, path, stream, [b"y" * 60] * 100)
    assert status == 413 and read == passed, (status, read)
    status, _, body, _ = _exchange(app, path, [], [_request()])  # exactly the limit
    assert status == 200, body


def test_a_signed_endpoint_refuses_before_reading_the_body() -> None:
    app = Endpoint(ALL_SERVICES, signing_secret="s3cret", max_request_bytes=100).asgi()
    path = "/invoke/Greeter/greet"
    fresh = str(int(time.time())).encode()
    for headers, status, why in [
        ([], 401, "unsigned request"),
        ([(b"x-ritornello-timestamp", b"0"), (b"x-ritornello-signature", b"v1=" + b"0" * 64)],
         401, "stale signature"),
        ([(b"x-ritornello-timestamp", fresh), (b"x-ritornello-signature", b"v1=zz")],
         401, "malformed"),
        ([(b"x-ritornello-timestamp", fresh), (b"x-ritornello-signature", b"v1=" + b"0" * 64),
          (b"x-ritornello-nonce", b"0123456789"), (b"x-ritornello-binding", b"v2=" + b"0" * 64),
          (b"content-length", b"101")], 413, "max_request_bytes"),
    ]:  # fmt: skip
        got, out, body, read = _exchange(app, path, headers, [b"z" * 101])
        assert (got, read) == (status, 0), (why, got, read)
        assert why in json.loads(body)["message"] and out["connection"] == "close"
