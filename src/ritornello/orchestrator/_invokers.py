"""Invokers: how the orchestrator reaches a handler endpoint.

``Invoker`` is the seam (like httpx's transports): an HTTP invoker with a keep-alive connection
pool (``_http.HttpPool``, our own minimal HTTP/1.1 client), an in-process invoker that calls an
``Endpoint`` in this process, and any fake a test wants. An invoker moves bytes; it does not
interpret answers (the engine does).

With a signing secret, every request an invoker sends is signed (``ritornello.protocol.Signer``,
docs/auth.md): HTTP requests carry ``x-ritornello-timestamp`` and ``x-ritornello-signature``,
Lambda payloads travel in the signed envelope. The in-process invoker signs nothing: its
endpoint lives in this very process.

Streamed attempts (docs/protocol.md): an HTTP endpoint whose discovery offers ``stream`` is
invoked with ``open_stream``; the engine reads answers with ``InvokeStream.next``, acknowledges a
committed checkpoint with ``ack`` and ends the exchange with ``finish`` (or ``abort``). Until one
streamed request to a deployment got its answer started, the first answer must start within
``STREAM_PROBE_S``; if it does not (a proxy that buffers request bodies), streaming is turned off
for that deployment and the attempt fails as a transport error, to be retried unstreamed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

from ritornello.protocol import STREAM_ACK, STREAM_HEADER, DiscoveryResponse, Signer

from ._http import (
    HttpClientError,
    HttpPool,
    HttpStatusError,
    HttpStream,
    StreamHeadTimeout,
    frame_line,
)

log = logging.getLogger("ritornello.invoker")

#: Seconds a deployment not yet known to stream has to start its first streamed answer.
STREAM_PROBE_S = 5.0
_ACK_FRAMED = frame_line(STREAM_ACK)  # an acknowledgement as written, framed once


class InvokerError(Exception):
    """The endpoint could not be reached or answered with a non-200 status (retryable)."""


class InProcessTarget(Protocol):
    """What ``Endpoint(...).inprocess()`` returns."""

    async def discover(self) -> bytes: ...

    async def invoke(self, body: bytes) -> bytes: ...


class InvokeStream(ABC):
    """One streamed attempt: answers in, acknowledgements out (bytes; the engine decodes)."""

    @abstractmethod
    async def next(self, timeout_s: float | None = None) -> bytes:
        """The next answer; InvokerError if the exchange ended or broke first, TimeoutError
        if ``timeout_s`` seconds passed first (a stream bounds its waits itself: cheaper than
        an ``asyncio.timeout`` around every step)."""

    @abstractmethod
    def ack(self) -> None:
        """The last answer (a checkpoint) is committed: the endpoint goes on."""

    @abstractmethod
    def finish(self) -> None:
        """No more acknowledgements: end the exchange cleanly."""

    @abstractmethod
    def abort(self) -> None:
        """End the exchange now (the endpoint sees the connection close)."""


class Invoker(ABC):
    """Sends one protocol message to an endpoint and returns its answer's bytes."""

    #: Whether ``open_stream`` may be used now (the endpoint offered it and it works).
    streams = False

    @property
    def contended(self) -> bool:
        """Whether requests wait for a connection: an open stream should give its own up."""
        return False

    def offer_stream(self, offered: bool) -> None:  # noqa: B027 - optional hook
        """The deployment's discovery says whether the endpoint serves streamed attempts."""

    async def open_stream(self, service: str, handler: str, body: bytes) -> InvokeStream:
        """Start a streamed attempt with the InvokeRequest ``body``."""
        raise InvokerError(f"{type(self).__name__} does not stream")

    @abstractmethod
    async def discover(self) -> DiscoveryResponse:
        """Ask the endpoint what it serves."""

    @abstractmethod
    async def invoke(self, service: str, handler: str, body: bytes) -> bytes:
        """POST one InvokeRequest; raise InvokerError on transport failure or non-200."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


class HttpInvoker(Invoker):
    """An endpoint behind HTTP (uvicorn, a Function URL, any ASGI server).

    Connections are reused across invocations. A request that fails on a reused connection
    before any answer arrived (the server closed an idle keep-alive socket) is sent once more on
    a fresh connection; that is safe because an invoke is a replay from the journal.
    ``timeout_s`` bounds ``discover``; ``invoke`` is bounded by its caller (see there).
    With ``signing_secret`` each request is signed over its method, path, time and body (a
    streamed attempt: over its first line, the InvokeRequest).
    """

    #: Whether streamed attempts can pass whatever fronts this kind of endpoint.
    can_stream = True

    def __init__(
        self, uri: str, *, limit: int = 256, timeout_s: float = 300.0, signing_secret: str = ""
    ) -> None:
        self.uri = uri.rstrip("/")
        self._limit = limit
        self._timeout_s = timeout_s
        self._signer = Signer(signing_secret) if signing_secret else None
        self._paths: dict[tuple[str, str], str] = {}
        self._stream_proven = False  # a streamed answer from this endpoint has started
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
            headers={"content-type": "application/json"},
        )

    async def _headers(self, method: str, path: str, body: bytes | None) -> dict[str, str] | None:
        """Extra headers for one request: the signature, when there is a secret."""
        return self._signature(method, path, body)

    def _signature(self, method: str, path: str, body: bytes | None) -> dict[str, str] | None:
        if self._signer is None:
            return None
        return self._signer.headers(method, path, body, time.time())

    async def _request(self, method: str, path: str, body: bytes | None) -> bytes:
        pool = self._open_pool()
        headers = await self._headers(method, path, body)
        try:
            status, _, data = await pool.request(method, path, body, headers)
        except HttpClientError as exc:
            raise InvokerError(f"endpoint {self.uri} unreachable: {exc}") from None
        if status != 200:
            raise self._refusal(status, data)
        return data

    def _refusal(self, status: int, data: bytes) -> InvokerError:
        text = data[:300].decode("utf-8", "replace")
        if status == 401:
            signed = "signed" if self._signer is not None else "unsigned (no signing_secret)"
            return InvokerError(
                f"endpoint refused the orchestrator's {signed} request (HTTP 401): {text}"
            )
        return InvokerError(f"endpoint answered HTTP {status}: {text}")

    def offer_stream(self, offered: bool) -> None:
        self.streams = offered and self.can_stream

    @property
    def contended(self) -> bool:
        return self._pool is not None and self._pool.waiting > 0

    async def open_stream(self, service: str, handler: str, body: bytes) -> InvokeStream:
        """POST the InvokeRequest ``body`` as the first line of a streamed attempt. Bounded by
        the caller like ``invoke``; cancelling it closes the connection."""
        pool = self._open_pool()
        path = self._path(service, handler)
        headers = {STREAM_HEADER: "1", **(await self._headers("POST", path, body) or {})}
        try:
            stream = await pool.stream(
                "POST",
                path,
                body,
                headers,
                head_timeout=None if self._stream_proven else STREAM_PROBE_S,
            )
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
        return _HttpInvokeStream(self, stream)

    async def discover(self) -> DiscoveryResponse:
        async with asyncio.timeout(self._timeout_s):
            return DiscoveryResponse.decode(await self._request("GET", "/discover", None))

    async def invoke(self, service: str, handler: str, body: bytes) -> bytes:
        """POST one InvokeRequest. No timer of its own (an ``asyncio.timeout`` costs ~6 µs, a
        fifth of a request's budget): the caller bounds it, as the engine does with
        ``wait_for(..., attempt_timeout_s)``; cancelling it closes its connection."""
        return await self._request("POST", self._path(service, handler), body)

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


class _HttpInvokeStream(InvokeStream):
    __slots__ = ("_invoker", "_stream")

    def __init__(self, invoker: HttpInvoker, stream: HttpStream) -> None:
        self._invoker = invoker
        self._stream = stream

    async def next(self, timeout_s: float | None = None) -> bytes:
        try:
            return await self._stream.next(timeout_s)
        except HttpStatusError as exc:
            if exc.headers.get(STREAM_HEADER) == "0":  # the endpoint no longer streams
                self._invoker.streams = False
            raise self._invoker._refusal(exc.status, exc.body) from None
        except HttpClientError as exc:
            raise InvokerError(f"endpoint {self._invoker.uri}: {exc}") from None

    def ack(self) -> None:
        try:
            self._stream.send_framed(_ACK_FRAMED)
        except HttpClientError as exc:
            raise InvokerError(f"endpoint {self._invoker.uri}: {exc}") from None

    def finish(self) -> None:
        self._stream.finish()

    def abort(self) -> None:
        self._stream.abort()


class InProcessInvoker(Invoker):
    """An ``Endpoint`` living in this process (``ritornello dev``, tests): same bytes, no HTTP.

    The endpoint's handlers run as tasks on this event loop; their sync ``run`` steps go to
    threads, so the orchestrator is not blocked by them.
    """

    def __init__(self, target: InProcessTarget) -> None:
        self._target = target

    async def discover(self) -> DiscoveryResponse:
        return DiscoveryResponse.decode(await self._target.discover())

    async def invoke(self, service: str, handler: str, body: bytes) -> bytes:
        # A task of its own, so cancelling the caller (timeout, shutdown) cancels the handler.
        return await asyncio.ensure_future(self._target.invoke(body))


def _check_http_uri(uri: str) -> None:
    """Refuse an http(s) URI no connection could be made from, with a message naming it."""
    try:
        parts = urlsplit(uri)
        port = parts.port  # ValueError when it is not a number in 0..65535
    except ValueError as exc:
        raise InvokerError(f"invalid deployment URI {uri!r}: {exc}") from None
    host = parts.hostname
    if not host:
        raise InvokerError(f"invalid deployment URI {uri!r}: it names no host")
    if not host.isascii() or any(c.isspace() for c in host):
        raise InvokerError(
            f"invalid deployment URI {uri!r}: the host must be ASCII "
            "(write an internationalised name in its xn-- form)"
        )
    if port == 0:
        raise InvokerError(f"invalid deployment URI {uri!r}: port 0")


def make_invoker(
    uri: str, inprocess: dict[str, Any], *, timeout_s: float, signing_secret: str = ""
) -> Invoker:
    """The invoker for a deployment URI: ``http(s)://...``, a Lambda function ARN
    (``arn:aws:lambda:...:function:NAME:QUALIFIER[?assume_role_arn=...]``, see ``_lambda``) or
    ``inproc://NAME``. boto3 is imported only when a Lambda deployment exists. A non-empty
    ``signing_secret`` signs every request (not in-process ones)."""
    if uri.startswith("arn:"):
        from ._lambda import LambdaInvoker

        return LambdaInvoker.from_uri(uri, timeout_s=timeout_s, signing_secret=signing_secret)
    if uri.startswith("https://") and ".lambda-url." in uri:
        from ._lambda import FunctionUrlInvoker, is_function_url

        if is_function_url(uri):  # AWS_IAM auth: every request SigV4-signed
            return FunctionUrlInvoker(uri, timeout_s=timeout_s, signing_secret=signing_secret)
    if uri.startswith(("http://", "https://")):
        _check_http_uri(uri)
        return HttpInvoker(uri, timeout_s=timeout_s, signing_secret=signing_secret)
    if uri.startswith("inproc://"):
        name = uri[len("inproc://") :]
        target = inprocess.get(name)
        if target is None:
            raise InvokerError(f"no in-process endpoint named {name!r} in this process")
        return InProcessInvoker(target)
    raise InvokerError(
        f"unsupported deployment URI {uri!r} (expected http(s)://, a Lambda ARN or inproc://)"
    )
