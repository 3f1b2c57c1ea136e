"""A hostile handler endpoint for the answer-limit tests (uvicorn ``hostile_endpoint:app``).

Its environment says how it misbehaves:

- ``HOSTILE_DISCOVERY_BYTES``: ``GET /discover`` answers that many bytes (chunked, no end in
  sight of a JSON reader); otherwise a discovery of one service, ``Huge/answer``;
- ``HOSTILE_ANSWER_BYTES``: ``POST /invoke/Huge/answer`` answers that many bytes;
- ``HOSTILE_LINE_BYTES``: discovery offers streamed attempts; a plain invoke answers a
  ``checkpoint`` (so the orchestrator streams the next attempt), a streamed one starts its answer
  and sends one line of that many bytes that never reaches its newline.

It writes 1 MiB at a time, as a peer that does not care what the reader can hold.
"""

from __future__ import annotations

import json
import os
from typing import Any

_MIB = b"x" * (1 << 20)
_SERVICES = [{"name": "Huge", "kind": "service", "handlers": [{"name": "answer"}]}]
_CHECKPOINT = b'{"version":1,"status":"checkpoint","entries":[{"kind":"run","name":"a","value":1}]}'


async def _drain(receive: Any) -> bool:
    """Read the request body; False if the client went away."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return False
        if not message.get("more_body", False):
            return True


def _discovery() -> bytes:
    doc = {"version": 1, "protocol": {"min": 1, "max": 1}, "services": _SERVICES}
    if os.environ.get("HOSTILE_LINE_BYTES"):
        doc["stream"] = True
    return json.dumps(doc).encode()


async def _answer(send: Any, body: bytes) -> None:
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _flood(send: Any, size: int, head: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    sent = len(head)
    await send({"type": "http.response.body", "body": head, "more_body": True})
    while sent < size:
        piece = _MIB[: min(len(_MIB), size - sent)]
        await send({"type": "http.response.body", "body": piece, "more_body": True})
        sent += len(piece)
    await send({"type": "http.response.body", "body": b""})


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    path = scope["path"]
    if (b"x-ritornello-stream", b"1") in scope["headers"]:
        await receive()  # the request line, at least: its body never ends (it waits for acks)
        await _flood(send, int(os.environ["HOSTILE_LINE_BYTES"]), b"")
        return
    if not await _drain(receive):
        return
    if path == "/discover" and os.environ.get("HOSTILE_DISCOVERY_BYTES"):
        size = int(os.environ["HOSTILE_DISCOVERY_BYTES"])
        await _flood(send, size, b'{"version":1,"services":[],"pad":"')
    elif path == "/discover":
        await _answer(send, _discovery())
    elif path == "/invoke/Huge/answer" and os.environ.get("HOSTILE_LINE_BYTES"):
        await _answer(send, _CHECKPOINT)
    elif path == "/invoke/Huge/answer":
        size = int(os.environ.get("HOSTILE_ANSWER_BYTES", "1000"))
        await _flood(send, size, b'{"version":1,"status":"done","entries":[')
    else:
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})
