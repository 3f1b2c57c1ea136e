"""Durable timers, in memory: a heap mirrored from the store's timer table.

The store row is the promise; this heap is only the alarm clock. A timer is removed from the
store in the same unit as its effect (a sleep's completion, a retry's next attempt), so a crash
between firing and committing fires it again after restart, and never loses it. Timers never
fire early: a timer fires only when ``clock.now_ms() >= fire_at``.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
from collections.abc import Awaitable, Callable

from ritornello.store import TimerRecord

from ._clock import Clock

log = logging.getLogger("ritornello.timers")

_Key = tuple[str, str, int]


def _key(t: TimerRecord) -> _Key:
    return (t.invocation_id, t.kind, t.index)


class TimerQueue:
    """Fires due timers in batches through ``fire`` (which commits and wakes invocations)."""

    #: Upper bound on one sleep, so a wall-clock jump is noticed within this many seconds.
    MAX_SLEEP_S = 1.0
    BATCH = 512

    def __init__(self, clock: Clock, fire: Callable[[list[TimerRecord]], Awaitable[None]]) -> None:
        self._clock = clock
        self._fire = fire
        self._heap: list[tuple[int, _Key, TimerRecord]] = []
        self._live: dict[_Key, int] = {}
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._live)

    def add(self, timer: TimerRecord) -> None:
        k = _key(timer)
        if self._live.get(k) == timer.fire_at:
            return
        self._live[k] = timer.fire_at
        heapq.heappush(self._heap, (timer.fire_at, k, timer))
        if self._heap[0][2] is timer:
            self._changed.set()

    def discard(self, timer: TimerRecord) -> None:
        """Forget a timer removed from the store (its heap entry is skipped when due)."""
        self._live.pop(_key(timer), None)

    def pending(self, invocation_id: str, kind: str, index: int = 0) -> bool:
        """Whether the timer (invocation, kind, index) is armed here."""
        return (invocation_id, kind, index) in self._live

    def drop_partition(self, partition: int) -> None:
        """Forget the timers of a partition this process no longer leads (its new leader
        loads them from the store)."""
        for fire_at, k, timer in self._heap:
            if timer.partition == partition and self._live.get(k) == fire_at:
                del self._live[k]

    def poke(self) -> None:
        """Re-check now (tests that move a manual clock)."""
        self._changed.set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def _due(self, now: int) -> list[TimerRecord]:
        due: list[TimerRecord] = []
        while self._heap and self._heap[0][0] <= now and len(due) < self.BATCH:
            fire_at, k, timer = heapq.heappop(self._heap)
            if self._live.get(k) != fire_at:
                continue  # replaced by a later add
            del self._live[k]
            due.append(timer)
        return due

    async def _run(self) -> None:
        while True:
            now = self._clock.now_ms()
            due = self._due(now)
            if due:
                try:
                    await self._fire(due)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("firing %d timers failed; retrying in 1 s", len(due))
                    for t in due:
                        self.add(t)
                    await asyncio.sleep(1.0)
                continue
            wait = self.MAX_SLEEP_S
            if self._heap:
                wait = min(wait, max(0.0, (self._heap[0][0] - now) / 1000))
            self._changed.clear()
            # Not asyncio.wait_for: on Python 3.11 it can swallow a cancellation that races
            # with the event being set, and stop() would then wait forever.
            alarm = asyncio.get_running_loop().call_later(wait, self._changed.set)
            try:
                await self._changed.wait()
            finally:
                alarm.cancel()
