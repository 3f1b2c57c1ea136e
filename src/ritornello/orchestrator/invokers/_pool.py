"""``HttpPool``: our minimal HTTP/1.1 client for the orchestrator's hot path, a keep-alive pool.

One ``HttpPool`` talks to one origin (scheme, host, port), each connection a ``Conn`` (``_conn``:
an asyncio.Protocol whose answers httptools parses). Per request: one bytes join for the
request, one future, one coroutine; no locks.

Connection reuse is LIFO (the most recently used socket is the warmest). At most ``limit``
connections exist, counting those being opened; callers beyond that queue in FIFO order. Idle
connections are closed after ``idle_timeout`` by a single timer for the whole pool.

Each request may name ``max_bytes``, the most its answer may bring (``_conn``: counted as it
arrives, the connection aborted past it, ``AnswerTooLarge``); without it an answer is unbounded.

A request that fails on a *reused* connection before any byte of an answer arrived (the server
closed the idle socket: EOF or reset) is sent once more on a fresh connection. A request is never
re-sent once answer bytes were received. Cancelling a request closes its connection, so a late
answer can never be read by the next request.

``HttpPool.stream`` opens a streamed exchange on a pooled connection (``HttpStream``, in
``_stream``), with the same one resend on a reused connection found dead.

With a ``resolve`` hook (``_hosts.HostPolicy.resolve``: resolve the host and check where it
leads), a connection is opened to an address the hook returned, tried in its order, and the
host is never resolved a second time between the hook's check and the connect.

Imports go one way: ``_pool`` -> ``_stream`` -> ``_conn`` -> ``_client_errors``. The connection
and the stream hand connections back to the pool through ``ConnOwner`` (``_conn``), which
``HttpPool`` implements without naming it.
"""

from __future__ import annotations

import asyncio
import ssl as _ssl
from collections import deque

from ._client_errors import HttpClientError, Stale, StreamHeadTimeout
from ._conn import NO_LIMIT, Conn, Response
from ._connect import Resolver, connect_first, parse_base_url
from ._stream import HttpStream, chunk

__all__ = ["HttpPool"]

_LARGE = 1 << 16  # bodies above this are written separately instead of copied into one buffer


class HttpPool:
    """Keep-alive HTTP/1.1 connections to one origin.

    ``request`` returns ``(status, headers, body)``; header names are lower-cased. It raises
    ``HttpClientError`` when the server can't be reached (refused, DNS, connect timeout) or the
    connection breaks before a full answer arrived. There is no read timeout: bound a request by
    cancelling it (``asyncio.wait_for``); a cancelled request's connection is closed.
    ``resolve`` (None: the event loop resolves the host) gives the addresses to connect to;
    what it raises other than ``OSError`` (a refused host) reaches the caller as it is.
    """

    def __init__(
        self,
        base_url: str,
        *,
        limit: int = 256,
        connect_timeout: float = 5.0,
        idle_timeout: float = 30.0,
        headers: dict[str, str] | None = None,
        ssl: _ssl.SSLContext | None = None,
        resolve: Resolver | None = None,
    ) -> None:
        parts, self._host, self._port, default_port = parse_base_url(base_url)
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.base_url = base_url
        self._ssl: _ssl.SSLContext | None = None
        if parts.scheme == "https":
            self._ssl = ssl if ssl is not None else _ssl.create_default_context()
        host = f"[{self._host}]" if ":" in self._host else self._host
        if self._port != default_port:
            host = f"{host}:{self._port}"
        self._host_line = f" HTTP/1.1\r\nhost: {host}\r\n".encode("latin-1")
        # Everything after the request target that does not change between requests.
        self._fixed = self._host_line + _encode_headers(headers or {})
        self._prefix = parts.path.rstrip("/")
        self._methods: dict[str, bytes] = {}
        self._limit = limit
        self._connect_timeout = connect_timeout
        self._resolve = resolve
        self._idle_timeout = idle_timeout
        self._idle: list[Conn] = []  # LIFO; ordered by idle_since, oldest first
        self._waiters: deque[asyncio.Future[Conn | None]] = deque()
        self._slots = 0  # connections open or being opened (<= limit)
        self._conns: set[Conn] = set()
        self._sweeper: asyncio.TimerHandle | None = None
        self._closed = False
        self._loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]  # bound on use

    # -- public

    def set_headers(self, headers: dict[str, str]) -> None:
        """Send ``headers`` (instead of those given before) with every later request."""
        self._fixed = self._host_line + _encode_headers(headers)

    @property
    def waiting(self) -> int:
        """Requests queued for a connection (all ``limit`` are in use)."""
        return len(self._waiters)

    async def request(
        self,
        method: str,
        path: str,
        body: bytes | None,
        headers: dict[str, str] | None = None,
        *,
        max_bytes: int = NO_LIMIT,
    ) -> Response:
        """Send one request; ``path`` is appended to the base URL's path. ``AnswerTooLarge``
        if more than ``max_bytes`` of an answer arrive."""
        verb, target, fixed = self._start(method, path, headers)
        if body is None:
            head = b"".join((verb, target, fixed, b"content-length: 0\r\n\r\n"))
            tail = None
        elif len(body) <= _LARGE:
            head = b"".join((verb, target, fixed, b"content-length: %d\r\n\r\n" % len(body), body))
            tail = None
        else:  # don't copy a large body: write it after the head
            head = b"".join((verb, target, fixed, b"content-length: %d\r\n\r\n" % len(body)))
            tail = body

        conn = await self._acquire()
        retried = False
        while True:
            reused = conn.used > 0
            try:
                result = await conn.send(head, tail, None, max_bytes)
            except Stale as exc:
                conn = await self._replace_stale(conn, exc, reused=reused, retried=retried)
                retried = True
                continue
            except BaseException:
                # Cancelled (timeout) or a broken answer: never reuse this connection.
                conn.close(abort=True)
                self._conns.discard(conn)
                self._free_slot()
                raise
            break
        # Reuse only if the server keeps it open and took the whole request (an early answer to
        # a large upload may leave part of it unsent: that connection's framing is lost).
        transport = conn.transport
        if (
            conn.keep_alive
            and not conn.dead
            and transport
            and not transport.get_write_buffer_size()
        ):
            self._release(conn)
        else:
            conn.close()
            self._conns.discard(conn)
            self._free_slot()
        return result

    async def stream(
        self,
        method: str,
        path: str,
        first: bytes,
        headers: dict[str, str] | None = None,
        *,
        head_timeout: float | None = None,
        max_bytes: int = NO_LIMIT,
    ) -> HttpStream:
        """Open a streamed exchange whose request body starts with the line ``first`` (no
        newline in it); returns once the answer's status line arrived (within
        ``head_timeout`` seconds if given, else ``StreamHeadTimeout``). Like ``request``, a
        reused connection that turns out dead before any answer byte is replaced once.
        ``max_bytes`` bounds what the answer may bring beyond the lines taken from it."""
        if b"\n" in first:
            raise ValueError("a stream line must not contain a newline")
        verb, target, fixed = self._start(method, path, headers)
        head = b"".join(
            (verb, target, fixed, b"transfer-encoding: chunked\r\n\r\n", chunk(first + b"\n"))
        )
        conn = await self._acquire()
        retried = False
        while True:
            reused = conn.used > 0
            stream = HttpStream(self, conn)
            try:
                conn.send(head, None, stream, max_bytes)
                if head_timeout is None:
                    await stream._head()
                else:
                    try:
                        async with asyncio.timeout(head_timeout):
                            await stream._head()
                    except TimeoutError:
                        raise StreamHeadTimeout(
                            f"no answer to a streamed request within {head_timeout:g} s"
                        ) from None
            except Stale as exc:
                conn = await self._replace_stale(conn, exc, reused=reused, retried=retried)
                retried = True
                continue
            except BaseException:
                stream.abort()
                raise
            return stream

    async def close(self) -> None:
        """Close every connection (idle and busy) and fail queued requests. Idempotent."""
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        while self._waiters:
            w = self._waiters.popleft()
            if not w.done():
                w.set_exception(HttpClientError("the HTTP pool is closed"))
        self._idle.clear()
        waits: list[asyncio.Future[None]] = []
        for conn in list(self._conns):
            conn.idle = False
            if conn.transport is not None and conn.lost is None and not conn.dead:
                conn.lost = asyncio.get_running_loop().create_future()
                waits.append(conn.lost)
            conn.close()
        self._conns.clear()
        self._slots = 0
        if waits:
            # Let connection_lost run so every socket is really closed when this returns.
            await asyncio.wait(waits, timeout=1.0)

    # -- internals

    async def _replace_stale(self, conn: Conn, exc: Stale, *, reused: bool, retried: bool) -> Conn:
        """``conn`` died before any answer byte. On a reused connection the server most likely
        closed it while idle: once, a fresh connection in the same slot; otherwise (or the
        second time) HttpClientError, the slot freed."""
        conn.close(abort=True)
        self._conns.discard(conn)
        if retried or not reused or self._closed:
            self._free_slot()
            cause = exc.args[0] if exc.args else None
            raise HttpClientError(
                f"connection to {self._host}:{self._port} closed before an answer"
                + (f": {cause!r}" if cause is not None else "")
            ) from None
        return await self._open()

    def _start(
        self, method: str, path: str, headers: dict[str, str] | None
    ) -> tuple[bytes, bytes, bytes]:
        """The request line's method and target, and the fixed headers plus ``headers``."""
        if self._closed:
            raise HttpClientError("the HTTP pool is closed")
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        verb = self._methods.get(method)
        if verb is None:
            verb = self._method(method)
        fixed = self._fixed
        if headers:
            fixed = fixed + _encode_headers(headers)
        return verb, (self._prefix + path).encode(), fixed

    def _method(self, method: str) -> bytes:
        if not method.isalpha() or not method.isupper():
            raise ValueError(f"bad HTTP method {method!r}")
        verb = method.encode("ascii") + b" "
        self._methods[method] = verb
        return verb

    async def _acquire(self) -> Conn:
        idle = self._idle
        while idle:
            conn = idle.pop()
            conn.idle = False
            if not conn.dead:
                return conn
            self._conns.discard(conn)
            self._free_slot()
        if self._slots < self._limit:
            self._slots += 1
            return await self._open()
        waiter: asyncio.Future[Conn | None] = self._loop.create_future()
        self._waiters.append(waiter)
        try:
            got = await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                # Handed a connection or a slot just as we were cancelled: pass it on.
                handed = waiter.result()
                if handed is None:
                    self._free_slot()
                elif handed.dead:
                    self._conns.discard(handed)
                    self._free_slot()
                else:
                    self._release(handed)
            raise
        if got is None or got.dead:
            if got is not None:
                self._conns.discard(got)
            return await self._open()  # the slot is ours
        return got

    async def _open(self) -> Conn:
        """Open a connection in a slot the caller already holds (freed again on failure)."""
        try:
            if self._closed:
                raise HttpClientError("the HTTP pool is closed")
            try:
                async with asyncio.timeout(self._connect_timeout):
                    if self._resolve is None:
                        _, conn = await self._loop.create_connection(
                            lambda: Conn(self), self._host, self._port, ssl=self._ssl
                        )
                    else:
                        conn = await self._connect_resolved(self._resolve)
            except TimeoutError:
                raise HttpClientError(
                    f"connecting to {self._host}:{self._port} timed out after "
                    f"{self._connect_timeout:g} s"
                ) from None
            except OSError as exc:
                raise HttpClientError(
                    f"cannot connect to {self._host}:{self._port}: {exc}"
                ) from None
            if self._closed:
                conn.close()
                raise HttpClientError("the HTTP pool is closed")
        except BaseException:
            self._free_slot()
            raise
        self._conns.add(conn)
        return conn

    async def _connect_resolved(self, resolve: Resolver) -> Conn:
        """A connection to the first address ``resolve`` gives that accepts one."""
        return await connect_first(
            self._loop, resolve, self._host, self._port, lambda: Conn(self), self._ssl
        )

    def _release(self, conn: Conn) -> None:
        """A healthy connection whose answer was read: to a queued request, or idle."""
        waiters = self._waiters
        while waiters:
            w = waiters.popleft()
            if not w.done():
                w.set_result(conn)
                return
        conn.fut = None
        conn.idle = True
        conn.idle_since = self._loop.time()
        self._idle.append(conn)
        if self._sweeper is None:
            self._sweeper = self._loop.call_at(conn.idle_since + self._idle_timeout, self._sweep)

    def _free_slot(self) -> None:
        """A connection slot is no longer used: give it to a queued request, or shrink."""
        waiters = self._waiters
        while waiters:
            w = waiters.popleft()
            if not w.done():
                w.set_result(None)
                return
        if self._slots > 0:
            self._slots -= 1

    def _drop_idle(self, conn: Conn) -> None:
        """An idle connection was closed by the server."""
        conn.idle = False
        try:
            self._idle.remove(conn)
        except ValueError:
            return
        self._conns.discard(conn)
        self._free_slot()

    def _sweep(self) -> None:
        self._sweeper = None
        idle = self._idle
        cutoff = self._loop.time() - self._idle_timeout
        n = 0
        while n < len(idle) and idle[n].idle_since <= cutoff:
            n += 1
        if n:
            old = idle[:n]
            del idle[:n]
            for conn in old:
                conn.idle = False
                conn.close()
                self._conns.discard(conn)
                self._free_slot()
        if idle and not self._closed:
            self._sweeper = self._loop.call_at(idle[0].idle_since + self._idle_timeout, self._sweep)


def _encode_headers(headers: dict[str, str]) -> bytes:
    lines = []
    for name, value in headers.items():
        if not name or any(c in name for c in ":\r\n\0 \t") or any(c in value for c in "\r\n\0"):
            raise ValueError(f"invalid HTTP header {name!r}: {value!r}")
        lines.append(f"{name}: {value}\r\n")
    return "".join(lines).encode("latin-1")
