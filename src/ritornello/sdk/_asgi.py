"""The raw ASGI app of an endpoint (standard library only: no framework in a handler Lambda).

Routes:

- ``GET /discover`` -> 200 ``DiscoveryResponse``
- ``POST /invoke/{service}/{handler}`` -> 200 ``InvokeResponse``; 400 ``{"message"}`` for a
  body that does not decode (not JSON, wrong version, bad shape) or names another handler than
  the path; 404 ``{"message"}`` for an unknown service or handler
- ``POST /invoke/{service}/{handler}`` with ``x-ritornello-stream: 1`` and a chunked body: a
  streamed attempt (``_stream``, docs/protocol.md): the body's first line is the
  ``InvokeRequest``; the answer is 200 with one ``InvokeResponse`` per line, going on after each
  ``checkpoint`` the orchestrator acknowledges with an ack line. Errors found in the first line
  are answered as above, before the stream starts.
  An endpoint built with ``stream=False`` answers such a request 400 with
  ``x-ritornello-stream: 0`` at once, without reading its body.
- ``GET /health`` -> 200 ``{"status": "ok"}``
- anything else: 404, or 405 for a known path with another method.

When the endpoint has a signing secret, ``/discover`` and ``/invoke/...`` first check the
orchestrator's signature (``x-ritornello-timestamp``, ``x-ritornello-signature``, docs/auth.md)
over the method, the path as received, and the body, and its binding (``x-ritornello-nonce``,
``x-ritornello-binding``) to one use and to whether the request is streamed: 401 ``{"message"}``
if it is missing, wrong, stale or replayed, before anything else is looked at (so an unsigned
caller learns nothing, not even which handlers exist). ``/health`` stays open. A streamed
attempt so signed says ``x-ritornello-ack: v2`` and takes only the acks bound to it.

Invariants (a hostile client costs little):

- No byte of a body is read before the signature's headers passed every check that needs no
  body (present, well formed, timestamp in the window); a request refused then is answered at
  once with ``connection: close``, its body never read.
- No body is held past the endpoint's ``max_request_bytes`` (of a streamed request: no line):
  a longer one is answered 413 (``connection: close``) as soon as that much of it arrived, and
  a ``content-length`` over the limit is answered before any of it is read.
- Reading a streamed body costs time linear in its size (``LineReader``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from ritornello.protocol import (
    STREAM_HEADER,
    InvokeRequest,
    ProtocolError,
    SignatureError,
    Verifier,
)
from ritornello.protocol._signing import (
    ACK_HEADER,
    BINDING_HEADER,
    NONCE_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    AckCheck,
    Admission,
)
from ritornello.sdk._served import Served
from ritornello.sdk._stream import LineReader, RequestTooLarge, plain_ack, stream_attempts

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

logger = logging.getLogger("ritornello.sdk")

_JSON = b"application/json"
_SIG = SIGNATURE_HEADER.encode()
_TS = TIMESTAMP_HEADER.encode()
_NONCE = NONCE_HEADER.encode()
_BINDING = BINDING_HEADER.encode()
_ACKS_BOUND = (ACK_HEADER.encode(), b"v2")
_STREAM = STREAM_HEADER.encode()
_LENGTH = b"content-length"
_NDJSON = b"application/x-ndjson"
_CHALLENGE = {"www-authenticate": 'Ritornello-Signature realm="ritornello"'}
_CLOSE = {"connection": "close"}  # the body was not read (to its end): no keep-alive


async def _respond(
    send: Send, status: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    headers = [(b"content-type", _JSON), (b"content-length", str(len(body)).encode())]
    await send(
        {"type": "http.response.start", "status": status, "headers": headers + (extra or [])}
    )
    await send({"type": "http.response.body", "body": body})


async def _message(send: Send, status: int, message: str, **headers: str) -> None:
    body = json.dumps({"message": message}).encode()
    extra = [(k.encode(), v.encode()) for k, v in headers.items()]
    await _respond(send, status, body, extra)


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None if the client went away; :class:`RequestTooLarge` as
    soon as more than ``limit`` bytes of it arrived."""
    message = await receive()
    if message["type"] == "http.disconnect":
        return None
    body: bytes = message.get("body", b"")
    size = len(body)
    if size > limit:
        raise RequestTooLarge(limit)
    if not message.get("more_body", False):
        return body
    chunks = [body]
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        body = message.get("body", b"")
        size += len(body)
        if size > limit:
            raise RequestTooLarge(limit)
        chunks.append(body)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _too_large(limit: int) -> str:
    return (
        f"request body larger than this endpoint's max_request_bytes ({limit:,} bytes; "
        "Endpoint(max_request_bytes=...) or RITORNELLO_MAX_REQUEST_BYTES)"
    )


class _Signed:
    """The headers of a request that a signed endpoint looks at, found in one pass."""

    __slots__ = ("binding", "length", "nonce", "signature", "streamed", "timestamp")

    def __init__(self, scope: Scope) -> None:
        self.timestamp: bytes | None = None
        self.signature: bytes | None = None
        self.nonce: bytes | None = None
        self.binding: bytes | None = None
        self.length: bytes | None = None
        self.streamed = False
        for name, value in scope.get("headers", ()):
            if name == _TS:
                self.timestamp = value
            elif name == _SIG:
                self.signature = value
            elif name == _NONCE:
                self.nonce = value
            elif name == _BINDING:
                self.binding = value
            elif name == _STREAM:
                self.streamed = value == b"1"
            elif name == _LENGTH:
                self.length = value


def _raw_path(scope: Scope) -> bytes:
    """The path as received, without the query: what the signature covers."""
    raw_path: bytes | None = scope.get("raw_path")
    path: bytes = raw_path.split(b"?", 1)[0] if raw_path else scope["path"].encode()
    return path


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


class AsgiApp:
    """An ASGI 3 application serving one endpoint (an :class:`Endpoint`, seen as
    :class:`Served`)."""

    def __init__(self, endpoint: Served) -> None:
        self.endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            raise ValueError(f"unsupported ASGI scope type {scope['type']!r}")
        method: str = scope["method"]
        path: str = scope["path"]
        parts = path.strip("/").split("/")
        if path in ("/discover", "/health"):
            if method != "GET":
                await _message(send, 405, f"{method} not allowed on {path}", allow="GET")
            elif path == "/health":
                await _respond(send, 200, b'{"status":"ok"}')
            elif await self._refused(scope, send):
                return
            else:
                await _respond(send, 200, self.endpoint.discovery().encode())
        elif len(parts) == 3 and parts[0] == "invoke" and parts[1] and parts[2]:
            if method != "POST":
                await _message(send, 405, f"{method} not allowed on {path}", allow="POST")
            else:
                await self._invoke(scope, parts[1], parts[2], receive, send)
        else:
            await _message(send, 404, f"no route {method} {path}")

    async def _refused(self, scope: Scope, send: Send) -> bool:
        """``GET /discover`` (no body): with a secret, answer 401 and return True unless the
        request is signed with it."""
        verifier = self.endpoint.verifier
        if verifier is None:
            return False
        try:
            admission = self._admit(verifier, _Signed(scope))
            verifier.verify(admission, scope["method"], _raw_path(scope), b"")
        except SignatureError as exc:
            await self._unauthorized(scope, send, exc, _CLOSE)
            return True
        return False

    def _admit(self, verifier: Verifier, signed: _Signed) -> Admission:
        now = self.endpoint.now()
        return verifier.admit(signed.timestamp, signed.signature, now, signed.nonce, signed.binding)

    async def _unauthorized(
        self, scope: Scope, send: Send, exc: SignatureError, extra: dict[str, str] | None = None
    ) -> None:
        logger.warning("refused %s %s: %s", scope["method"], scope["path"], exc)
        await _message(send, 401, str(exc), **_CHALLENGE, **(extra or {}))

    async def _invoke(
        self, scope: Scope, service: str, handler: str, receive: Receive, send: Send
    ) -> None:
        verifier = self.endpoint.verifier
        limit = self.endpoint.max_request_bytes
        admission: Admission | None = None
        if verifier is None:
            streamed = (_STREAM, b"1") in scope.get("headers", ())
        else:  # refuse what needs no body to refuse before reading any of it
            signed = _Signed(scope)
            streamed = signed.streamed
            try:
                admission = self._admit(verifier, signed)
            except SignatureError as exc:
                await self._unauthorized(scope, send, exc, _CLOSE)
                return
            length = signed.length
            if length is not None and (not length.isdigit() or int(length) > limit):
                await _message(send, 413, _too_large(limit), **_CLOSE)
                return
        if streamed and not self.endpoint.stream:
            # Its body would never end (it waits for acks): refuse before reading it, saying
            # so in a header, and the orchestrator stops streaming here.
            await _message(
                send,
                400,
                "streamed attempts are turned off at this endpoint",
                **{STREAM_HEADER: "0"},
            )
            return
        lines: LineReader | None = None
        try:
            if streamed:
                lines = LineReader(receive, limit)
                body = await lines.line()
            else:
                body = await _read_body(receive, limit)
        except RequestTooLarge:
            await _message(send, 413, _too_large(limit), **_CLOSE)
            return
        if body is None:
            return
        acks: AckCheck | None = None
        if admission is not None and verifier is not None:
            try:
                acks = verifier.verify(
                    admission, scope["method"], _raw_path(scope), body, stream=streamed
                )
            except SignatureError as exc:
                await self._unauthorized(scope, send, exc, _CLOSE if streamed else None)
                return
        if self.endpoint.handler(service, handler) is None:
            await _message(send, 404, f"no handler {service}/{handler} in this endpoint")
            return
        try:
            request = InvokeRequest.decode(body)
        except ProtocolError as exc:
            await _message(send, 400, str(exc))
            return
        if (request.service, request.handler) != (service, handler):
            await _message(
                send,
                400,
                f"the body invokes {request.service}/{request.handler}, "
                f"the path {service}/{handler}",
            )
            return
        if lines is not None:
            await self._stream(request, lines, acks, send)
            return
        try:
            response = await self.endpoint.invoke(request)
        except Exception:
            logger.exception("endpoint failed on %s/%s", service, handler)
            await _message(send, 500, "internal endpoint error")
            return
        await _respond(send, 200, response.encode())

    async def _stream(
        self, request: InvokeRequest, lines: LineReader, acks: AckCheck | None, send: Send
    ) -> None:
        """A streamed attempt: the head at once (the orchestrator learns the stream works
        before any step runs), then one answer per line until one is not an acknowledged
        checkpoint; the answer ends after the request body did. ``acks``: the check of a
        request signed v2 (said in the head, so the orchestrator MACs its acks), else plain."""
        headers = [(b"content-type", _NDJSON)]
        if acks is not None:
            headers.append(_ACKS_BOUND)
        await send({"type": "http.response.start", "status": 200, "headers": headers})

        async def write(line: bytes) -> None:
            await send({"type": "http.response.body", "body": line, "more_body": True})

        clean = True
        try:
            is_ack = plain_ack if acks is None else acks
            clean = await stream_attempts(request, self.endpoint.invoke, write, lines.line, is_ack)
        except Exception:  # the invoke itself broke: the stream ends without a final answer,
            logger.exception("endpoint failed on %s/%s", request.service, request.handler)
        if clean:  # which the orchestrator sees as a failed attempt
            await lines.drain()  # the answer ends after the request did: clean keep-alive
        else:
            logger.warning("streamed attempt of %s ended by a line that is not an ack", request.id)
        await send({"type": "http.response.body", "body": b"", "more_body": False})
