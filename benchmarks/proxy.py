"""The ``proxy`` workload's server: the orchestrator's hops with no journaling (the ceiling).

    BENCH_UPSTREAM=http://127.0.0.1:PORT uvicorn proxy:app --app-dir benchmarks \
        --http ritornello.cli._listen:HttpToolsProtocol

``POST /{Service}/{handler}`` with a JSON body becomes an ``InvokeRequest`` (input entry only)
sent to the endpoint through the orchestrator's own ``HttpInvoker`` (its keep-alive HTTP/1.1
pool); a ``checkpoint`` answer is sent again with the new entries appended (in memory only), and
the ``output`` entry of the ``done`` answer is the response. The same HTTP stack as the
orchestrator on both sides (raw ASGI on uvicorn + httptools + uvloop in, with the ingress's
one-write-per-answer protocol class; ``HttpInvoker`` out), the same endpoint work, and nothing
stored: what the orchestrator costs beyond this is journaling.
Anything else (``suspended``, ``error``, a failure) is a 500: the proxy retries nothing.
"""

from __future__ import annotations

import os
from typing import Any

import orjson

from ritornello.orchestrator import HttpInvoker
from ritornello.protocol import InvokeRequest, InvokeResponse, new_id

_invoker: HttpInvoker | None = None


def _upstream() -> HttpInvoker:
    global _invoker
    if _invoker is None:
        _invoker = HttpInvoker(os.environ["BENCH_UPSTREAM"])
    return _invoker


async def _answer(send: Any, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _forward(service: str, handler: str, value: Any) -> tuple[int, bytes]:
    invoker = _upstream()
    journal: list[dict[str, Any]] = [{"kind": "input", "value": value}]
    inv_id = new_id()
    while True:
        request = InvokeRequest(
            id=inv_id, service=service, handler=handler, key=None, attempt=1, journal=journal
        )
        answer = InvokeResponse.decode(await invoker.invoke(service, handler, request.encode()))
        journal.extend(answer.entries)
        if answer.status == "checkpoint":
            continue
        last = journal[-1]
        if answer.status == "done" and last.get("kind") == "output" and "value" in last:
            return 200, orjson.dumps(last["value"])
        return 500, orjson.dumps({"message": f"{answer.status}: {answer.error or last}"})


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if _invoker is not None:
                    await _invoker.close()
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    chunks = []
    more = True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    parts = scope["path"].strip("/").split("/")
    if scope["method"] != "POST" or len(parts) != 2:
        await _answer(send, 404, b'{"message": "POST /{Service}/{handler}"}')
        return
    try:
        value = orjson.loads(b"".join(chunks))
    except orjson.JSONDecodeError:
        await _answer(send, 400, b'{"message": "the body is not JSON"}')
        return
    status, body = await _forward(parts[0], parts[1], value)
    await _answer(send, status, body)
