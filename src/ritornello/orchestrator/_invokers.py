"""Invokers: how the orchestrator reaches a handler endpoint.

``Invoker`` is the seam (like httpx's transports): an HTTP invoker with a keep-alive connection
pool (``_http.HttpPool``, our own minimal HTTP/1.1 client), an in-process invoker that calls an
``Endpoint`` in this process, and any fake a test wants. An invoker moves bytes; it does not
interpret answers (the engine does).

With a signing secret, every request an invoker sends is signed (``ritornello.protocol.Signer``,
docs/auth.md): HTTP requests carry ``x-ritornello-timestamp`` and ``x-ritornello-signature``,
Lambda payloads travel in the signed envelope. The in-process invoker signs nothing: its
endpoint lives in this very process.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

from ritornello.protocol import DiscoveryResponse, Signer

from ._http import HttpClientError, HttpPool


class InvokerError(Exception):
    """The endpoint could not be reached or answered with a non-200 status (retryable)."""


class InProcessTarget(Protocol):
    """What ``Endpoint(...).inprocess()`` returns."""

    async def discover(self) -> bytes: ...

    async def invoke(self, body: bytes) -> bytes: ...


class Invoker(ABC):
    """Sends one protocol message to an endpoint and returns its answer's bytes."""

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
    With ``signing_secret`` each request is signed over its method, path, time and body.
    """

    def __init__(
        self, uri: str, *, limit: int = 256, timeout_s: float = 300.0, signing_secret: str = ""
    ) -> None:
        self.uri = uri.rstrip("/")
        self._limit = limit
        self._timeout_s = timeout_s
        self._signer = Signer(signing_secret) if signing_secret else None
        self._paths: dict[tuple[str, str], str] = {}
        try:
            self._pool: HttpPool | None = self._new_pool()
        except ValueError as exc:
            raise InvokerError(str(exc)) from None

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
        pool = self._pool
        if pool is None:  # used again after close()
            pool = self._pool = self._new_pool()
        headers = await self._headers(method, path, body)
        try:
            status, _, data = await pool.request(method, path, body, headers)
        except HttpClientError as exc:
            raise InvokerError(f"endpoint {self.uri} unreachable: {exc}") from None
        if status != 200:
            text = data[:300].decode("utf-8", "replace")
            if status == 401:
                signed = "signed" if self._signer is not None else "unsigned (no signing_secret)"
                raise InvokerError(
                    f"endpoint refused the orchestrator's {signed} request (HTTP 401): {text}"
                )
            raise InvokerError(f"endpoint answered HTTP {status}: {text}")
        return data

    async def discover(self) -> DiscoveryResponse:
        async with asyncio.timeout(self._timeout_s):
            return DiscoveryResponse.decode(await self._request("GET", "/discover", None))

    async def invoke(self, service: str, handler: str, body: bytes) -> bytes:
        """POST one InvokeRequest. No timer of its own (an ``asyncio.timeout`` costs ~6 µs, a
        fifth of a request's budget): the caller bounds it, as the engine does with
        ``wait_for(..., attempt_timeout_s)``; cancelling it closes its connection."""
        path = self._paths.get((service, handler))
        if path is None:
            if len(self._paths) >= 4096:
                self._paths.clear()
            path = f"/invoke/{quote(service, safe='')}/{quote(handler, safe='')}"
            self._paths[service, handler] = path
        return await self._request("POST", path, body)

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()


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
