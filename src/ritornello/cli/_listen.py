"""The orchestrator process's HTTP servers: uvicorn (httptools) on the process's own loop.

Imported off the event loop while the engine recovers (``_serve``): uvicorn is not needed
until the process listens, which it does only once recovery has started what was in flight.

uvicorn writes a response's head and its body as two ``transport.write`` calls (two ASGI
messages), and uvloop sends each at once: two ``send`` system calls per answer, about a tenth of
the ingress loop's time under load. ``HttpToolsProtocol`` here hands uvicorn a transport that
joins the writes of one loop iteration into one (``CoalescingTransport``).

It also bounds each port's connections (``_connections``: how many, and how long a client may
take to send a request; uvicorn has neither for a request's first byte, head or body: its
``limit_concurrency`` answers 503 to everyone, ``/health`` included, once that many connections
are open, silent ones included), and refuses WebSocket upgrades itself with a 403: neither app
serves them, and uvicorn's WebSocket protocol answered the ingress's with a 500 and an error in
the log (the servers run with ``ws="none"``, which also spares importing it, about 0.1 s at
start). Other upgrades (``h2c``) are answered as plain HTTP/1.1, as RFC 9110 allows, without
uvicorn's warning per request.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Generator
from typing import Any, ClassVar

import uvicorn
from uvicorn.config import LOGGING_CONFIG
from uvicorn.protocols.http.httptools_impl import STATUS_LINE
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _UvicornHttpTools

from ritornello.cli._connections import Connections, Limits

_NO_WEBSOCKET = b"WebSocket is not served here."
_DEFAULTS = Limits()


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
    """uvicorn's httptools protocol on a ``CoalescingTransport`` (one write per answer), its
    connection bounded by ``guard`` (``_connections``: one ``Connections`` per port, set on a
    subclass made for each server by ``server``; this class as is, as in
    ``uvicorn --http ritornello.cli._listen:HttpToolsProtocol``, has the default limits).

    The deadline follows the parser: idle at accept and after each answer, head at a request's
    first byte, body once its head is complete; none while a request is in the app. A request
    that the app answered before its body ended stays waiting, on its body deadline."""

    guard: ClassVar[Connections] = Connections(_DEFAULTS)
    # the guard's limits, read on every request
    _idle_s: ClassVar[float] = _DEFAULTS.idle_timeout_s
    _head_s: ClassVar[float] = _DEFAULTS.header_timeout_s
    _body_s: ClassVar[float] = _DEFAULTS.body_timeout_s
    deadline: float
    _receiving: bool  # between a request's first byte and its last

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        shim: Any = CoalescingTransport(transport, self.loop)
        super().connection_made(shim)
        self._receiving = False
        self.deadline = self.loop.time() + self._idle_s
        # past the limit, drops the longest-waiting connection: this one if no other waits
        self.guard.admit(self, len(self.connections))

    def connection_lost(self, exc: Exception | None) -> None:
        self.guard.leave(self)
        super().connection_lost(exc)

    def drop(self) -> None:
        """Close at once (a deadline passed, or room was needed); nothing more is sent."""
        self.guard.leave(self)
        self.connections.discard(self)  # not counted against the limit from now on
        self.transport.abort()

    # -- the parser's callbacks, and the end of an answer: the deadline follows them

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._receiving = True
        self.deadline = self.loop.time() + self._head_s

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self.deadline = self.loop.time() + self._body_s

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._receiving = False
        cycle = self.cycle
        if cycle is None or cycle.response_complete:  # answered already (or an upgrade)
            self.deadline = self.loop.time() + self._idle_s
            self.guard.wait(self)
        else:
            self.guard.leave(self)

    def on_response_complete(self) -> None:
        """uvicorn's, but instead of arming a keep-alive timer the connection waits again, on
        its idle deadline (or, when its next request has begun, that request's)."""
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:  # the next request, complete already, goes to the app
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
            return
        if not self._receiving:
            self.deadline = self.loop.time() + self._idle_s
        self.guard.wait(self)

    # -- upgrades

    def _should_upgrade_to_ws(self) -> bool:
        return True  # a WebSocket upgrade goes to handle_websocket_upgrade, which refuses it

    def handle_websocket_upgrade(self) -> None:
        """Refuse it (403, as an ASGI app's ``websocket.close`` before accepting would) and
        close; nothing is logged."""
        content = [STATUS_LINE[403]]
        for name, value in self.server_state.default_headers:
            content.extend([name, b": ", value, b"\r\n"])
        content.append(
            b"content-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n%s" % (len(_NO_WEBSOCKET), _NO_WEBSOCKET)
        )
        self.transport.write(b"".join(content))
        self.transport.close()

    def _unsupported_upgrade_warning(self) -> None:
        pass  # another upgrade (h2c): the request was answered as HTTP/1.1; no log per request


def server(
    app: Any,
    host: str,
    port: int,
    *,
    proxy_headers: bool = True,
    limits: Limits | None = None,
    own_log: bool = True,
) -> Server:
    """A server for ``app`` on ``host:port`` that runs on the caller's loop, its connections
    bounded by ``limits`` (the defaults if None). ``proxy_headers=False`` leaves out uvicorn's
    X-Forwarded-* middleware (the ingress reads no client address: one call less per
    request). ``own_log=False``: uvicorn installs no log handlers of its own, its records go
    to the root logger's (serve's ``--log-format json``)."""
    limits = limits or _DEFAULTS

    class Protocol(HttpToolsProtocol):
        pass

    Protocol.guard = Connections(limits, f"{host}:{port}")
    Protocol._idle_s = limits.idle_timeout_s
    Protocol._head_s = limits.header_timeout_s
    Protocol._body_s = limits.body_timeout_s
    return Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            log_config=LOGGING_CONFIG if own_log else None,
            access_log=False,
            lifespan="off",
            http=Protocol,
            ws="none",
            loop="none",
            proxy_headers=proxy_headers,
        )
    )
