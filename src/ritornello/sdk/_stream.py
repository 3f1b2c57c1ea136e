"""Streamed attempts: one HTTP exchange carries a run of checkpoints, each acknowledged.

Over plain request/response every step of a durable handler costs a whole HTTP request and a
replay from a freshly sent journal (the SDK answers ``checkpoint`` before a step whose
predecessor's result is not persisted yet). A streamed attempt keeps the exchange open instead:
the endpoint writes each answer as one line of the response; a step that must follow unpersisted
results sends them as a ``checkpoint`` line and waits — the handler paused, not unwound — for
the orchestrator's next request line, ``{"type":"ack"}`` once they are committed, then runs.
Durability is unchanged: no step starts before the results it follows are committed, exactly as
with separate requests; what goes away is the request, the journal's transfer and the replay.

Invariants:

- ``_Channel.request`` is exactly the request the orchestrator would send now: the journal plus
  every acknowledged entry, eager state with their ``set``/``clear``/``clear_all`` applied, the
  same completions and attempt number. (The orchestrator only acknowledges when nothing else
  changed: no completion arrived, not a workflow.) An attempt that ends with a checkpoint
  anyway is re-run from it once acknowledged.
- An ack is what ``is_ack`` accepts: for a request signed v2, exactly the next ack line the
  orchestrator would send (``protocol.AckCheck``: bound to the request's signature and counted,
  so a replayed ack or one from another exchange is not one); else the plain ``{"type":"ack"}``.
- Anything but an ack — the end of the request body, a broken line, a line past the limit —
  closes the channel: no step starts afterwards, the endpoint writes nothing more, the
  orchestrator re-invokes.
- ``LineReader`` holds at most one line of at most its limit (plus the piece of body being
  read), and costs time linear in the body however it is cut: each received piece is searched
  for a newline once, a line that spans pieces is joined once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from ritornello.protocol import STREAM_ACK, Entry, InvokeRequest, InvokeResponse
from ritornello.sdk._invocation import Persist

_STATE_KINDS = frozenset({"set", "clear", "clear_all"})


def plain_ack(line: bytes) -> bool:
    """An ack of a request not signed v2: ``{"type":"ack"}``."""
    return line.strip() == STREAM_ACK


class RequestTooLarge(Exception):
    """A request body, or a line of a streamed one, passed the endpoint's limit (413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"larger than {limit:,} bytes")
        self.limit = limit


def continued(request: InvokeRequest, entries: list[Entry]) -> InvokeRequest:
    """``request`` once ``entries`` (a checkpoint's new entries) are committed."""
    state = request.state
    if state is not None and any(e.get("kind") in _STATE_KINDS for e in entries):
        state = dict(state)
        for entry in entries:
            kind = entry.get("kind")
            if kind == "set":
                state[str(entry.get("name"))] = entry.get("value")
            elif kind == "clear":
                state.pop(str(entry.get("name")), None)
            elif kind == "clear_all":
                state.clear()
    return request.replace(journal=request.journal + entries, state=state)


class _Channel:
    """The checkpoints of one streamed exchange, and the request as committed so far."""

    def __init__(
        self,
        request: InvokeRequest,
        write: Callable[[bytes], Awaitable[None]],
        read_line: Callable[[], Awaitable[bytes | None]],
        is_ack: Callable[[bytes], bool],
    ) -> None:
        self.request = request
        self.closed = False
        #: closed by a line that is not an ack (rather than by the end of the request body)
        self.refused = False
        self._write = write
        self._read_line = read_line
        self._is_ack = is_ack

    async def checkpoint(self, entries: list[Entry]) -> bool:
        """Send ``entries`` as a checkpoint; True once acknowledged (committed)."""
        if self.closed:
            return False
        await self._write(InvokeResponse(status="checkpoint", entries=entries).encode() + b"\n")
        try:
            line = await self._read_line()
        except RequestTooLarge:
            line = b""  # not an ack
        if line is None or not self._is_ack(line):
            self.closed = True
            self.refused = line is not None
            return False
        self.request = continued(self.request, entries)
        return True


async def stream_attempts(
    request: InvokeRequest,
    invoke: Callable[[InvokeRequest, Persist], Awaitable[InvokeResponse]],
    write: Callable[[bytes], Awaitable[None]],
    read_line: Callable[[], Awaitable[bytes | None]],
    is_ack: Callable[[bytes], bool] = plain_ack,
) -> bool:
    """Answer ``request`` on a stream until an answer is not an acknowledged checkpoint.

    A step that must follow persisted results checkpoints mid-attempt through the channel and
    goes on in the same attempt; an attempt that still ends with a checkpoint (always-replay
    mode, or a step that could not be persisted in order) is re-run from the journal as
    committed once acknowledged. ``write`` sends one line (newline included); ``read_line``
    returns the next request line, or None when the request body ended; ``is_ack`` says whether
    a line is the acknowledgement due (called once per ack, in order). Returns False if
    the stream ended on a line that is not an ack (the request body may go on: do not wait for
    its end), True otherwise.
    """
    channel = _Channel(request, write, read_line, is_ack)
    while True:
        response = await invoke(channel.request, channel.checkpoint)
        if channel.closed:
            return not channel.refused  # the orchestrator stopped: nothing more to say
        if response.status != "checkpoint":
            await write(response.encode() + b"\n")
            return True
        if not await channel.checkpoint(response.entries):
            return not channel.refused


class LineReader:
    """Newline-delimited lines of an ASGI request body, read as they arrive; a line longer than
    ``limit`` bytes raises :class:`RequestTooLarge` as soon as that much of it arrived."""

    def __init__(self, receive: Callable[[], Awaitable[Any]], limit: int) -> None:
        self._receive = receive
        self._limit = limit
        self._chunk = b""  # the piece of body being read
        self._pos = 0  # where its unread part starts
        self._pieces: list[bytes] = []  # the start of a line that spans pieces (no newline)
        self._size = 0  # their length
        self._ended = False

    async def line(self) -> bytes | None:
        """The next line without its newline; a last unterminated line; None at the end."""
        limit = self._limit
        while True:
            chunk, pos = self._chunk, self._pos
            if pos < len(chunk):
                cut = chunk.find(b"\n", pos)
                if cut >= 0:
                    self._pos = cut + 1
                    if self._size + cut - pos > limit:
                        raise RequestTooLarge(limit)
                    if not self._pieces:
                        return chunk[pos:cut]
                    self._pieces.append(chunk[pos:cut])
                    return self._joined()
                rest = chunk[pos:] if pos else chunk
                self._size += len(rest)
                if self._size > limit:
                    raise RequestTooLarge(limit)
                self._pieces.append(rest)
            self._chunk, self._pos = b"", 0
            if self._ended:
                return self._joined() if self._pieces else None
            message = await self._receive()
            if message["type"] == "http.disconnect":
                self._ended = True
                continue
            self._chunk = message.get("body", b"")
            if not message.get("more_body", False):
                self._ended = True

    def _joined(self) -> bytes:
        line = b"".join(self._pieces)
        self._pieces, self._size = [], 0
        return line

    async def drain(self) -> None:
        """Read (and drop) the rest of the body."""
        self._chunk, self._pos, self._pieces, self._size = b"", 0, [], 0
        while not self._ended:
            message = await self._receive()
            if message["type"] == "http.disconnect" or not message.get("more_body", False):
                self._ended = True
