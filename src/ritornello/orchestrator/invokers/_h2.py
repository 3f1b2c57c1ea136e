"""``H2Client``: our HTTP/2 client, for endpoints that speak Restate's service protocol in
BIDI_STREAM mode (a request body written while the answer's body is read, on one stream).

The framing, HPACK and the protocol's state machines are hyper-h2's (``h2``, sans-I/O); this
module moves its bytes over an ``asyncio.Protocol`` and turns its events into exchanges.

One ``H2Client`` talks to one origin, ``http://`` (h2c with prior knowledge: the connection
opens with the HTTP/2 preface) or ``https://`` (TLS; the server must select ``h2`` by ALPN, else
the connection is refused). It keeps one connection, opened on first use and opened again when
it dies, when the server sends GOAWAY, or after ``idle_timeout`` without a stream; every
exchange is a stream on it. Opening the connection includes waiting for the server's SETTINGS,
so the first streams already respect its ``MAX_CONCURRENT_STREAMS``.

Invariants:

- At most ``min(max_streams, the server's MAX_CONCURRENT_STREAMS)`` streams are open on a
  connection; ``open`` waits beyond that, first come first served. A stream holds its slot
  until it is closed: both sides ended, or reset by either side, or the connection died.
- What a stream holds is bounded. Received: the server may send only what our windows allow, and
  a stream's window reopens only as the reader takes the data (``read``), so a stream holds at
  most ``stream_window`` unread bytes and a connection ``max_streams * stream_window``; a body
  past ``max_bytes`` resets the stream (``AnswerTooLarge``) and is dropped. Sent: ``write``
  queues, and sends what the server's windows and the socket take (stopped while the transport
  is paused); ``drain`` waits until this stream's queue went out. A writer that drains between
  writes holds at most what it wrote since.
- Data received is acknowledged (the window given back) when read, or when the stream closes:
  an exchange dropped unread never starves the connection's window.
- Errors are ``HttpClientError``: ``H2Error`` and its subclasses (a reset stream, GOAWAY, a lost
  connection, a timeout), ``AnswerTooLarge``; ``unprocessed`` says the server certainly did not
  act on the request (refused stream, above GOAWAY's last stream id), so sending it again is
  safe. ``request`` does so, once.
- With a ``resolve`` hook (``_hosts.HostPolicy.resolve``), a connection goes to an address the
  hook returned and checked, in its order; the host is never resolved again in between.

Limits: h2 gives up a connection on GOAWAY (no further frames are read), so a GOAWAY fails every
stream still open on it, not only those above its last stream id. Server push is disabled.
There is no PING keep-alive: a silent dead peer is found by the readers' timeouts.
"""

from __future__ import annotations

import asyncio
import ssl as _ssl
from collections import deque
from types import TracebackType
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

from ._client_errors import AnswerTooLarge, HttpClientError
from ._conn import NO_LIMIT, Response
from ._connect import Resolver, connect_first, parse_base_url

__all__ = [
    "DEFAULT_MAX_STREAMS",
    "DEFAULT_STREAM_WINDOW",
    "H2Client",
    "H2Error",
    "H2Exchange",
    "H2GoAway",
    "H2StreamReset",
    "H2Timeout",
]

#: Streams open at once on a connection, unless the server allows fewer.
DEFAULT_MAX_STREAMS = 100
#: The receive window of each stream: unread bytes a stream may hold.
DEFAULT_STREAM_WINDOW = 1 << 18
_MAX_WINDOW = 2**31 - 1  # the largest flow-control window HTTP/2 allows
_INITIAL_WINDOW = 65_535  # every connection window starts at this (RFC 9113 §6.9.2)
_MAX_HEADER_LIST = 1 << 16  # the most header bytes (HPACK-decoded) an answer may bring
_LAST_STREAM_ID = 2**31 - 1
# Headers that are HTTP/1.1's connection management: not allowed in HTTP/2 (RFC 9113 §8.2.2).
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "host"}
)
_CANCEL = h2.errors.ErrorCodes.CANCEL
_REFUSED = h2.errors.ErrorCodes.REFUSED_STREAM


# ------------------------------------------------------------------------------------- errors


class H2Error(HttpClientError):
    """An HTTP/2 exchange failed. ``unprocessed``: the server certainly did not process the
    request (RFC 9113 §8.7), so sending it again on a new stream is safe."""

    def __init__(self, message: str, *, unprocessed: bool = False) -> None:
        super().__init__(message)
        self.unprocessed = unprocessed


class H2StreamReset(H2Error):
    """The server reset the stream (RST_STREAM) with ``error_code``; ``REFUSED_STREAM`` means it
    never processed the request."""

    def __init__(self, message: str, error_code: int) -> None:
        super().__init__(message, unprocessed=error_code == _REFUSED)
        self.error_code = error_code


class H2GoAway(H2Error):
    """The server closed the connection with GOAWAY (``error_code``, ``last_stream_id``)."""

    def __init__(
        self, message: str, error_code: int, last_stream_id: int, *, unprocessed: bool
    ) -> None:
        super().__init__(message, unprocessed=unprocessed)
        self.error_code = error_code
        self.last_stream_id = last_stream_id


class H2Timeout(H2Error, TimeoutError):
    """Nothing arrived within the time a call allowed; the exchange is left as it was."""


def _code_name(code: int | None) -> str:
    if code is None:
        return "no error code"
    try:
        return f"{h2.errors.ErrorCodes(code).name} (0x{code:x})"
    except ValueError:
        return f"error 0x{code:x}"


def _decode_headers(raw: list[Any]) -> tuple[int, dict[str, str]]:
    """The ``:status`` and the other headers (names lower-case, repeats joined by ``, ``)."""
    status = 0
    headers: dict[str, str] = {}
    for name, value in raw:
        key = name.decode("latin-1") if isinstance(name, bytes) else str(name)
        val = value.decode("latin-1") if isinstance(value, bytes) else str(value)
        if key.startswith(":"):
            if key == ":status":
                status = int(val)
            continue
        key = key.lower()
        headers[key] = f"{headers[key]}, {val}" if key in headers else val
    return status, headers


# ----------------------------------------------------------------------------------- exchange


class H2Exchange:
    """One stream: a request body written (``write``, ``end``) while the answer is read
    (``head``, ``read``), full duplex. ``H2Client.open`` makes one.

    One writer and one reader at a time (they may be different tasks). The exchange holds its
    connection slot until it is closed: both sides ended (``end`` sent, the answer read to its
    end or not), reset by either side (``abort``, the server, ``AnswerTooLarge``), or the
    connection died. ``async with`` aborts an exchange left unfinished.

    A broken exchange still hands out what it received before breaking, then raises;
    ``AnswerTooLarge`` and ``abort`` drop what was buffered.
    """

    __slots__ = (
        "_body",
        "_closed",
        "_conn",
        "_drainer",
        "_end_wanted",
        "_head",
        "_local_done",
        "_max_bytes",
        "_queue",
        "_queued",
        "_read_error",
        "_reader",
        "_received",
        "_remote_done",
        "_unacked",
        "_write_error",
        "stream_id",
        "trailers",
    )

    def __init__(self, conn: _H2Conn, stream_id: int, max_bytes: int) -> None:
        self._conn = conn
        self.stream_id = stream_id
        self._max_bytes = max_bytes
        self._queue: deque[memoryview] = deque()  # written, not yet handed to h2
        self._queued = 0  # bytes in ``_queue``
        self._end_wanted = False  # ``end`` was called
        self._local_done = False  # END_STREAM sent (or the stream is gone)
        self._remote_done = False  # the answer's END_STREAM arrived
        self._closed = False  # the stream is closed and its slot given back
        self._head: tuple[int, dict[str, str]] | None = None
        self._body = bytearray()  # received, not yet read
        self._unacked = 0  # flow-controlled bytes received and not yet acknowledged
        self._received = 0  # body bytes received in all (against ``max_bytes``)
        self._read_error: HttpClientError | None = None
        self._write_error: HttpClientError | None = None
        self._reader: asyncio.Future[None] | None = None
        self._drainer: asyncio.Future[None] | None = None
        #: The answer's trailers, if it had any (once ``read`` returned b"").
        self.trailers: dict[str, str] = {}

    # -- public

    @property
    def status(self) -> int | None:
        """The answer's status, once its head arrived."""
        return None if self._head is None else self._head[0]

    @property
    def headers(self) -> dict[str, str]:
        """The answer's headers (names lower-cased), once its head arrived."""
        return {} if self._head is None else self._head[1]

    @property
    def closed(self) -> bool:
        """The stream is closed (ended both ways, reset, or its connection died)."""
        return self._closed

    @property
    def buffered(self) -> int:
        """Bytes written and not yet sent (``drain`` waits for 0)."""
        return self._queued

    def write(self, data: bytes) -> None:
        """Queue ``data`` for the request body; it is sent as the windows allow (at once if they
        do). Raises the exchange's error if it broke, ``RuntimeError`` after ``end``. Call
        ``drain`` to wait until it went out."""
        if self._write_error is not None:
            raise self._write_error
        if self._end_wanted:
            raise RuntimeError("write after end() of the request body")
        if not data:
            return
        view = memoryview(data if isinstance(data, bytes) else bytes(data))
        self._queue.append(view)
        self._queued += len(view)
        conn = self._conn
        conn.sending[self.stream_id] = self
        conn.pump()

    async def drain(self, timeout_s: float | None = None) -> None:
        """Wait until everything written (and the end, if ``end`` was called) was handed to the
        connection. Raises the exchange's error if it broke (even after that), ``H2Timeout``
        after ``timeout_s`` seconds."""
        while True:
            if self._write_error is not None:
                raise self._write_error
            if not self._queued and (self._local_done or not self._end_wanted):
                return
            if self._drainer is not None:
                raise RuntimeError("another task is already draining this exchange")
            fut = self._conn.loop.create_future()
            self._drainer = fut
            try:
                await _wait(fut, timeout_s, f"the request body to go out on {self._where()}")
            finally:
                self._drainer = None

    def end(self) -> None:
        """End the request body (END_STREAM, after what is queued). Idempotent; does nothing
        once the exchange broke or closed."""
        if self._end_wanted or self._closed or self._write_error is not None:
            return
        self._end_wanted = True
        conn = self._conn
        conn.sending[self.stream_id] = self
        conn.pump()

    async def head(self, timeout_s: float | None = None) -> tuple[int, dict[str, str]]:
        """The answer's status and headers (names lower-cased); informational (1xx) heads are
        skipped. Raises the exchange's error, or ``H2Timeout`` after ``timeout_s`` seconds."""
        while self._head is None:
            if self._read_error is not None:
                raise self._read_error
            if self._closed:
                raise H2Error(f"{self._where()} closed without an answer")
            await self._wait_read(timeout_s, "answer head")
        return self._head

    async def read(self, timeout_s: float | None = None) -> bytes:
        """The answer's body received since the last call (one or more DATA frames), waiting
        for some if there is none; b"" once the answer ended. What it returns is acknowledged,
        so the server may send as much again. Raises ``AnswerTooLarge`` once the body passed
        ``max_bytes`` (the stream was reset), the exchange's error after what it received
        before breaking, ``H2Timeout`` after ``timeout_s`` seconds without data."""
        while True:
            body = self._body
            if body:
                data = bytes(body)
                body.clear()
                if self._unacked:
                    n = self._unacked
                    self._unacked = 0
                    self._conn.ack(n, self.stream_id)
                return data
            if self._read_error is not None:
                raise self._read_error
            if self._remote_done:
                return b""
            if self._closed:
                raise H2Error(f"{self._where()} closed before the answer ended")
            await self._wait_read(timeout_s, "answer data")

    def abort(self) -> None:
        """Reset the stream (RST_STREAM CANCEL) unless it is closed already, dropping what is
        queued and buffered; later calls raise. Idempotent."""
        if self._closed:
            return
        error = H2Error(f"{self._where()} was aborted")
        self._read_error = self._read_error or error
        self._write_error = self._write_error or error
        self._body.clear()
        self._conn.reset(self.stream_id, _CANCEL)
        self._close()

    async def __aenter__(self) -> H2Exchange:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not (self._local_done and self._remote_done):
            self.abort()

    # -- fed by the connection

    def _on_head(self, status: int, headers: dict[str, str]) -> None:
        self._head = (status, headers)
        self._wake_reader()

    def _on_data(self, data: bytes, flow: int) -> None:
        self._received += len(data)
        if self._received > self._max_bytes:  # drop it: nothing past the limit is held
            error = AnswerTooLarge(self._max_bytes)
            self._read_error = self._write_error = error
            self._body.clear()
            conn = self._conn
            conn.reset(self.stream_id, _CANCEL)
            conn.ack(flow, self.stream_id)  # the connection's window only: the stream is gone
            self._close()
            return
        self._body += data
        self._unacked += flow
        self._wake_reader()

    def _on_trailers(self, headers: dict[str, str]) -> None:
        self.trailers = headers

    def _on_remote_end(self) -> None:
        self._remote_done = True
        self._wake_reader()
        if self._local_done:
            self._close()

    def _on_reset(self, code: int, remote: bool) -> None:
        if self._closed:
            return
        if code == h2.errors.ErrorCodes.NO_ERROR and self._remote_done:
            # the answer is whole: the server only asks us to stop sending (RFC 9113 §8.1)
            self._write_error = H2Error(
                f"the server stopped reading the request on {self._where()} (after the answer)"
            )
        else:
            by = "by the server" if remote else "for a protocol error by the server"
            error = H2StreamReset(f"{self._where()} was reset {by}: {_code_name(code)}", code)
            self._read_error = self._read_error or error
            self._write_error = self._write_error or error
        self._close()

    def _fail(self, error: HttpClientError) -> None:
        """The connection broke: the answer fails unless it was whole."""
        if self._closed:
            return
        if not self._remote_done:
            self._read_error = self._read_error or error
        self._write_error = self._write_error or error
        self._close()

    def _sent_end(self) -> None:
        self._local_done = True
        if self._remote_done:
            self._close()

    def _close(self) -> None:
        """The stream is closed: give back its slot and its unacknowledged window; wake both
        sides. The data buffered stays for the reader."""
        if self._closed:
            return
        self._closed = True
        self._local_done = True
        conn = self._conn
        conn.exchanges.pop(self.stream_id, None)
        conn.sending.pop(self.stream_id, None)
        self._queue.clear()
        self._queued = 0
        if self._unacked:
            n = self._unacked
            self._unacked = 0
            conn.ack(n, self.stream_id)
        self._wake_reader()
        self._wake_drainer()
        conn.release_slot()

    def _wake_reader(self) -> None:
        fut = self._reader
        if fut is not None and not fut.done():
            fut.set_result(None)

    def _wake_drainer(self) -> None:
        fut = self._drainer
        if fut is not None and not fut.done():
            fut.set_result(None)

    async def _wait_read(self, timeout_s: float | None, what: str) -> None:
        if self._reader is not None:
            raise RuntimeError("another task is already reading this exchange")
        fut = self._conn.loop.create_future()
        self._reader = fut
        try:
            await _wait(fut, timeout_s, f"{what} on {self._where()}")
        finally:
            self._reader = None

    def _where(self) -> str:
        return f"HTTP/2 stream {self.stream_id} to {self._conn.label}"


async def _wait(fut: asyncio.Future[None], timeout_s: float | None, what: str) -> None:
    if timeout_s is None:
        await fut
        return
    try:
        async with asyncio.timeout(timeout_s):
            await fut
    except TimeoutError:
        raise H2Timeout(f"no {what} within {timeout_s:g} s") from None


# --------------------------------------------------------------------------------- connection


class _H2Conn(asyncio.Protocol):
    """One HTTP/2 connection: bytes in to h2, its events to the exchanges, its frames out.

    ``active`` counts the slots taken (open streams, and slots handed to queued ``open`` calls
    about to start one). ``sending`` holds the exchanges with something queued to send, in the
    order they queued it; ``pump`` sends a frame from each in turn while the windows and the
    transport allow. Once ``dead`` nothing is read or sent; a ``retiring`` connection takes no
    new stream and closes when its last one does.
    """

    def __init__(self, client: H2Client) -> None:
        self.client = client
        self.loop = client._loop
        self.label = client._label
        config = h2.config.H2Configuration(client_side=True, header_encoding=None)
        self.h2 = h2.connection.H2Connection(config=config)
        codes = h2.settings.SettingCodes
        self.h2.local_settings = h2.settings.Settings(
            client=True,
            initial_values={
                codes.ENABLE_PUSH: 0,
                codes.INITIAL_WINDOW_SIZE: client._stream_window,
                codes.MAX_HEADER_LIST_SIZE: _MAX_HEADER_LIST,
                codes.MAX_CONCURRENT_STREAMS: 100,  # for streams the server would open: none
            },
        )
        self.transport: asyncio.Transport | None = None
        self.exchanges: dict[int, H2Exchange] = {}
        self.sending: dict[int, H2Exchange] = {}
        self.active = 0
        self.paused = False  # the transport's buffer is full: no DATA until it drains
        self.dead = False
        self.retiring = False
        self.error: HttpClientError | None = None  # what killed it
        self.ready: asyncio.Future[None] = self.loop.create_future()  # server SETTINGS, or dead
        self.lost: asyncio.Future[None] = self.loop.create_future()
        self.idle_since = self.loop.time()
        self.idle_timer: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.h2.initiate_connection()
        window = min(_MAX_WINDOW, self.client._max_streams * self.client._stream_window)
        if window > _INITIAL_WINDOW:
            self.h2.increment_flow_control_window(window - _INITIAL_WINDOW)
        self.flush()

    def data_received(self, data: bytes) -> None:
        if self.dead:
            return
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            self.flush()  # h2's GOAWAY
            self.shutdown(H2Error(f"{self.label} broke the HTTP/2 protocol: {exc}"), abort=True)
            return
        for event in events:
            if self.dead:
                return
            self._on_event(event)
        self.pump()
        self.flush()

    def _on_event(self, event: h2.events.Event) -> None:
        ex: H2Exchange | None
        if isinstance(event, h2.events.DataReceived):
            ex = self.exchanges.get(event.stream_id)
            if ex is None:  # aborted or failed: give the window back at once
                self.ack(event.flow_controlled_length, event.stream_id)
            elif event.data or event.flow_controlled_length:
                ex._on_data(event.data, event.flow_controlled_length)
        elif isinstance(event, h2.events.ResponseReceived):
            ex = self.exchanges.get(event.stream_id)
            if ex is not None:
                ex._on_head(*_decode_headers(event.headers))
        elif isinstance(event, h2.events.StreamEnded):
            ex = self.exchanges.get(event.stream_id)
            if ex is not None:
                ex._on_remote_end()
        elif isinstance(event, h2.events.StreamReset):
            ex = self.exchanges.get(event.stream_id)
            if ex is not None:
                ex._on_reset(int(event.error_code), event.remote_reset)
        elif isinstance(event, h2.events.TrailersReceived):
            ex = self.exchanges.get(event.stream_id)
            if ex is not None:
                ex._on_trailers(_decode_headers(event.headers)[1])
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            if not self.ready.done():
                self.ready.set_result(None)
            self.client._wake()  # MAX_CONCURRENT_STREAMS may have grown
        elif isinstance(event, h2.events.ConnectionTerminated):
            self._on_goaway(event)
        # WindowUpdated: ``data_received`` pumps after the events; the rest needs nothing

    def _on_goaway(self, event: h2.events.ConnectionTerminated) -> None:
        code = int(event.error_code or 0)
        last = event.last_stream_id or 0
        what = f"{self.label} went away (GOAWAY {_code_name(code)}, last stream {last}"
        if event.additional_data:
            what += f": {event.additional_data[:200]!r}"
        what += ")"
        self.retiring = True
        for sid, ex in list(self.exchanges.items()):
            done = "not processed" if sid > last else "perhaps processed"
            ex._fail(H2GoAway(f"{what}; stream {sid} {done}", code, last, unprocessed=sid > last))
        self.shutdown(H2GoAway(what, code, last, unprocessed=True))

    def connection_lost(self, exc: Exception | None) -> None:
        reason = f": {exc}" if exc is not None else " (closed by the server)"
        self._die(H2Error(f"connection to {self.label} lost{reason}"))
        if not self.lost.done():
            self.lost.set_result(None)

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost follows

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self.pump()

    # -- used by the client and the exchanges

    def has_room(self) -> bool:
        """A new stream may start here now."""
        if self.dead or self.retiring or not self.ready.done():
            return False
        limit = min(self.client._max_streams, self.h2.remote_settings.max_concurrent_streams)
        return self.active < limit

    def start(
        self, fields: list[tuple[bytes, bytes]], max_bytes: int, end_stream: bool
    ) -> H2Exchange:
        """Open a stream in a slot the caller holds: send its HEADERS."""
        if self.dead or self.retiring:
            raise self.error or H2Error(f"connection to {self.label} closed", unprocessed=True)
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None
        sid = self.h2.get_next_available_stream_id()
        if sid >= _LAST_STREAM_ID - 2:
            self.retiring = True  # stream ids run out: the next stream goes to a new connection
        ex = H2Exchange(self, sid, max_bytes)
        try:
            self.h2.send_headers(sid, fields, end_stream=end_stream)
        except h2.exceptions.ProtocolError as exc:
            raise H2Error(f"cannot open a stream to {self.label}: {exc}") from None
        self.exchanges[sid] = ex
        if end_stream:
            ex._end_wanted = ex._local_done = True
        self.flush()
        return ex

    def pump(self) -> None:
        """Send what the exchanges queued, a frame from each in turn, while the connection's and
        the streams' windows allow and the transport is not paused; END_STREAM after the last."""
        sending = self.sending
        h2c = self.h2
        while sending and not self.paused and not self.dead:
            progress = False
            for sid, ex in list(sending.items()):
                if ex._closed:
                    sending.pop(sid, None)
                    continue
                queue = ex._queue
                try:
                    if queue:
                        room = min(h2c.local_flow_control_window(sid), h2c.max_outbound_frame_size)
                        if room <= 0:
                            continue
                        piece = queue[0]
                        if len(piece) <= room:
                            queue.popleft()
                        else:
                            queue[0] = piece[room:]
                            piece = piece[:room]
                        ex._queued -= len(piece)
                        last = not queue and ex._end_wanted
                        h2c.send_data(sid, piece, end_stream=last)
                        progress = True
                        if last:
                            sending.pop(sid, None)
                            ex._sent_end()
                    elif ex._end_wanted:
                        h2c.end_stream(sid)
                        progress = True
                        sending.pop(sid, None)
                        ex._sent_end()
                    else:
                        sending.pop(sid, None)
                except h2.exceptions.ProtocolError as exc:  # the stream closed under us
                    sending.pop(sid, None)
                    ex._fail(H2Error(f"cannot send on stream {sid} to {self.label}: {exc}"))
                    continue
                if not queue:
                    ex._wake_drainer()
            self.flush()  # may pause the transport
            if not progress:
                break

    def flush(self) -> None:
        """Write what h2 has to send."""
        data = self.h2.data_to_send()
        transport = self.transport
        if data and transport is not None and not transport.is_closing():
            transport.write(data)

    def ack(self, n: int, stream_id: int) -> None:
        """``n`` flow-controlled bytes of ``stream_id`` were consumed: reopen the windows (the
        stream's only while it is open)."""
        if self.dead or n <= 0:
            return
        try:
            self.h2.acknowledge_received_data(n, stream_id)
        except h2.exceptions.ProtocolError:
            return
        self.flush()

    def reset(self, stream_id: int, code: int) -> None:
        """Send RST_STREAM, unless the stream or the connection is gone already."""
        if self.dead:
            return
        try:
            self.h2.reset_stream(stream_id, code)
        except h2.exceptions.ProtocolError:  # closed in h2 already
            return
        self.flush()

    def release_slot(self) -> None:
        """A stream closed (or a slot handed over was not used)."""
        self.active -= 1
        if self.dead or self.active:
            if not self.dead:
                self.client._wake()
            return
        if self.retiring:
            self.shutdown(H2Error(f"connection to {self.label} closed", unprocessed=True))
            return
        self.idle_since = self.loop.time()
        self.arm_idle()
        self.client._wake()

    def arm_idle(self) -> None:
        """Close the connection once it had no stream for the client's ``idle_timeout``."""
        if self.idle_timer is None and not self.dead:
            self.idle_timer = self.loop.call_at(
                self.idle_since + self.client._idle_timeout, self._idle_check
            )

    def _idle_check(self) -> None:
        self.idle_timer = None
        if self.dead or self.active:
            return
        due = self.idle_since + self.client._idle_timeout
        if self.loop.time() < due:
            self.idle_timer = self.loop.call_at(due, self._idle_check)
            return
        self.shutdown(H2Error(f"connection to {self.label} closed when idle", unprocessed=True))

    def shutdown(self, error: HttpClientError, *, abort: bool = False) -> None:
        """Close the connection (GOAWAY if it can still send), failing its open streams."""
        if self.dead:
            return
        if not abort:
            try:
                self.h2.close_connection()
            except h2.exceptions.ProtocolError:
                pass
            self.flush()
        transport = self.transport
        self._die(error)
        if transport is not None:
            if abort:
                transport.abort()
            else:
                transport.close()

    def _die(self, error: HttpClientError) -> None:
        if self.dead:
            return
        self.dead = True
        self.error = self.error or error
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None
        for ex in list(self.exchanges.values()):
            ex._fail(self.error)
        self.sending.clear()
        if not self.ready.done():
            self.ready.set_result(None)
        self.client._gone(self)


# ------------------------------------------------------------------------------------- client


class H2Client:
    """HTTP/2 to one origin over one connection at a time, every exchange a stream on it.

    ``base_url``: ``http://host[:port][/prefix]`` (h2c, prior knowledge) or ``https://...``
    (TLS, ALPN ``h2``; ``ssl``, if given, must offer it: ``ctx.set_alpn_protocols(["h2"])``).
    ``resolve`` (None: the event loop resolves the host) gives the addresses to connect to;
    what it raises other than ``OSError`` (a refused host) reaches the caller as it is.
    ``connect_timeout`` bounds opening a connection (TCP, TLS, the server's SETTINGS);
    ``max_streams`` the streams open at once (the server may allow fewer); ``idle_timeout`` how
    long a connection without streams stays open; ``stream_window`` what a stream may hold
    unread. Use it from one event loop.
    """

    def __init__(
        self,
        base_url: str,
        *,
        resolve: Resolver | None = None,
        ssl: _ssl.SSLContext | None = None,
        connect_timeout: float = 5.0,
        max_streams: int = DEFAULT_MAX_STREAMS,
        idle_timeout: float = 30.0,
        stream_window: int = DEFAULT_STREAM_WINDOW,
    ) -> None:
        parts, self._host, self._port, default_port = parse_base_url(base_url)
        if max_streams < 1:
            raise ValueError("max_streams must be at least 1")
        if not _INITIAL_WINDOW <= stream_window <= _MAX_WINDOW:
            raise ValueError(f"stream_window must be between {_INITIAL_WINDOW} and {_MAX_WINDOW}")
        self.base_url = base_url
        self._scheme = parts.scheme.encode("ascii")
        self._ssl: _ssl.SSLContext | None = None
        if parts.scheme == "https":
            if ssl is None:
                ssl = _ssl.create_default_context()
                ssl.set_alpn_protocols(["h2"])
            self._ssl = ssl
        name = self._host if self._host.isascii() else self._host.encode("idna").decode("ascii")
        host = f"[{name}]" if ":" in name else name
        self._label = f"{host}:{self._port}"
        self._authority = (host if self._port == default_port else self._label).encode("ascii")
        self._prefix = parts.path.rstrip("/")
        self._resolve = resolve
        self._connect_timeout = connect_timeout
        self._max_streams = max_streams
        self._idle_timeout = idle_timeout
        self._stream_window = stream_window
        self._conn: _H2Conn | None = None  # where new streams go
        self._conns: set[_H2Conn] = set()  # every connection not yet dead
        self._connecting: asyncio.Task[_H2Conn] | None = None
        self._waiters: deque[asyncio.Future[_H2Conn | None]] = deque()
        self._closed = False
        self._loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]  # bound on use

    # -- public

    @property
    def active(self) -> int:
        """Streams open (or about to open) on this client's connections."""
        return sum(conn.active for conn in self._conns)

    @property
    def waiting(self) -> int:
        """``open`` calls queued for a stream slot."""
        return len(self._waiters)

    async def open(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        *,
        max_bytes: int = NO_LIMIT,
        end_stream: bool = False,
    ) -> H2Exchange:
        """Start a stream: send the request's HEADERS (``:method``, ``:scheme``, ``:authority``,
        ``:path`` = the base URL's path + ``path``, then ``headers``), without END_STREAM unless
        ``end_stream`` (a request without a body). Waits for a connection and a stream slot.
        ``max_bytes`` bounds the answer's body (``AnswerTooLarge``). Raises ``ValueError`` for a
        malformed method, path or header, ``HttpClientError`` if no connection could be made."""
        fields = self._fields(method, path, headers or {})
        conn = await self._acquire()
        try:
            return conn.start(fields, max_bytes, end_stream)
        except BaseException:
            conn.release_slot()
            raise

    async def request(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
        *,
        max_bytes: int = NO_LIMIT,
        timeout_s: float | None = None,
    ) -> Response:
        """One whole exchange: ``(status, headers, body)``. A request the server did not process
        (``H2Error.unprocessed``) is sent once more, on a new stream. ``timeout_s`` bounds the
        whole exchange (``H2Timeout``). The stream is reset if the answer ended before the
        request was sent whole."""
        for attempt in (1, 2):
            ex = await self.open(method, path, headers, max_bytes=max_bytes, end_stream=not body)
            try:
                try:
                    async with asyncio.timeout(timeout_s):
                        if body:
                            ex.write(body)
                            ex.end()
                        status, answer = await ex.head()
                        chunks = []
                        while chunk := await ex.read():
                            chunks.append(chunk)
                except TimeoutError:
                    raise H2Timeout(
                        f"no whole answer from {self._label} within {timeout_s:g} s"
                    ) from None
            except H2Error as exc:
                ex.abort()
                if exc.unprocessed and attempt == 1:
                    continue
                raise
            except BaseException:
                ex.abort()
                raise
            if not ex.closed:
                ex.abort()  # the answer came before the request was all sent
            return status, answer, b"".join(chunks)
        raise AssertionError("unreachable")

    async def close(self) -> None:
        """Close every connection (open streams fail with ``H2Error``) and fail queued
        ``open`` calls. Idempotent."""
        self._closed = True
        error = H2Error(f"the HTTP/2 client for {self._label} is closed")
        # a connection being opened is not cancelled (its callers would see CancelledError):
        # it is closed as soon as it is open, and they get ``error``'s like
        while self._waiters:
            w = self._waiters.popleft()
            if not w.done():
                w.set_exception(error)
        waits = []
        for conn in list(self._conns):
            waits.append(conn.lost)
            conn.shutdown(error)
        self._conns.clear()
        self._conn = None
        if waits:
            # let connection_lost run, so every socket is really closed when this returns
            await asyncio.wait(waits, timeout=1.0)

    # -- internals

    def _fields(self, method: str, path: str, headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
        if self._closed:
            raise H2Error(f"the HTTP/2 client for {self._label} is closed")
        if not method.isalpha() or not method.isupper() or not method.isascii():
            raise ValueError(f"bad HTTP method {method!r}")
        if not path.startswith("/") or any(c in path for c in " \r\n\0\t#"):
            raise ValueError(f"bad request path {path!r}")
        fields = [
            (b":method", method.encode("ascii")),
            (b":scheme", self._scheme),
            (b":authority", self._authority),
            (b":path", (self._prefix + path).encode("utf-8")),
        ]
        for name, value in headers.items():
            key = name.lower()
            if (
                not key
                or any(c in key for c in ":\r\n\0 \t")
                or any(c in value for c in "\r\n\0")
                or key in _HOP_BY_HOP
                or (key == "te" and value.strip().lower() != "trailers")
            ):
                raise ValueError(f"invalid HTTP/2 request header {name!r}: {value!r}")
            fields.append((key.encode("latin-1"), value.encode("latin-1")))
        return fields

    async def _acquire(self) -> _H2Conn:
        """A connection with a stream slot taken for the caller (``release_slot`` gives it
        back). First come first served: while others queue, a newcomer queues behind them."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        while True:
            if self._closed:
                raise H2Error(f"the HTTP/2 client for {self._label} is closed")
            conn = self._conn
            if conn is None or conn.dead or conn.retiring:
                conn = await self._connect()
            if not self._waiters and conn.has_room():
                conn.active += 1
                return conn
            if conn.dead or conn.retiring:
                continue
            waiter: asyncio.Future[_H2Conn | None] = self._loop.create_future()
            self._waiters.append(waiter)
            try:
                got = await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                    handed = waiter.result()
                    if handed is not None:  # handed a slot just as we were cancelled
                        handed.release_slot()
                else:
                    try:
                        self._waiters.remove(waiter)
                    except ValueError:
                        pass
                raise
            if got is not None:
                return got  # the slot was taken for us
            # None: the connection went away; try again (on a new one)

    def _wake(self) -> None:
        """Hand free slots to queued ``open`` calls, in order; if the connection is gone, let
        them all try again."""
        waiters = self._waiters
        conn = self._conn
        while waiters:
            if conn is None or conn.dead or conn.retiring:
                while waiters:
                    w = waiters.popleft()
                    if not w.done():
                        w.set_result(None)
                return
            if not conn.has_room():
                return
            w = waiters.popleft()
            if not w.done():
                conn.active += 1
                w.set_result(conn)

    def _gone(self, conn: _H2Conn) -> None:
        """``conn`` died: new streams go to a new connection."""
        self._conns.discard(conn)
        if self._conn is conn:
            self._conn = None
        self._wake()

    async def _connect(self) -> _H2Conn:
        """The connection being opened, or a new one (one at a time, shared by every caller;
        a caller cancelled does not cancel it for the others)."""
        task = self._connecting
        if task is None:
            task = self._loop.create_task(self._open_connection())
            self._connecting = task
            task.add_done_callback(self._connected)
        return await asyncio.shield(task)

    def _connected(self, task: asyncio.Task[_H2Conn]) -> None:
        if self._connecting is task:
            self._connecting = None
        if not task.cancelled():
            task.exception()  # retrieved: every caller may have gone

    async def _open_connection(self) -> _H2Conn:
        loop = self._loop
        conn: _H2Conn | None = None
        try:
            async with asyncio.timeout(self._connect_timeout):
                if self._resolve is None:
                    _, conn = await loop.create_connection(
                        self._protocol, self._host, self._port, ssl=self._ssl
                    )
                else:
                    conn = await self._connect_resolved(self._resolve)
                self._conns.add(conn)
                self._check_alpn(conn)
                await conn.ready
        except TimeoutError:
            if conn is not None:
                conn.shutdown(H2Error("connect timed out"), abort=True)
            raise H2Error(
                f"connecting to {self._label} timed out after {self._connect_timeout:g} s",
                unprocessed=True,
            ) from None
        except OSError as exc:
            raise H2Error(f"cannot connect to {self._label}: {exc}", unprocessed=True) from None
        except BaseException:
            if conn is not None:
                conn.shutdown(H2Error("connect failed"), abort=True)
            raise
        if conn.dead:
            raise H2Error(
                f"{self._label} did not open an HTTP/2 connection: {conn.error}", unprocessed=True
            )
        if self._closed:
            conn.shutdown(H2Error("closed"))
            raise H2Error(f"the HTTP/2 client for {self._label} is closed")
        self._conn = conn
        conn.arm_idle()  # closed if no stream comes (every caller may have gone)
        return conn

    def _protocol(self) -> _H2Conn:
        return _H2Conn(self)

    def _check_alpn(self, conn: _H2Conn) -> None:
        if self._ssl is None or conn.transport is None:
            return
        tls = conn.transport.get_extra_info("ssl_object")
        chosen = tls.selected_alpn_protocol() if tls is not None else None
        if chosen != "h2":
            conn.shutdown(H2Error("no h2"), abort=True)
            raise H2Error(
                f"{self._label} did not select HTTP/2 by TLS ALPN (selected {chosen!r}); "
                'the SSL context must offer it: ctx.set_alpn_protocols(["h2"])',
                unprocessed=True,
            )

    async def _connect_resolved(self, resolve: Resolver) -> _H2Conn:
        """A connection to the first address ``resolve`` gives that accepts one."""
        return await connect_first(
            self._loop, resolve, self._host, self._port, self._protocol, self._ssl
        )
