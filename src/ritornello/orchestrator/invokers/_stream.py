"""``HttpStream``: one streamed exchange on a pooled connection, request lines out, answer lines in.

A chunked request body written a line at a time while the answer's body is read a line at a
time, both newline-delimited — the orchestrator's streamed attempts (docs/protocol.md).
``HttpPool.stream`` opens one; the connection goes back to the pool only once both bodies ended
cleanly, any other end closes it.

The stream does not import the pool (the pool imports it): it gives the connection back through
``ConnOwner``, and the connection feeds it through ``Exchange`` (both in ``_conn``).

What it holds is bounded by the connection's limit (``Conn.max_bytes``): the bytes received since
the last line ``next`` handed out, so one line past the limit, or lines the orchestrator has not
asked for piling up, abort the exchange (``AnswerTooLarge``). A line that arrives in pieces is
gathered in a ``bytearray``: linear in its length, however it is cut.
"""

from __future__ import annotations

import asyncio
from collections import deque

from ._client_errors import AnswerTooLarge, HttpClientError, HttpStatusError, Stale
from ._conn import Conn, ConnOwner, Response

__all__ = ["HttpStream", "chunk", "frame_line"]


def chunk(data: bytes) -> bytes:
    """``data`` as one chunk of a chunked request body."""
    return b"%x\r\n%s\r\n" % (len(data), data)


def frame_line(line: bytes) -> bytes:
    """``line`` and its newline as one chunk of a streamed request body."""
    return chunk(line + b"\n")


_END = b"0\r\n\r\n"
_LINGER_S = 5.0  # how long a finished stream waits for the answer's end before closing


class HttpStream:
    """One streamed exchange on a pooled connection: request lines out, answer lines in.

    Invariants: lines are read in order and each once; the connection's slot is given back
    exactly once — to the pool (``finish`` after both bodies ended, kept alive) or closed
    (``abort``, a broken answer, or an answer that does not end within ``_LINGER_S`` of
    ``finish``). A non-200 answer is read whole and raised as ``HttpStatusError`` by ``next``.

    ``next(timeout_s)`` bounds each wait for a line with one timer per stream, not one per call:
    a call only moves ``_deadline`` forward; the timer, when it fires early, re-arms itself at
    the current deadline, and expires the wait only once the deadline of the wait in progress
    has passed. The timer is cancelled when the slot is given back.
    """

    __slots__ = (
        "_conn",
        "_deadline",
        "_done",
        "_error",
        "_expired",
        "_held",
        "_lines",
        "_partial",
        "_pool",
        "_timer",
        "_wake",
        "status",
    )

    def __init__(self, pool: ConnOwner, conn: Conn) -> None:
        self._pool = pool
        self._conn = conn
        self._lines: deque[bytes] = deque()
        self._partial = bytearray()  # the line being received, up to its newline
        self._held = 0  # bytes of the answer's body received and not yet handed out by ``next``
        self._error: list[bytes] = []
        self._wake: asyncio.Future[None] | None = None
        self._done = False  # the slot was given back
        self._deadline: float | None = None  # loop time the line awaited now is due by
        self._timer: asyncio.TimerHandle | None = None  # armed at or before ``_deadline``
        self._expired = False  # the wait in progress passed its deadline
        self.status: int | None = None

    # -- fed by the connection (``Exchange``)

    def _on_status(self, status: int) -> None:
        self.status = status
        self._signal()

    def _feed(self, data: bytes) -> None:
        if self.status != 200:
            self._error.append(data)
            return
        self._held += len(data)
        if b"\n" not in data:
            self._partial += data
            return
        parts = data.split(b"\n")
        partial = self._partial
        if partial:
            partial += parts[0]
            parts[0] = bytes(partial)
            partial.clear()
        tail = parts.pop()
        if tail:
            partial += tail
        self._lines.extend(parts)
        self._signal()

    def _answer_ended(self, fut: asyncio.Future[Response]) -> None:
        if not fut.cancelled():
            fut.exception()  # retrieved here: ``next`` or ``finish`` report it
        self._signal()

    def _signal(self) -> None:
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    async def _wait(self) -> None:
        self._wake = self._pool._loop.create_future()
        try:
            await self._wake
        finally:
            self._wake = None

    async def _head(self) -> None:
        while self.status is None:
            fut = self._conn.fut
            if fut is not None and fut.done():
                fut.result()  # raises what broke it (Stale before any byte)
                raise HttpClientError("answer without a status line")
            await self._wait()

    def _arm(self, timeout: float) -> None:
        """The line awaited now must arrive within ``timeout`` seconds."""
        loop = self._pool._loop
        self._deadline = deadline = loop.time() + timeout
        if self._timer is None:
            self._timer = loop.call_at(deadline, self._expire)

    def _expire(self) -> None:
        self._timer = None
        deadline = self._deadline
        if self._done or self._wake is None or deadline is None:
            return  # not waiting (or without a bound): the next bounded wait arms a timer
        if self._pool._loop.time() < deadline:
            self._timer = self._pool._loop.call_at(deadline, self._expire)
            return
        self._expired = True
        self._signal()

    # -- public

    @property
    def headers(self) -> dict[str, str]:
        """The answer's headers (names lower-cased), once its status arrived."""
        return self._conn.headers

    async def next(self, timeout_s: float | None = None) -> bytes:
        """The answer's next line (without its newline). Raises ``HttpStatusError`` for a
        non-200 answer, ``HttpClientError`` when the answer ended or broke first, and
        ``TimeoutError`` when ``timeout_s`` seconds passed first (the stream is left as it is:
        the caller aborts it), ``AnswerTooLarge`` when more than the connection's limit arrived
        since the last line. One timer per stream, not an ``asyncio.timeout`` per call."""
        if not self._lines:
            self._expired = False
            if timeout_s is not None:
                self._arm(timeout_s)
            else:
                self._deadline = None
        while not self._lines:
            if self._expired:
                raise TimeoutError(f"no streamed answer line within {timeout_s:g} s")
            fut = self._conn.fut
            if fut is not None and fut.done():
                exc = None if fut.cancelled() else fut.exception()
                if isinstance(exc, AnswerTooLarge):
                    raise exc
                if exc is not None:
                    reason = "closed before an answer" if isinstance(exc, Stale) else str(exc)
                    raise HttpClientError(f"streamed answer broke: {reason}")
                if self.status != 200:
                    error = b"".join(self._error)
                    raise HttpStatusError(self.status or 0, self._conn.headers, error)
                raise HttpClientError("the streamed answer ended without another line")
            await self._wait()
        line = self._lines.popleft()
        # the limit bounds what is held: from now on, count only what is still buffered
        self._held -= len(line) + 1
        self._conn.received = self._held
        return line

    def send(self, line: bytes) -> None:
        """Write one request line (a newline is added)."""
        self.send_framed(frame_line(line))

    def send_framed(self, data: bytes) -> None:
        """Write one request line framed by ``frame_line`` (a constant line framed once)."""
        transport = self._conn.transport
        if self._done or self._conn.dead or transport is None or transport.is_closing():
            raise HttpClientError("the streamed request is closed")
        transport.write(data)

    def finish(self) -> None:
        """End the request body; the connection returns to the pool once the answer ended."""
        if self._done:
            return
        conn = self._conn
        transport = conn.transport
        fut = conn.fut
        if conn.dead or transport is None or transport.is_closing() or fut is None:
            self.abort()
            return
        transport.write(_END)
        if fut.done():
            self._settle(fut)
            return
        linger = self._pool._loop.call_later(_LINGER_S, self.abort)

        def ended(f: asyncio.Future[Response]) -> None:
            linger.cancel()
            self._settle(f)

        fut.add_done_callback(ended)

    def _settle(self, fut: asyncio.Future[Response]) -> None:
        if self._done:
            return
        conn = self._conn
        transport = conn.transport
        clean = not fut.cancelled() and fut.exception() is None  # retrieves any exception
        if (
            clean
            and not self._lines
            and not self._partial
            and conn.keep_alive
            and not conn.dead
            and transport is not None
            and not transport.get_write_buffer_size()
        ):
            self._done = True
            self._disarm()
            conn.stream = None
            self._pool._release(conn)
        else:
            self.abort()

    def abort(self) -> None:
        """Close the connection now (its slot is freed); idempotent."""
        if self._done:
            return
        self._done = True
        self._disarm()
        conn = self._conn
        conn.stream = None
        fut = conn.fut
        conn.close(abort=True)
        if fut is not None and fut.done() and not fut.cancelled():
            fut.exception()  # retrieved: a broken answer nobody reads is not an error to log
        self._pool._conns.discard(conn)
        self._pool._free_slot()

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
