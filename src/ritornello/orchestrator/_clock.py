"""Clocks: the only source of time for the orchestrator, so tests can move it."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Wall-clock milliseconds (durable timers, commit times, heartbeats) and a monotonic
    reading in seconds (lease validity: never judged by wall clocks)."""

    def now_ms(self) -> int: ...

    def monotonic(self) -> float: ...


class SystemClock:
    """The real clocks."""

    #: the builtin itself: read on every lease check, no Python frame in between
    monotonic = staticmethod(time.monotonic)

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


class ManualClock:
    """A wall clock that moves only when told to (tests of timers and retention). Its
    monotonic reading is the real one, so leases go on as in production while a test jumps the
    wall clock by hours."""

    def __init__(self, start_ms: int = 1_700_000_000_000) -> None:
        self._ms = start_ms

    def now_ms(self) -> int:
        return self._ms

    def monotonic(self) -> float:
        return time.monotonic()

    def advance(self, ms: int) -> None:
        self._ms += ms
