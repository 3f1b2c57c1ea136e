"""The stuck-invocation watchdog: finds invocations that nothing will move, and moves them.

An invocation of a partition this process leads is *stuck* when the store says it is not
finished and nothing in memory will ever drive it:

* running or pending, first in its key's queue (or keyless), with no driver;
* suspended with no driver, and either not known as suspended (nobody will wake it) or
  already holding a completion for an entry it waits on (a wake-up was lost);
* backing-off with no retry timer, or scheduled with no start timer, and no driver.

Each one found is logged, counted (``engine.counters["stuck"]``) and re-driven through the
engine's idempotent reconciliation. A candidate is re-read before it is declared stuck, so an
invocation that merely moved on between the listing and the check is not counted. Journals
are read only for suspended invocations that have not changed for a whole round, at most
``journal_reads`` per round (rotating), to keep the cost bounded on DynamoDB.

A round reads every live invocation (100,000 sleepers: about 2 s of the reader thread's CPU on
SQLite, holding the GIL the event loop needs), so it is paced (``_pace``): it reads ``PAGE``
records at a time, rests ``REST`` times as long as each page took, and waits while due timers
are behind (up to ``MAX_YIELD_S`` per page), so a round never competes with a wake-up burst
for the CPU. The price: a stuck invocation is found later (a round over 100,000 takes about
ten seconds instead of two), never missed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from ritornello.store import InvocationRecord, StoreError

from ._apply import CANCEL_INDEX
from ._json import loads

if TYPE_CHECKING:
    from ._engine import Engine

log = logging.getLogger("ritornello.watchdog")

LIVE = ["pending", "running", "suspended", "backing-off", "scheduled"]
#: Records read per page of a round; the round rests ``REST`` times each page's time after it.
PAGE = 250
REST = 4.0
#: The longest a round waits for due timers to catch up, per page (then it goes on regardless).
MAX_YIELD_S = 1.0


async def _pace(engine: Engine, began: float) -> float:
    """Rest after a page that began at ``began`` (loop time), and wait while timers are behind;
    the loop time the next page begins."""
    loop = asyncio.get_running_loop()
    await asyncio.sleep((loop.time() - began) * REST)
    waited = 0.0
    while engine._timers.behind() and waited < MAX_YIELD_S:
        await asyncio.sleep(0.05)
        waited += 0.05
    return loop.time()


def _idle(engine: Engine, rec: InvocationRecord) -> bool:
    """True if memory holds nothing that will move ``rec`` (journal not consulted)."""
    if rec.id in engine._drivers:
        return False
    if rec.status in ("running", "pending"):
        key = engine._exclusive_key(rec)
        queue = engine._queues.get(key) if key is not None else None
        # keyless; or first in its key's queue; or in no queue at all (nobody will start it)
        return key is None or queue is None or rec.id not in queue or queue[0] == rec.id
    if rec.status == "backing-off":
        return not engine._timers.pending(rec.id, "retry")
    if rec.status == "scheduled":
        return not engine._timers.pending(rec.id, "start")
    return rec.status == "suspended" and rec.id not in engine._suspended


async def find_stuck(
    engine: Engine, *, older_than_ms: int = 0, journal_reads: int = 100
) -> list[str]:
    """Ids of stuck invocations in the partitions this process leads (see module doc)."""
    stuck: list[str] = []
    reads = 0
    horizon = engine.clock.now_ms() - older_than_ms
    began, seen = asyncio.get_running_loop().time(), 0
    for partition in sorted(engine._ready):
        if not engine._owns(partition):
            continue
        async for rec in engine.store.scan_invocations(LIVE, partition=partition, page=PAGE):
            seen += 1
            if seen % PAGE == 0:
                began = await _pace(engine, began)
            if not engine._owns(partition):
                break
            if rec.modified_at > horizon:
                continue  # changed lately: give the engine a round to act on it
            suspect = _idle(engine, rec)
            if not suspect and rec.status == "suspended" and rec.id not in engine._drivers:
                if reads >= journal_reads:
                    continue
                reads += 1
                _, completions = await engine.store.get_journal(rec.id)
                done = {loads(c)["index"] for c in completions}
                suspect = CANCEL_INDEX in done or bool(done.intersection(rec.waiting))
            if not suspect:
                continue
            fresh = await engine.store.get_invocation(rec.id)
            if (
                fresh is not None
                and fresh.version == rec.version
                and (rec.id not in engine._drivers)
            ):
                stuck.append(rec.id)
    return stuck


async def watch(engine: Engine, interval_s: float) -> None:
    """Every ``interval_s``: find stuck invocations, log and count them, re-drive them."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            found = await find_stuck(engine, older_than_ms=int(interval_s * 1000))
            for inv_id in found:
                engine.counters["stuck"] += 1
                log.warning("invocation %s was stuck (nothing would move it); re-driving", inv_id)
                await engine._reconcile(inv_id)
        except asyncio.CancelledError:
            raise
        except StoreError:
            log.exception("watchdog round failed; trying again")
