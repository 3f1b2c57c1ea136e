"""The orchestrator process's HTTP servers: uvicorn (httptools) on the process's own loop.

Imported off the event loop while the engine recovers (``_serve``): uvicorn is not needed
until the process listens, which it does only once recovery has started what was in flight.

uvicorn writes a response's head and its body as two ``transport.write`` calls (two ASGI
messages), and uvloop sends each at once: two ``send`` system calls per answer, about a tenth of
the ingress loop's time under load. ``HttpToolsProtocol`` here hands uvicorn a transport that
joins the writes of one loop iteration into one (``CoalescingTransport``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Generator
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _UvicornHttpTools


class Server(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the process that hosts several."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class CoalescingTransport:
    """A transport that sends what is written in one loop iteration as one write.

    Invariants: bytes reach the real transport in the order they were written, no later than
    the callback the first of them scheduled (``call_soon``: the same or the next loop
    iteration), and before ``close`` or ``write_eof`` act; after ``abort`` nothing buffered is
    sent. Everything else is the real transport's (``__getattr__``)."""

    __slots__ = ("_loop", "_pending", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] | None = None

    def write(self, data: bytes) -> None:
        if self._pending is None:
            self._pending = [data]
            self._loop.call_soon(self.flush)
        else:
            self._pending.append(data)

    def flush(self) -> None:
        """Send what is buffered (nothing, once the real transport is closing)."""
        pending, self._pending = self._pending, None
        if pending and not self._transport.is_closing():
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def abort(self) -> None:
        self._pending = None
        self._transport.abort()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class HttpToolsProtocol(_UvicornHttpTools):
    """uvicorn's httptools protocol on a ``CoalescingTransport``: one write per answer."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        shim: Any = CoalescingTransport(transport, self.loop)
        super().connection_made(shim)


def server(app: Any, host: str, port: int, *, proxy_headers: bool = True) -> Server:
    """A server for ``app`` on ``host:port`` that runs on the caller's loop.
    ``proxy_headers=False`` leaves out uvicorn's X-Forwarded-* middleware (the ingress reads
    no client address: one call less per request)."""
    return Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            http=HttpToolsProtocol,
            loop="none",
            proxy_headers=proxy_headers,
        )
    )
