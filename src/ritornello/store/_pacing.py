"""How many data requests one process keeps in flight at a shared store, adapted to the
store's latency: additive increase, multiplicative decrease (AIMD), as TCP paces a link.

Why. A store shared by several orchestrators answers a burst in turn: when they send more
than it serves, every request waits behind the others, and so does a lease renewal sent
meanwhile (its own threads in this process do not help: the queue is at the store). Measured
on moto's server, which serves one request at a time: three orchestrators at full load with
16 requests each in flight made renewals wait 2.9 s (p99), past the 2.33 s a lease allows,
and leases lapsed. Keeping the data requests' latency near ``target_s`` keeps that queue, and
so a renewal's wait, near ``target_s`` too, whatever the load. Against a store that answers
within the target (DynamoDB: milliseconds) the limit stays at its ceiling and costs nothing.

The rule, per request that ends (``release``):

- it took longer than ``target_s``: the limit is cut to 3/4 (not below ``floor``), at most
  once per such latency (the requests queued together report the same queue once);
- else, if requests are waiting for a slot (the limit holds them back), after ``limit`` such
  answers within the target since the last change the limit grows by one (not above
  ``ceiling``). While nobody waits it stays: answers within the target at a lower
  concurrency say nothing about a higher one.

Invariants: ``floor <= limit <= ceiling``; a request starts only while fewer than ``limit``
are in flight (after a cut, those in flight finish and no new one starts until below it);
waiting requests start in arrival order; a waiter cancelled before it starts takes no slot,
and one cancelled as it was granted gives its slot back. Used from one event loop's thread
only (``release`` is called there, via ``call_soon_threadsafe``).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Any

__all__ = ["AdaptiveLimit"]

_CUT = 0.75


class AdaptiveLimit:
    """A concurrency limit for one process's data requests to a store (module docstring)."""

    def __init__(
        self,
        ceiling: int,
        *,
        target_s: float,
        floor: int = 2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 1 <= floor <= ceiling:
            raise ValueError(f"need 1 <= floor <= ceiling, got floor {floor}, ceiling {ceiling}")
        if target_s <= 0:
            raise ValueError(f"target_s must be positive, got {target_s}")
        self.ceiling = ceiling
        self.floor = floor
        self.target_s = target_s
        self.limit = ceiling
        self.in_flight = 0
        self._clock = clock
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._within = 0  # requests within the target since the limit last changed
        self._cut_at = -float("inf")
        self.cuts = 0  # times the limit was cut
        self.waited = 0  # requests that waited for a slot
        self.slow = 0  # requests slower than the target

    async def acquire(self) -> None:
        """Wait for a slot (at once if one is free and nobody waits before us)."""
        if self.in_flight < self.limit and not self._waiters:
            self.in_flight += 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self.waited += 1
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # granted, then cancelled
                self.in_flight -= 1
                self._wake()
            else:
                waiter.cancel()  # _wake skips it
            raise

    def release(self, latency_s: float | None) -> None:
        """A request ended after ``latency_s`` at the store (None: it never started)."""
        self.in_flight -= 1
        if latency_s is not None:
            self._adapt(latency_s)
        self._wake()

    def _adapt(self, latency_s: float) -> None:
        if latency_s > self.target_s:
            self.slow += 1
            now = self._clock()
            if now - self._cut_at >= latency_s and self.limit > self.floor:
                self.limit = max(self.floor, int(self.limit * _CUT))
                self._cut_at = now
                self.cuts += 1
                self._within = 0
            return
        if not self._waiting():  # the limit holds nobody back: no evidence for a higher one
            return
        self._within += 1
        if self._within >= self.limit and self.limit < self.ceiling:
            self.limit += 1
            self._within = 0

    def _waiting(self) -> bool:
        return any(not w.done() for w in self._waiters)

    def _wake(self) -> None:
        while self._waiters and self.in_flight < self.limit:
            waiter = self._waiters.popleft()
            if waiter.done():  # cancelled while waiting
                continue
            self.in_flight += 1
            waiter.set_result(None)

    def view(self) -> dict[str, Any]:
        """What ``GET /cluster`` shows of it (``store_pacing``)."""
        return {
            "limit": self.limit,
            "ceiling": self.ceiling,
            "target_ms": round(self.target_s * 1000),
            "in_flight": self.in_flight,
            "waiting": sum(1 for w in self._waiters if not w.done()),
            "waited": self.waited,
            "slow": self.slow,
            "cuts": self.cuts,
        }
