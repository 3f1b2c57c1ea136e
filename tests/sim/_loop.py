"""A virtual-time asyncio event loop, and the engine clock that reads it.

``VirtualLoop`` is an ordinary ``SelectorEventLoop`` whose ``time()`` is a number that moves
only when the loop would otherwise block: its selector never waits, it adds the timeout the
loop asked for to the virtual time instead. So ``asyncio.sleep``, ``call_later``,
``asyncio.timeout`` and everything built on them (the engine's timer queue, its polling loops,
leases) run on virtual time, and a simulated minute costs no real time at all.

Invariants:

* Time never goes backwards, and it jumps only when no callback is ready (the loop asked to
  wait), exactly to the next scheduled callback: nothing fires early, nothing is skipped.
* Nothing real may be waited on: a select with no timeout (nothing scheduled, nothing ready)
  means the simulation can make no progress, and raises ``Deadlock``.
* ``max_steps`` bounds the loop iterations of one run, so a livelock fails fast (``Livelock``)
  instead of eating the test's timeout.
"""

from __future__ import annotations

import asyncio
import selectors
from typing import Any

#: Wall-clock milliseconds at virtual time 0 (2023-11-14, any fixed value would do).
EPOCH_MS = 1_700_000_000_000


class Deadlock(RuntimeError):
    """The loop would wait forever: nothing ready, nothing scheduled."""


class Livelock(RuntimeError):
    """The loop ran ``max_steps`` iterations without the run finishing."""


class _VirtualSelector(selectors.DefaultSelector):
    """Polls the real selector without blocking (the loop's self-pipe still works) and turns
    every would-be wait into a jump of the virtual clock."""

    def __init__(self) -> None:
        super().__init__()
        self.loop: VirtualLoop | None = None

    def select(self, timeout: float | None = None) -> list[Any]:
        events: list[Any] = super().select(0)
        if events or timeout == 0:
            return events
        if timeout is None:
            raise Deadlock("nothing ready and nothing scheduled: the simulation cannot move")
        assert self.loop is not None
        self.loop.advance(timeout)
        return []


class VirtualLoop(asyncio.SelectorEventLoop):
    """An event loop on virtual time (module docstring)."""

    def __init__(self, max_steps: int = 2_000_000) -> None:
        selector = _VirtualSelector()
        super().__init__(selector)
        selector.loop = self
        self._now = 0.0
        self.max_steps = max_steps
        self.steps = 0

    def time(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += max(0.0, seconds)

    def _run_once(self) -> None:
        self.steps += 1
        if self.steps > self.max_steps:
            raise Livelock(f"{self.max_steps} loop iterations at virtual t={self._now:.3f}s")
        super()._run_once()  # type: ignore[misc]  # a private hook of BaseEventLoop


class LoopClock:
    """The engine's ``Clock`` on the running loop's time: wall ms = ``EPOCH_MS`` + virtual ms."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def now_ms(self) -> int:
        return EPOCH_MS + int(self._loop.time() * 1000 + 1e-6)

    def monotonic(self) -> float:
        return self._loop.time()
