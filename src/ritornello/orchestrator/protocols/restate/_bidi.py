"""BIDI_STREAM attempts over HTTP/2: one exchange stays open across an invocation's steps.

An attempt writes Start and the journal and keeps the request open. The endpoint runs its
handler and sends commands as it goes; when it proposes a step's result, that stretch of the
answer is returned to the core as a ``checkpoint`` and the exchange is kept (``_Open``). Once
the core committed it, the next ``attempt`` sends the step's ``RunCompletion`` on the same
exchange — the handler goes on at once, with no new request and no replay.

The request is ended (the endpoint then answers as in request/response mode: it suspends when it
needs what it does not have) when:

- the endpoint sends a command whose result the engine provides later (a sleep, a call, a
  promise, a signal's wait has no command: see the next item), so it suspends once it awaits it;
- it sends nothing for ``QUIET_S`` (it waits on an awakeable or a signal, or runs a long step);
- anything arrived for the invocation between two stretches (a completion, a signal): the open
  exchange is dropped and a fresh one replays the journal with it.

Invariants: nothing is sent to the endpoint that is not committed (a step's result goes out
only after its checkpoint's commit); every stretch is one answer of the core's, so durability
and fencing are those of request/response attempts; a broken or timed-out exchange is a failed
attempt, its uncommitted stretch lost as an uncommitted answer is.
"""

from __future__ import annotations

import time
from typing import Any

from ...core import Invocation
from ...invokers import Duplex, InvokerError
from .._base import Exchange
from ._journal import Reader, Refused, encode_request, run_results
from ._wire import Frame, FrameDecoder, MessageType

T = MessageType
#: Seconds without a message from the endpoint before its request is ended (it then
#: suspends). Short: a handler waiting on an awakeable or a signal suspends this late; a step
#: running longer only costs a replay (the exchange goes on as request/response).
QUIET_S = 0.1
#: Commands whose result the engine provides later: the request ends when one arrives.
_WAITS_ON_ENGINE = frozenset(
    {
        T.SLEEP,
        T.CALL,
        T.GET_PROMISE,
        T.COMPLETE_PROMISE,
        T.ATTACH_INVOCATION,
        T.GET_INVOCATION_OUTPUT,
    }
)


class Open(Exchange):
    """A bidi exchange kept open by a committed checkpoint."""

    __slots__ = ("decoder", "duplex", "ended", "frames", "journal_len", "results", "seen")

    def __init__(self) -> None:
        self.duplex: Duplex | None = None
        self.decoder: FrameDecoder | None = None
        self.frames: list[Frame] = []  # decoded, not read yet
        self.ended = False  # the request is ended
        self.journal_len = 0  # entries once the stretch in flight is committed
        self.seen = 0  # completions the endpoint has
        self.results: list[dict[str, Any]] = []  # steps whose results go out on commit

    def close(self) -> None:
        if self.duplex is not None:
            self.duplex.abort()
            self.duplex = None
        self.frames = []


async def attempt(
    open_: Open,
    start: Any,
    inv: Invocation,
    version: int,
    lazy: bool,
    timeout_s: float,
) -> Any:
    """One stretch of a bidi attempt: an ``InvokeResponse`` (a ``checkpoint`` leaves the
    exchange open), or raises ``Refused``/``FrameError``/``InvokerError``/``TimeoutError``
    (the exchange is closed). ``start()`` opens a new duplex."""
    duplex = open_.duplex
    if duplex is not None and (
        len(inv.entries) != open_.journal_len or len(inv.completions) != open_.seen
    ):
        open_.close()  # something arrived, or the commit went otherwise: replay afresh
        duplex = None
    try:
        if duplex is None:
            body = encode_request(inv, version, lazy=lazy)
            duplex = open_.duplex = await start()
            open_.decoder = FrameDecoder(2**32 - 1)
            open_.frames, open_.ended = [], False
            duplex.write(body)
        elif open_.results:
            duplex.write(run_results(open_.results))
        open_.results = []
        open_.seen = len(inv.completions)
        return await _read(open_, duplex, inv, version, timeout_s)
    except BaseException:
        open_.close()
        raise


async def _read(
    open_: Open, duplex: Duplex, inv: Invocation, version: int, timeout_s: float
) -> Any:
    reader = Reader(inv, version, int(time.time() * 1000))
    assert open_.decoder is not None
    deadline = time.monotonic() + timeout_s
    while True:
        while open_.frames:
            frame = open_.frames.pop(0)
            if reader.read(frame):
                answer = reader.finish(frame)
                if open_.frames:
                    raise Refused(f"a message (type {open_.frames[0].type:#06x}) after the end")
                open_.close()
                return answer
            if reader.immediate and not open_.ended:
                duplex.write(b"".join(reader.immediate))
            reader.immediate.clear()
            if frame.type in _WAITS_ON_ENGINE and not open_.ended:
                _end(open_, duplex)
            stretch = frame.type == T.PROPOSE_RUN_COMPLETION and not reader.pending_runs
            if stretch and not open_.ended:  # commit it, then the handler goes on
                open_.journal_len = len(inv.entries) + len(reader.entries)
                open_.results = [e for e in reader.entries if e.get("kind") == "run"]
                return reader.checkpoint()
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        wait = left if open_.ended else min(left, QUIET_S)
        try:
            data = await duplex.read(wait)
        except TimeoutError:
            if open_.ended:
                raise
            _end(open_, duplex)  # quiet: it waits on something it will suspend for
            continue
        if not data:
            open_.decoder.close()
            raise Refused("the answer ended without End, Suspension or Error (truncated?)")
        open_.frames.extend(open_.decoder.feed(data))


def _end(open_: Open, duplex: Duplex) -> None:
    open_.ended = True
    try:
        duplex.end()
    except InvokerError:
        pass  # the read that follows reports the broken exchange
