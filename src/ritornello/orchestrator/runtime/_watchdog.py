"""The stuck-invocation watchdog: finds invocations that nothing will move, and moves them.

An invocation of a partition this process leads is *stuck* when the store says it is not
finished and nothing in memory will ever drive it:

* running or pending, first in its key's queue (or keyless, or in no queue), with no driver;
* suspended with no driver, and either not known as suspended (nobody will wake it) or
  already holding a completion for an entry it waits on (a wake-up was lost);
* backing-off with no retry timer, or scheduled with no start timer, and no driver.

Each one found is logged, counted (``stuck``) and re-driven through the same idempotent
reconciliation the inbox uses. A candidate is re-read before it is declared stuck, so an
invocation that merely moved on between the listing and the check is not counted. Journals
are read only for suspended invocations that have not changed for a whole round, at most
``journal_reads`` per round, to keep the cost bounded on DynamoDB.

A round reads every live invocation (100,000 sleepers: about 2 s of the reader thread's CPU on
SQLite, holding the GIL the event loop needs), so it is paced: it reads ``PAGE`` records at a
time, rests ``REST`` times as long as each page took, and waits while due timers are behind
(up to ``MAX_YIELD_S`` per page), so a round never competes with a wake-up burst for the CPU.
The price: a stuck invocation is found later, never missed.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable

from ritornello.store import LIVE_STATUSES, InvocationRecord, Status, Store, StoreError

from .._clock import Clock
from .._json import loads
from ..core import CANCEL_INDEX, Core
from ._leadership import Leadership
from ._timers import TimerQueue

log = logging.getLogger("ritornello.watchdog")

#: What the watchdog reads: every live status but ``paused`` (an operator's, on purpose).
LIVE = sorted(LIVE_STATUSES - {Status.PAUSED.value})
#: Records read per page of a round; the round rests ``REST`` times each page's time after it.
PAGE = 250
REST = 4.0
#: The longest a round waits for due timers to catch up, per page (then it goes on regardless).
MAX_YIELD_S = 1.0


class Watchdog:
    """Finds stuck invocations of the partitions led here and re-drives them."""

    def __init__(
        self,
        core: Core,
        store: Store,
        leadership: Leadership,
        timers: TimerQueue,
        *,
        clock: Clock,
        reconcile: Callable[[str], Awaitable[bool]],
        counters: Counter[str],
    ) -> None:
        self.core = core
        self.store = store
        self.leadership = leadership
        self.timers = timers
        self.clock = clock
        self._reconcile = reconcile
        self._counters = counters

    def idle(self, rec: InvocationRecord) -> bool:
        """True if memory holds nothing that will move ``rec`` (journal not consulted)."""
        core = self.core
        if core.is_driven(rec.id):
            return False
        if rec.status in (Status.RUNNING, Status.PENDING):
            return not core.waits_for_key(rec)  # keyless, first in its queue, or in none
        if rec.status == Status.BACKING_OFF:
            return not self.timers.pending(rec.id, "retry")
        if rec.status == Status.SCHEDULED:
            return not self.timers.pending(rec.id, "start")
        return rec.status == Status.SUSPENDED and not core.is_suspended(rec.id)

    async def _pace(self, began: float) -> float:
        """Rest after a page that began at ``began`` (loop time), and wait while timers are
        behind; the loop time the next page begins."""
        loop = asyncio.get_running_loop()
        await asyncio.sleep((loop.time() - began) * REST)
        waited = 0.0
        while self.timers.behind() and waited < MAX_YIELD_S:
            await asyncio.sleep(0.05)
            waited += 0.05
        return loop.time()

    async def find_stuck(self, *, older_than_ms: int = 0, journal_reads: int = 100) -> list[str]:
        """Ids of stuck invocations in the partitions this process leads (see module doc)."""
        stuck: list[str] = []
        reads = 0
        horizon = self.clock.now_ms() - older_than_ms
        began, seen = asyncio.get_running_loop().time(), 0
        for partition in self.leadership.owned():
            if not self.leadership.leads(partition) or self.core.is_draining(partition):
                continue
            async for rec in self.store.scan_invocations(LIVE, partition=partition, page=PAGE):
                seen += 1
                if seen % PAGE == 0:
                    began = await self._pace(began)
                if not self.leadership.leads(partition):
                    break
                if rec.modified_at > horizon:
                    continue  # changed lately: give the engine a round to act on it
                suspect = self.idle(rec)
                if (
                    not suspect
                    and rec.status == Status.SUSPENDED
                    and not self.core.is_driven(rec.id)
                ):
                    if reads >= journal_reads:
                        continue
                    reads += 1
                    _, completions = await self.store.get_journal(rec.id)
                    done = {loads(c)["index"] for c in completions}
                    suspect = CANCEL_INDEX in done or bool(done.intersection(rec.waiting))
                if not suspect:
                    continue
                fresh = await self.store.get_invocation(rec.id)
                if (
                    fresh is not None
                    and fresh.version == rec.version
                    and not self.core.is_driven(rec.id)
                ):
                    stuck.append(rec.id)
        return stuck

    async def watch(self, interval_s: float) -> None:
        """Every ``interval_s``: find stuck invocations, log and count them, re-drive them."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                found = await self.find_stuck(older_than_ms=int(interval_s * 1000))
                for inv_id in found:
                    self._counters["stuck"] += 1
                    log.warning(
                        "invocation %s was stuck (nothing would move it); re-driving", inv_id
                    )
                    await self._reconcile(inv_id)
            except asyncio.CancelledError:
                raise
            except StoreError:
                log.exception("watchdog round failed; trying again")
