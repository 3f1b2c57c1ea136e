"""``Conn``: one keep-alive HTTP/1.1 connection, an ``asyncio.Protocol`` fed to httptools.

Answers are parsed by httptools (llhttp, C). Per request the connection makes one future, the
answer's; no locks.

Invariants: a connection carries at most one exchange at a time, ``fut``; bytes that arrive
while none is in progress close it (its framing can't be trusted). If it dies before any answer
byte arrived, the exchange fails with ``Stale`` (retryable); after some, with ``HttpClientError``
— unless the answer's body runs to EOF, which then ends it. An idle connection holds no answer;
one the server closes while idle leaves its pool at once.

Every exchange has a byte limit, ``max_bytes``: the bytes received for it (status line, headers,
framing and body, as they come off the socket) are counted in ``received``, and the moment they
pass the limit the connection is aborted and the exchange fails with ``AnswerTooLarge``; the
read that passed it is dropped unparsed, so nothing past the limit is ever held. A streamed
exchange lowers ``received`` as its lines are taken (``HttpStream.next``), so there the limit
bounds what is buffered, not the whole exchange.

The connection imports neither the pool nor the streamed exchange (both import it). It reaches
them through two interfaces defined here, typing only (a call through them is the same
attribute lookup as on the class itself): ``ConnOwner``, what a connection and its exchange need
of the pool that owns them (``HttpPool``), and ``Exchange``, what a connection feeds the
streamed exchange it carries (``HttpStream``).
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any, Protocol

import httptools

from ._client_errors import AnswerTooLarge, HttpClientError, Stale

__all__ = ["NO_LIMIT", "Conn", "ConnOwner", "Exchange", "Response"]

#: An answer: status, headers (names lower-cased), body.
Response = tuple[int, dict[str, str], bytes]
#: The limit of an exchange that has none.
NO_LIMIT = sys.maxsize
#: What one received piece of a body costs to hold beyond its bytes (a bytes object and its
#: list slot), counted against the limit: an answer cut into tiny chunks is bounded too.
_PIECE = 64


class ConnOwner(Protocol):
    """What a connection and the streamed exchange on it need of the pool that owns them.

    Underscored: these are the pool's internals, not part of ``HttpPool``'s public API.
    """

    _loop: asyncio.AbstractEventLoop
    _conns: set[Conn]  # every open connection, idle or busy

    def _release(self, conn: Conn) -> None:
        """A healthy connection whose answer was read: to a queued request, or idle."""

    def _free_slot(self) -> None:
        """A connection slot is no longer used: give it to a queued request, or shrink."""

    def _drop_idle(self, conn: Conn) -> None:
        """An idle connection was closed by the server."""


class Exchange(Protocol):
    """What a connection feeds the streamed exchange it carries (``HttpStream``)."""

    def _on_status(self, status: int) -> None:
        """The answer's final status line arrived."""

    def _feed(self, data: bytes) -> None:
        """A piece of the answer's body."""

    def _answer_ended(self, fut: asyncio.Future[Response]) -> None:
        """The answer's future is done: ended, broke, or cancelled."""


class Conn(asyncio.Protocol):
    """One keep-alive connection: feeds received bytes to httptools, resolves ``fut``."""

    __slots__ = (
        "body",
        "dead",
        "fut",
        "got_bytes",
        "headers",
        "idle",
        "idle_since",
        "keep_alive",
        "lost",
        "max_bytes",
        "parser",
        "pool",
        "received",
        "stream",
        "transport",
        "until_close",
        "used",
    )

    def __init__(self, pool: ConnOwner) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser: Any = httptools.HttpResponseParser(self)
        self.fut: asyncio.Future[Response] | None = None
        self.headers: dict[str, str] = {}
        self.body: list[bytes] = []
        self.got_bytes = False
        self.until_close = False  # no Content-Length, not chunked: the body ends at EOF
        self.keep_alive = False
        self.dead = False  # connection lost, aborted or closed by us
        self.idle = False  # sitting in the pool's idle list (the pool owns it)
        self.idle_since = 0.0
        self.used = 0  # requests sent on this connection
        self.lost: asyncio.Future[None] | None = None  # made only by close() waiting for it
        self.stream: Exchange | None = None  # the streamed exchange in progress, if any
        self.max_bytes = NO_LIMIT  # what the exchange in progress may receive (see the docstring)
        self.received = 0  # bytes it received (a stream: since the last line it handed out)

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        fut = self.fut
        if fut is None or fut.done():
            self.close(abort=True)  # unsolicited bytes: this connection can't be trusted
            return
        self.got_bytes = True
        self.received += len(data)
        if self.received > self.max_bytes:  # abort before holding any of it
            self.close(abort=True)
            fut.set_exception(AnswerTooLarge(self.max_bytes))
            return
        try:
            self.parser.feed_data(data)
        except Exception as exc:  # HttpParserError, or HttpParserUpgrade (we never ask for one)
            self.close(abort=True)
            if not fut.done():
                fut.set_exception(HttpClientError(f"malformed HTTP response: {exc!r}"))

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.dead = True
        if self.lost is not None and not self.lost.done():
            self.lost.set_result(None)
        if self.idle:
            self.pool._drop_idle(self)
            return
        fut = self.fut
        if fut is None or fut.done():
            return
        if not self.got_bytes:
            fut.set_exception(Stale(exc))
        elif self.until_close:
            self.until_close = False
            self.keep_alive = False
            self._complete()
        else:
            reason = f": {exc!r}" if exc is not None else ""
            fut.set_exception(HttpClientError(f"connection closed mid-response{reason}"))

    # -- httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        val = value.decode("latin-1")
        headers = self.headers
        if key in headers:
            headers[key] += ", " + val
        else:
            headers[key] = val

    def on_headers_complete(self) -> None:
        headers = self.headers
        status = self.parser.get_status_code()
        self.until_close = (
            "content-length" not in headers
            and "transfer-encoding" not in headers
            and status >= 200
            and status != 204
            and status != 304
        )
        if self.stream is not None and status >= 200:
            self.stream._on_status(status)

    def on_body(self, body: bytes) -> None:
        self.received += _PIECE
        if self.stream is not None:
            self.stream._feed(body)
        else:
            self.body.append(body)

    def on_message_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:  # interim answer: wait for the real one
            self.headers = {}
            self.body = []
            return
        self.until_close = False
        self.keep_alive = self.parser.should_keep_alive()
        self._complete()

    def _complete(self) -> None:
        fut = self.fut
        if fut is None or fut.done():
            return
        body = self.body
        data = body[0] if len(body) == 1 else b"".join(body)
        self.body = []  # an idle connection holds no answer
        fut.set_result((self.parser.get_status_code(), self.headers, data))

    # -- used by the pool

    def send(
        self,
        head: bytes,
        body: bytes | None,
        stream: Exchange | None = None,
        max_bytes: int = NO_LIMIT,
    ) -> asyncio.Future[Response]:
        if self.dead or self.transport is None or self.transport.is_closing():
            raise Stale(None)
        self.used += 1
        self.stream = stream
        self.max_bytes = max_bytes
        self.received = 0
        self.headers = {}  # handed to the caller with the answer; body was emptied by _complete
        self.got_bytes = False
        self.until_close = False
        self.keep_alive = False
        fut: asyncio.Future[Response] = self.pool._loop.create_future()
        self.fut = fut
        if stream is not None:
            fut.add_done_callback(stream._answer_ended)
        self.transport.write(head)
        if body is not None:
            self.transport.write(body)
        return fut

    def close(self, *, abort: bool = False) -> None:
        if self.dead:
            return
        self.dead = True
        transport = self.transport
        if transport is not None:
            if abort:
                transport.abort()
            else:
                transport.close()
