"""Durable timers, in memory: a heap mirrored from the store's timer table.

The store row is the promise; this heap is only the alarm clock. A timer is removed from the
store in the same unit as its effect (a sleep's completion, a retry's next attempt), so a crash
between firing and committing fires it again after restart, and never loses it. Timers never
fire early: a timer fires only when ``clock.now_ms() >= fire_at``.

The heap holds plain tuples of ints and strings (``_Entry``), not ``TimerRecord`` objects: the
garbage collector stops tracking such tuples, so 100,000 sleeping timers add nothing to the
full collections that pause the event loop (with a record object per timer each one took up to
140 ms at 100,000, about once a second during a wake-up burst). A record is built again only
when its timer is due.

Timers come before new work. ``lag_ms`` is how overdue the oldest wake-up not yet handed over
is: a timer due in the heap, one in the batch being fired, or an invocation a timer woke whose
first attempt since has not been answered (past ``HANDOVER_MS`` after its due time only while
a backlog of ``BURST`` wake-ups waits behind it, so overload cannot open the gate). While
that exceeds ``SLACK_MS``, the ingress waits in ``yield_to_timers`` (at most ``MAX_WAIT_S`` per
request) before it creates an invocation, so new invocations do not queue ahead of due timers on
the event loop, the commit queue, the invoker's connections and the endpoint. Nothing is refused
and nothing is reordered in the store: a new invocation only starts a little later. The price:
a woken invocation whose first step is slow holds new invocations back too, for at most
``HANDOVER_MS`` after its timer was due unless many more wake-ups are waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
from collections import deque
from collections.abc import Awaitable, Callable

from ritornello.store import TimerRecord

from .._clock import Clock

log = logging.getLogger("ritornello.timers")

_Key = tuple[str, str, int]
#: (fire_at, invocation_id, kind, index, partition): a TimerRecord's fields, in heap order
_Entry = tuple[int, str, str, int, int]


def _key(t: TimerRecord) -> _Key:
    return (t.invocation_id, t.kind, t.index)


def _record(e: _Entry) -> TimerRecord:
    return TimerRecord(e[0], e[1], e[2], e[3], e[4])


class TimerQueue:
    """Fires due timers in batches through ``fire`` (which commits and wakes invocations)."""

    #: Upper bound on one sleep, so a wall-clock jump is noticed within this many seconds.
    MAX_SLEEP_S = 1.0
    BATCH = 512
    #: How overdue the oldest timer not yet handed over may be before new work waits.
    SLACK_MS = 20
    #: Past this long after its timer was due, a woken invocation counts only while at least
    #: ``BURST`` wake-ups are queued behind it (a backlog, not a lone slow first step) ...
    HANDOVER_MS = 1000
    BURST = 64
    #: ... and never past this (a stuck driver must not hold new work back for good).
    STUCK_MS = 30_000
    #: The longest one ingress request waits for the timers to catch up (timers never starve
    #: the ingress: past this it goes on regardless).
    MAX_WAIT_S = 0.5
    #: How often a waiting ingress re-checks the lag.
    POLL_S = 0.005

    def __init__(
        self,
        clock: Clock,
        fire: Callable[[list[TimerRecord]], Awaitable[None]],
        handed_over: Callable[[str], bool] = lambda invocation_id: True,
    ) -> None:
        self._clock = clock
        self._fire = fire
        self._handed_over = handed_over
        self._heap: list[_Entry] = []
        self._live: dict[_Key, int] = {}
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        #: earliest fire_at of the batch ``_fire`` is working on (None: none)
        self._firing: int | None = None
        #: (fire_at, invocation id) of woken invocations, in firing order, from the oldest
        #: not yet handed over
        self._woken: deque[tuple[int, str]] = deque()
        #: settles once the timers caught up; shared by every waiting ingress request
        self._caught_up: asyncio.Future[None] | None = None
        self._waiting = 0

    def __len__(self) -> int:
        return len(self._live)

    def add(self, timer: TimerRecord) -> None:
        k = _key(timer)
        if self._live.get(k) == timer.fire_at:
            return
        self._live[k] = timer.fire_at
        entry = (timer.fire_at, timer.invocation_id, timer.kind, timer.index, timer.partition)
        heapq.heappush(self._heap, entry)
        if self._heap[0] is entry:
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
        for fire_at, inv, kind, index, p in self._heap:
            if p == partition and self._live.get((inv, kind, index)) == fire_at:
                del self._live[(inv, kind, index)]

    def poke(self) -> None:
        """Re-check now (tests that move a manual clock)."""
        self._changed.set()

    def next_fire_at(self) -> int | None:
        """The earliest ``fire_at`` of the timers armed here (None: none), due or not."""
        heap, live = self._heap, self._live
        while heap and live.get(heap[0][1:4]) != heap[0][0]:
            heapq.heappop(heap)  # replaced or discarded: _due would skip it anyway
        return heap[0][0] if heap else None

    @property
    def firing(self) -> bool:
        """Whether a batch of due timers is being fired right now."""
        return self._firing is not None

    def woke(self, fire_at: int, invocation_id: str) -> None:
        """A fired timer woke ``invocation_id``: it counts for ``lag_ms`` until
        ``handed_over(invocation_id)`` says so."""
        self._woken.append((fire_at, invocation_id))
        self._prune(self._clock.now_ms())  # bounded by the wake-ups in flight

    def _prune(self, now: int) -> None:
        """Drop the oldest woken invocations while they no longer count."""
        woken, handed_over = self._woken, self._handed_over
        horizon, stuck = now - self.HANDOVER_MS, now - self.STUCK_MS
        while woken:
            fire_at, invocation_id = woken[0]
            counts = fire_at >= horizon or (fire_at >= stuck and len(woken) >= self.BURST)
            if counts and not handed_over(invocation_id):
                return
            woken.popleft()

    def lag_ms(self) -> int:
        """How overdue (ms) the oldest wake-up not yet handed over is; 0 when none is due."""
        now = self._clock.now_ms()
        heap, live = self._heap, self._live
        while heap and live.get(heap[0][1:4]) != heap[0][0]:
            heapq.heappop(heap)  # replaced or discarded: _due would skip it anyway
        oldest = heap[0][0] if heap and heap[0][0] <= now else now
        if self._firing is not None:
            oldest = min(oldest, self._firing)
        self._prune(now)
        if self._woken:
            oldest = min(oldest, self._woken[0][0])
        return max(0, now - oldest)

    def behind(self) -> bool:
        """Whether due timers wait longer than ``SLACK_MS`` (and the timer loop runs, so
        waiting can help): new work should yield."""
        return self._task is not None and self.lag_ms() > self.SLACK_MS

    async def yield_to_timers(self) -> None:
        """Wait until the timers caught up (``behind()`` is False), at most ``MAX_WAIT_S``."""
        loop = asyncio.get_running_loop()
        if self._caught_up is None:
            self._caught_up = loop.create_future()
            loop.call_later(self.POLL_S, self._check_caught_up)
        self._waiting += 1
        try:
            await asyncio.wait((self._caught_up,), timeout=self.MAX_WAIT_S)
        finally:
            self._waiting -= 1

    def _check_caught_up(self) -> None:
        fut = self._caught_up
        if fut is None:
            return
        if self._waiting and self.behind():
            asyncio.get_running_loop().call_later(self.POLL_S, self._check_caught_up)
            return
        self._caught_up = None
        if not fut.done():
            fut.set_result(None)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def abandon(self) -> list[asyncio.Task[None]]:
        """Stop at once (as a kill -9 would): the task to cancel, if any."""
        task, self._task = self._task, None
        return [task] if task is not None else []

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._check_caught_up()  # nobody waits on a stopped timer loop

    def _due(self, now: int) -> list[TimerRecord]:
        due: list[TimerRecord] = []
        while self._heap and self._heap[0][0] <= now and len(due) < self.BATCH:
            entry = heapq.heappop(self._heap)
            k = entry[1:4]
            if self._live.get(k) != entry[0]:
                continue  # replaced by a later add
            del self._live[k]
            due.append(_record(entry))
        return due

    async def _run(self) -> None:
        while True:
            now = self._clock.now_ms()
            due = self._due(now)
            if due:
                self._firing = due[0].fire_at  # popped in fire_at order
                try:
                    await self._fire(due)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("firing %d timers failed; retrying in 1 s", len(due))
                    for t in due:
                        self.add(t)
                    self._firing = None
                    await asyncio.sleep(1.0)
                finally:
                    self._firing = None
                # Firing may not suspend at all (a sleep's wake-up commits nothing first): let
                # the loop run the woken drivers and everything else between two batches.
                await asyncio.sleep(0)
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
