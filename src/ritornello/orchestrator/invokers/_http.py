"""``HttpInvoker``: an endpoint behind HTTP (uvicorn, a Function URL, any ASGI server).

Requests go through ``_pool.HttpPool``, our own minimal keep-alive HTTP/1.1 client; a streamed
attempt over the ``_stream.HttpStream`` that the pool opens.

With a signing secret, every request is signed (``ritornello.protocol.Signer``, docs/auth.md):
it carries ``x-ritornello-timestamp`` and ``x-ritornello-signature`` over its method, path, time
and body, and ``x-ritornello-nonce`` and ``x-ritornello-binding`` tying that signature to one use
and to whether the request is streamed. A streamed answer that says ``x-ritornello-ack: v2`` gets
acks bound to the request (``Signer.ack``: a MAC over its binding and the ack's number); an
endpoint whose SDK predates that says nothing and gets the plain ack.

Every connection goes where the ``HostPolicy`` (``_hosts``) allows, checked on the addresses it
connects to. A non-200 answer becomes an error naming its status line only: that error reaches
the admin API's callers (the 502 of a registration, an invocation's last failure) and the
endpoint may be any address someone registered, so its text goes to the log instead.

Streamed attempts (docs/protocol.md): an HTTP endpoint whose discovery offers ``stream`` is
invoked with ``open_stream``; the engine reads answers with ``InvokeStream.next``, acknowledges a
committed checkpoint with ``ack`` and ends the exchange with ``finish`` (or ``abort``). Until one
streamed request to a deployment got its answer started, the first answer must start within
``STREAM_PROBE_S``; if it does not (a proxy that buffers request bodies), streaming is turned off
for that deployment and the attempt fails as a transport error, to be retried unstreamed.

Limits (``_base``): an answer is read only up to ``max_answer_bytes`` (a streamed attempt: each
line), a discovery answer up to ``max_discovery_bytes``; past that the connection is closed and
the request fails with an ``InvokerError`` naming the setting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from http import HTTPStatus
from urllib.parse import quote

from ritornello.protocol import STREAM_ACK, STREAM_HEADER, Signer
from ritornello.protocol._signing import ACK_HEADER, BINDING_HEADER

from ._base import (
    MAX_ANSWER_BYTES,
    MAX_DISCOVERY_BYTES,
    Duplex,
    Invoker,
    InvokerError,
    InvokeStream,
    RefusedStatus,
    too_large,
)
from ._client_errors import AnswerTooLarge, HttpClientError, HttpStatusError, StreamHeadTimeout
from ._h2 import H2Client, H2Exchange
from ._hosts import HostPolicy
from ._pool import HttpPool
from ._stream import HttpStream, frame_line

log = logging.getLogger("ritornello.invoker")

#: Seconds a deployment not yet known to stream has to start its first streamed answer.
STREAM_PROBE_S = 5.0
_ACK_FRAMED = frame_line(STREAM_ACK)  # an acknowledgement as written, framed once
#: How an endpoint's 401 says why it refused (``ritornello.protocol.Verifier``'s messages): the
#: one piece of a refusal's text an error repeats, and only this prefix of it.
_SIGNATURE_REFUSAL = re.compile(
    rb'\{\s*"message"\s*:\s*"(unsigned request|bad signature|stale signature|'
    rb"replayed request|unbound signature|signed too long ago|malformed signature|"
    rb"malformed x-ritornello-(?:timestamp|signature|nonce|binding))\b"
)
#: How much of a refused answer's text the log shows.
LOGGED_BYTES = 2000
#: Discovery asks for Restate's endpoint manifest too (the versions its SDKs serve), so one
#: request tells the two kinds of endpoint apart; Ritornello's SDK ignores the header.
_DISCOVER_HEADERS = {
    "accept": ", ".join(
        [f"application/vnd.restate.endpointmanifest.v{v}+json" for v in (4, 3, 2)]
        + ["application/json"]
    )
}
_ANSWER = ("answer", "max_answer_bytes")
_DISCOVERY = ("discovery answer", "max_discovery_bytes")


class HttpInvoker(Invoker):
    """An endpoint behind HTTP (uvicorn, a Function URL, any ASGI server).

    Connections are reused across invocations. A request that fails on a reused connection
    before any answer arrived (the server closed an idle keep-alive socket) is sent once more on
    a fresh connection; that is safe because an invoke is a replay from the journal.
    ``timeout_s`` bounds ``discover``; ``invoke`` is bounded by its caller (see there).
    With ``signing_secret`` each request is signed over its method, path, time and body (a
    streamed attempt: over its first line, the InvokeRequest). Connections go only where
    ``hosts`` allows (None: the default ``HostPolicy``).
    ``max_answer_bytes`` and ``max_discovery_bytes`` bound what an answer may bring.
    """

    #: Whether streamed attempts can pass whatever fronts this kind of endpoint.
    can_stream = True
    carries_others = True
    speaks_h2 = True

    def __init__(
        self,
        uri: str,
        *,
        limit: int = 256,
        timeout_s: float = 300.0,
        signing_secret: str = "",
        hosts: HostPolicy | None = None,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
        max_discovery_bytes: int = MAX_DISCOVERY_BYTES,
    ) -> None:
        self.uri = uri.rstrip("/")
        self._hosts = hosts if hosts is not None else HostPolicy()
        self.max_answer_bytes = max_answer_bytes
        self.max_discovery_bytes = max_discovery_bytes
        self._limit = limit
        self._timeout_s = timeout_s
        self._signer = Signer(signing_secret) if signing_secret else None
        self._paths: dict[tuple[str, str], str] = {}
        self._stream_proven = False  # a streamed answer from this endpoint has started
        self._fixed_headers = {"content-type": "application/json"}
        #: ``speak(http2=True)``: every request goes over HTTP/2 (``_h2``), on one connection
        self.http2 = False
        self._h2: H2Client | None = None
        try:
            self._pool: HttpPool | None = self._new_pool()
        except ValueError as exc:
            raise InvokerError(str(exc)) from None

    def _open_pool(self) -> HttpPool:
        """The connection pool, made again if the invoker is used after ``close()``."""
        if self._pool is None:
            self._pool = self._new_pool()
        return self._pool

    def _new_pool(self) -> HttpPool:
        return HttpPool(
            self.uri,
            limit=self._limit,
            idle_timeout=30.0,
            headers=self._fixed_headers,
            resolve=self._hosts.resolve,
        )

    async def _headers(
        self, method: str, path: str, body: bytes | None, stream: bool = False
    ) -> dict[str, str] | None:
        """Extra headers for one request: the signature, when there is a secret."""
        return self._signature(method, path, body, stream)

    def _signature(
        self, method: str, path: str, body: bytes | None, stream: bool = False
    ) -> dict[str, str] | None:
        if self._signer is None:
            return None
        return self._signer.headers(method, path, body, time.time(), stream=stream)

    async def _request(
        self,
        method: str,
        path: str,
        body: bytes | None,
        max_bytes: int,
        what: tuple[str, str],
        extra: dict[str, str] | None = None,
    ) -> bytes:
        """One request; ``what``: the answer's name and the setting bounding it; ``extra``:
        headers of this request only."""
        pool = self._open_pool()
        headers = await self._headers(method, path, body)
        if extra:
            headers = {**extra, **headers} if headers else extra
        try:
            status, _, data = await pool.request(method, path, body, headers, max_bytes=max_bytes)
        except AnswerTooLarge:
            refused = too_large(what[0], max_bytes, what[1])
            raise InvokerError(f"endpoint {self.uri}: {refused}; connection closed") from None
        except HttpClientError as exc:
            raise InvokerError(f"endpoint {self.uri} unreachable: {exc}") from None
        if status != 200:
            raise self._refusal(status, data)
        return data

    def _refusal(self, status: int, data: bytes) -> RefusedStatus:
        """The error for a non-200 answer: its status line, and for a 401 the kind of
        signature refusal it names; its text goes to the log (see the module docstring)."""
        try:
            line = f"HTTP {status} {HTTPStatus(status).phrase}"
        except ValueError:
            line = f"HTTP {status}"
        text = data[:LOGGED_BYTES].decode("utf-8", "replace")
        log.warning("endpoint %s answered %s: %r", self.uri, line, text)
        if status == 401:
            signed = "signed" if self._signer is not None else "unsigned (no signing_secret)"
            kind = _SIGNATURE_REFUSAL.match(data)
            why = f": {kind[1].decode()}" if kind is not None else ""
            return RefusedStatus(
                f"endpoint refused the orchestrator's {signed} request ({line}{why})", status
            )
        return RefusedStatus(f"endpoint answered {line}", status)

    def offer_stream(self, offered: bool) -> None:
        self.streams = offered and self.can_stream

    @property
    def contended(self) -> bool:
        return self._pool is not None and self._pool.waiting > 0

    async def open_stream(
        self, service: str, handler: str, body: bytes, *, invocation_id: str = "", attempt: int = 0
    ) -> InvokeStream:
        """POST the InvokeRequest ``body`` as the first line of a streamed attempt. Bounded by
        the caller like ``invoke``; cancelling it closes the connection."""
        pool = self._open_pool()
        path = self._path(service, handler)
        headers = {STREAM_HEADER: "1", **(await self._headers("POST", path, body, True) or {})}
        try:
            stream = await pool.stream(
                "POST",
                path,
                body,
                headers,
                head_timeout=None if self._stream_proven else STREAM_PROBE_S,
                max_bytes=self.max_answer_bytes,
            )
        except AnswerTooLarge:
            raise self._line_too_large() from None
        except StreamHeadTimeout as exc:
            self.streams = False
            log.warning(
                "endpoint %s offers streamed attempts but %s: streaming turned off for it "
                "(a proxy in between may buffer request bodies)",
                self.uri,
                exc,
            )
            raise InvokerError(f"endpoint {self.uri}: {exc}; streaming turned off") from None
        except HttpClientError as exc:
            raise InvokerError(f"endpoint {self.uri} unreachable: {exc}") from None
        if stream.status == 200:
            self._stream_proven = True
        binding = headers.get(BINDING_HEADER)
        if binding is None or stream.headers.get(ACK_HEADER) != "v2":
            binding = None  # unsigned, or an endpoint that wants the plain ack
        return _HttpInvokeStream(self, stream, binding)

    def _line_too_large(self) -> InvokerError:
        limit = self.max_answer_bytes
        refused = too_large("streamed answer line", limit, "max_answer_bytes")
        return InvokerError(f"endpoint {self.uri}: {refused}; connection closed")

    async def discover(self) -> bytes:
        async with asyncio.timeout(self._timeout_s):
            return await self._request(
                "GET", "/discover", None, self.max_discovery_bytes, _DISCOVERY, _DISCOVER_HEADERS
            )

    def speak(self, headers: dict[str, str], *, http2: bool = False) -> None:
        self._fixed_headers = dict(headers)
        self.streams = False  # Ritornello's streamed attempts: not in another protocol
        self.http2 = http2
        if self._pool is not None:
            self._pool.set_headers(self._fixed_headers)

    def _h2_client(self) -> H2Client:
        if self._h2 is None:
            self._h2 = H2Client(self.uri, resolve=self._hosts.resolve)
        return self._h2

    async def _h2_request(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        body: bytes | None,
        max_bytes: int,
        what: tuple[str, str],
    ) -> bytes:
        """``_request`` over HTTP/2: one exchange, its errors and refusals as there."""
        try:
            status, _, data = await self._h2_client().request(
                method, path, headers, body, max_bytes=max_bytes
            )
        except AnswerTooLarge:
            refused = too_large(what[0], max_bytes, what[1])
            raise InvokerError(f"endpoint {self.uri}: {refused}; stream reset") from None
        except HttpClientError as exc:
            raise InvokerError(f"endpoint {self.uri} unreachable over HTTP/2: {exc}") from None
        if status != 200:
            raise self._refusal(status, data)
        return data

    async def discover_h2(self) -> bytes:
        async with asyncio.timeout(self._timeout_s):
            return await self._h2_request(
                "GET", "/discover", _DISCOVER_HEADERS, None, self.max_discovery_bytes, _DISCOVERY
            )

    async def invoke_as(
        self, service: str, handler: str, body: bytes, headers: dict[str, str]
    ) -> bytes:
        path = self._path(service, handler)
        if not self.http2:
            return await self._request("POST", path, body, self.max_answer_bytes, _ANSWER, headers)
        headers = {**self._fixed_headers, **headers}
        return await self._h2_request("POST", path, headers, body, self.max_answer_bytes, _ANSWER)

    async def open_duplex(self, service: str, handler: str, headers: dict[str, str]) -> Duplex:
        """A full-duplex request over HTTP/2 (``speak(http2=True)``); bounded by the caller."""
        if not self.http2:
            raise InvokerError(f"endpoint {self.uri} is not reached over HTTP/2")
        try:
            exchange = await self._h2_client().open(
                "POST",
                self._path(service, handler),
                {**self._fixed_headers, **headers},
                max_bytes=self.max_answer_bytes,
            )
        except HttpClientError as exc:
            raise InvokerError(f"endpoint {self.uri} unreachable: {exc}") from None
        return _H2Duplex(self, exchange)

    async def invoke(self, service: str, handler: str, body: bytes) -> bytes:
        """POST one InvokeRequest. No timer of its own (an ``asyncio.timeout`` costs ~6 µs, a
        fifth of a request's budget): the caller bounds it, as the engine does with
        ``wait_for(..., attempt_timeout_s)``; cancelling it closes its connection."""
        path = self._path(service, handler)
        return await self._request("POST", path, body, self.max_answer_bytes, _ANSWER)

    def _path(self, service: str, handler: str) -> str:
        path = self._paths.get((service, handler))
        if path is None:
            if len(self._paths) >= 4096:
                self._paths.clear()
            path = f"/invoke/{quote(service, safe='')}/{quote(handler, safe='')}"
            self._paths[service, handler] = path
        return path

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()
        if self._h2 is not None:
            h2, self._h2 = self._h2, None
            await h2.close()


class _HttpInvokeStream(InvokeStream):
    __slots__ = ("_acked", "_binding", "_invoker", "_stream")

    def __init__(self, invoker: HttpInvoker, stream: HttpStream, binding: str | None) -> None:
        self._invoker = invoker
        self._stream = stream
        self._binding = binding  # the request's binding: its acks carry MACs over it
        self._acked = 0

    async def next(self, timeout_s: float | None = None) -> bytes:
        try:
            return await self._stream.next(timeout_s)
        except HttpStatusError as exc:
            error: InvokerError = self._invoker._refusal(exc.status, exc.body)
            if exc.headers.get(STREAM_HEADER) == "0":  # the endpoint no longer streams
                self._invoker.streams = False
                error = InvokerError(f"{error}: streamed attempts are turned off there")
            raise error from None
        except AnswerTooLarge:
            raise self._invoker._line_too_large() from None
        except HttpClientError as exc:
            raise InvokerError(f"endpoint {self._invoker.uri}: {exc}") from None

    def ack(self) -> None:
        try:
            signer = self._invoker._signer
            if self._binding is None or signer is None:
                self._stream.send_framed(_ACK_FRAMED)
            else:
                self._acked += 1
                self._stream.send(signer.ack(self._binding, self._acked))
        except HttpClientError as exc:
            raise InvokerError(f"endpoint {self._invoker.uri}: {exc}") from None

    def finish(self) -> None:
        self._stream.finish()

    def abort(self) -> None:
        self._stream.abort()


class _H2Duplex(Duplex):
    """An ``H2Exchange`` as a ``Duplex``: errors as ``InvokerError``, a non-200 answer
    refused at its first read."""

    __slots__ = ("_exchange", "_invoker", "_started")

    def __init__(self, invoker: HttpInvoker, exchange: H2Exchange) -> None:
        self._invoker = invoker
        self._exchange = exchange
        self._started = False

    def write(self, data: bytes) -> None:
        try:
            self._exchange.write(data)
        except HttpClientError as exc:
            raise InvokerError(f"endpoint {self._invoker.uri}: {exc}") from None

    def end(self) -> None:
        try:
            self._exchange.end()
        except HttpClientError as exc:
            raise InvokerError(f"endpoint {self._invoker.uri}: {exc}") from None

    async def read(self, timeout_s: float | None = None) -> bytes:
        exchange = self._exchange
        try:
            if not self._started:
                status, _ = await exchange.head(timeout_s)
                if status != 200:
                    body = b""
                    with contextlib.suppress(HttpClientError, TimeoutError):
                        body = await exchange.read(1.0)
                    exchange.abort()
                    raise self._invoker._refusal(status, body)
                self._started = True
            return await exchange.read(timeout_s)
        except AnswerTooLarge:
            limit = self._invoker.max_answer_bytes
            refused = too_large(_ANSWER[0], limit, _ANSWER[1])
            raise InvokerError(f"endpoint {self._invoker.uri}: {refused}; stream reset") from None
        except TimeoutError:
            raise
        except HttpClientError as exc:
            raise InvokerError(f"endpoint {self._invoker.uri}: {exc}") from None

    def abort(self) -> None:
        self._exchange.abort()
