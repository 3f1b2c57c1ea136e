"""Caps on admin requests: larger bodies get 413 before any route reads them, and too many or
too large headers get 431 before anything else runs (the token check included).

The admin API's bodies are small (a deployment URI, a schedule, an object's state); the cap
is the ingress's ``max_body_bytes``, so one setting bounds what either port buffers. A
declared ``content-length`` over the cap is refused without reading; a chunked body is read
up to the cap and refused as soon as it passes it. Requests without a body pass untouched.
The header limits are the ingress's too (``max_header_bytes``, ``max_headers``; the check is
``ritornello.orchestrator.HeaderLimits``): uvicorn sets none of its own.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from ritornello.orchestrator import HeaderLimits

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class HeaderLimit:
    """Pure ASGI middleware: 431 for request headers past ``limits``, else the app unchanged."""

    def __init__(self, app: ASGIApp, limits: HeaderLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            problem = self.limits.problem(scope.get("headers") or ())
            if problem is not None:
                await _refuse(send, 431, problem)
                return
        await self.app(scope, receive, send)


class BodyLimit:
    """Pure ASGI middleware: 413 for a body over ``max_bytes``, else the app unchanged."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()  # after the body: wait for the disconnect
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, send: Send) -> None:
        detail = f"request body larger than {self.max_bytes} bytes (max_body_bytes)"
        await _refuse(send, 413, detail)


async def _refuse(send: Send, status: int, detail: str) -> None:
    """A complete JSON answer ``{"detail": ...}`` that closes the connection."""
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
