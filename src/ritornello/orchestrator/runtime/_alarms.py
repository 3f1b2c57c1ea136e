"""What the runtime does when time passes: timers that came due, and finished invocations
whose retention ran out.

Due timers go to the core (``TimersDue``) only for partitions led here: those of a partition
whose lease lapsed with its renewal in flight come back in a moment (``LAPSED_TIMERS_S``: not
at once, or the timer loop would take them again without ever yielding and the renewal's
verdict could never come in — a livelock that once froze a whole orchestrator), and those of a
partition lost, or being handed over, are dropped (its next leader loads them). Sleeps the
core completes by units of their own are committed one unit per partition, side by side (one
group commit). A failed commit is reported to the core, which arms the timers again; nothing
here retries by itself.

Retention: each partition's leader purges its own finished invocations past their expiry
(``expires_at``, stamped when they finish: ``retention_s`` later, or their service's own
retention), with a workflow's state and promises, 500 at a time; safe to run any time, it only
touches finished invocations.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from ritornello.store import FINAL_STATUSES, Store, StoreError, TimerRecord

from .._clock import Clock
from .._json import loads
from ..core import (
    AttachChecked,
    Core,
    Decision,
    Effect,
    Event,
    FireSleeps,
    Purge,
    Rearm,
    ScheduledDue,
    ScheduledRecheck,
    SleepsDue,
    TimersBack,
    TimersDue,
)
from ._committer import Committer
from ._leadership import Leadership

log = logging.getLogger("ritornello.engine")

#: Seconds before set-aside timers (their partition's lease lapsed) are tried again.
LAPSED_TIMERS_S = 0.05
#: Seconds before a start timer whose invocation could not be read fires again.
START_RETRY_S = 1.0
#: Finished invocations purged per unit.
PURGE_BATCH = 500


class Alarms:
    """Fires due timers and sweeps expired invocations for one engine."""

    def __init__(
        self,
        core: Core,
        store: Store,
        committer: Committer,
        leadership: Leadership,
        *,
        clock: Clock,
        apply: Callable[[Event], Decision],
        perform: Callable[[Sequence[Effect]], None],
        run_effects: Callable[[Sequence[Effect]], Awaitable[None]],
        later: Callable[[float, Event], None],
        retention_s: float,
    ) -> None:
        self.core = core
        self.store = store
        self.committer = committer
        self.leadership = leadership
        self.clock = clock
        self._apply = apply
        self._perform = perform
        self._run_effects = run_effects
        self._later = later
        self.retention_s = retention_s

    # ------------------------------------------------------------------ timers

    async def fire(self, due: list[TimerRecord]) -> None:
        """Due timers (``TimerQueue``'s callback), sorted out as the module docstring says."""
        leads, ready = self.leadership.leads, self.core.is_ready
        lapsed = [t for t in due if ready(t.partition) and not leads(t.partition)]
        if lapsed:
            self._later(LAPSED_TIMERS_S, TimersBack(lapsed))
        # a partition being handed over fires nothing: its timers are in the store, for its
        # next leader (firing one would only wake what the drain stops)
        draining = self.core.is_draining
        due = [t for t in due if leads(t.partition) and not draining(t.partition)]
        if due:
            await self._run_effects(self._apply(TimersDue(due)).effects)

    async def fire_sleeps(self, batch: list[FireSleeps]) -> None:
        """Sleeps completed by units of their own, one per partition, side by side."""

        async def fire(e: FireSleeps) -> None:
            try:
                await self.committer.commit_decision(self._apply(SleepsDue(e.partition, e.timers)))
            except StoreError as exc:  # the core arms them again (CommitFailed)
                log.warning("firing %d sleep timers failed: %s", len(e.timers), exc)

        if len(batch) == 1:
            await fire(batch[0])
        else:
            await asyncio.gather(*(fire(e) for e in batch))

    async def start_due(self, timer: TimerRecord, *, recheck: bool) -> None:
        """Start a scheduled invocation whose start timer fired (or check it again after its
        start conflicted)."""
        try:
            rec = await self.store.get_invocation(timer.invocation_id)
        except StoreError as exc:
            log.warning(
                "starting %s failed: %s; again in 1 s",
                timer.invocation_id,
                exc,
                extra={"invocation_id": timer.invocation_id},
            )
            self._perform([Rearm([timer], START_RETRY_S)])
            return
        decision = self._apply(
            ScheduledRecheck(timer, rec) if recheck else ScheduledDue(timer, rec)
        )
        if decision.unit is None:
            await self._run_effects(decision.effects)
            return
        try:
            await self.committer.commit_decision(decision)
        except StoreError as exc:  # reported: the core checks again or re-arms it
            log.warning(
                "starting %s failed: %s",
                timer.invocation_id,
                exc,
                extra={"invocation_id": timer.invocation_id},
            )

    async def check_attach(self, timer: TimerRecord) -> None:
        """Read whether an attach's target finished (its timer fired): the attaching entry
        (its target id and commit time) and the target's record, reported to the core."""
        try:
            rec = await self.store.get_invocation(timer.invocation_id)
            entries, completions = await self.store.get_journal(timer.invocation_id)
            entry = loads(entries[timer.index]) if timer.index < len(entries) else {}
            done = any(loads(c)["index"] == timer.index for c in completions)
            target = await self.store.get_invocation(str(entry.get("id")))
        except StoreError as exc:
            log.warning(
                "attach of %s: %s; again in 1 s",
                timer.invocation_id,
                exc,
                extra={"invocation_id": timer.invocation_id},
            )
            self._perform([Rearm([timer], START_RETRY_S)])
            return
        waiting = rec is not None and rec.status not in FINAL_STATUSES and not done
        result = target.result if target is not None and target.status in FINAL_STATUSES else None
        at = entry.get("at")
        since = at if isinstance(at, int) else self.clock.now_ms()
        event = AttachChecked(timer, waiting, since, result)
        try:
            await self.committer.commit_decision(self._apply(event))
        except StoreError as exc:  # reported: the core re-arms it
            log.warning(
                "attach of %s failed: %s",
                timer.invocation_id,
                exc,
                extra={"invocation_id": timer.invocation_id},
            )

    # ------------------------------------------------------------------ retention

    async def purge_expired(self) -> int:
        """Purge finished invocations past their expiry (``expires_at``: ``retention_s``
        after they finished, or their service's own retention); how many were purged."""
        cutoff = self.clock.now_ms()
        total = 0
        for p in self.leadership.owned():  # each partition's leader purges its own
            while self.leadership.leads(p) and (
                expired := await self.store.list_expired(cutoff, PURGE_BATCH, partition=p)
            ):
                await self.committer.commit_decision(self._apply(Purge(expired)))
                total += len(expired)
        if total:
            log.info("retention: purged %d finished invocations", total)
        return total

    async def sweep_forever(self) -> None:
        """Purge every quarter of the shortest retention in use (``retention_s``, or a
        service's own; at least every minute)."""
        while True:
            shortest = min(self.retention_s, self.core.registry.shortest_retention_ms() / 1000)
            await asyncio.sleep(max(0.05, min(60.0, shortest / 4)))
            try:
                await self.purge_expired()
            except StoreError:
                log.exception("retention sweep failed; trying again later")
