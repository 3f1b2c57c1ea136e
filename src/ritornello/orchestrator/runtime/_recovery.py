"""Partitions gained and lost, and the inboxes through which other processes reach a leader.

Recovery reads first (the partition's live invocations, its timers, the journals of what may
run at once) and hands everything to the core in one event, so nothing else on the loop sees a
half-recovered partition; drivers start from what was read instead of each reading its own
(only a leader appends entries, and every commit of a driver is conditioned on the record
version it started from). A suspended invocation whose completion was committed just before a
crash is found by reading the journals of the suspended, 500 at a time, and woken.

Inboxes: an effect on an invocation in a partition led elsewhere (a call, a callee's result, an
awakeable, an operator's action) travels as an inbox message in the same unit. The leader
polls its inboxes and reconciles each named invocation from the store (idempotent: messages
may repeat), then deletes the messages fenced by its epoch, so a leader that lost the
partition mid-way deletes nothing its successor has not seen.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence

from ritornello.store import LIVE_STATUSES, FencedError, Status, Store, StoreError

from ..core import (
    CompletionsFound,
    Core,
    Decision,
    Effect,
    Event,
    PartitionClaimed,
    PartitionLost,
    PartitionRecovered,
    PermitsRead,
    Reconcile,
    parse_permit_message,
)
from ._leadership import Leadership
from ._limits import Limits

log = logging.getLogger("ritornello.engine")

#: Invocation records read per page during a recovery.
RECOVERY_PAGE = 5000
#: Seconds between two reads of the deployments by a process sharing the store.
DEPLOYMENTS_EVERY_S = 2.0


class Recovery:
    """Recovers partitions as they are claimed, forgets them as they are lost, and reads the
    inboxes of those led here."""

    def __init__(
        self,
        core: Core,
        store: Store,
        leadership: Leadership,
        *,
        apply: Callable[[Event], Decision],
        run_effects: Callable[[Sequence[Effect]], Awaitable[None]],
        perform: Callable[[Sequence[Effect]], None],
        refresh_deployments: Callable[[], Awaitable[None]],
        counters: Counter[str],
        inbox_interval_s: float,
        limits: Limits,
    ) -> None:
        self.core = core
        self.store = store
        self.leadership = leadership
        self._apply = apply
        self._run_effects = run_effects
        self._perform = perform
        self._refresh_deployments = refresh_deployments
        self._counters = counters
        self.inbox_interval_s = inbox_interval_s
        self.limits = limits

    def claimed(self, partition: int) -> None:
        """A lease was just claimed (before its recovery reads)."""
        self._apply(PartitionClaimed(partition))

    def lost(self, partition: int) -> None:
        """This process no longer leads ``partition``: stop driving its invocations (their
        state is in the store; the new leader recovers it)."""
        self._perform(self._apply(PartitionLost(partition)).effects)

    async def recover(self, partition: int) -> None:
        """Rebuild what the partition's previous leader held in memory, then drive what was
        in flight (module docstring). Recovering twice is harmless."""
        leadership, store = self.leadership, self.store
        epoch = leadership.epoch(partition)
        if epoch is not None:
            # a predecessor's step still in flight lands before this or never (store.seal)
            await store.seal(partition, epoch)
        records = [
            rec
            async for rec in store.scan_invocations(
                sorted(LIVE_STATUSES), partition=partition, page=RECOVERY_PAGE
            )
        ]
        timers = await store.list_timers(partition=partition)
        permits = await store.list_permits(partition=partition)
        journals = await store.get_journals(
            [r.id for r in records if r.status in (Status.RUNNING, Status.PENDING)]
        )
        if leadership.epoch(partition) != epoch:
            return  # lost (and maybe regained) while reading: that round recovers it
        if not leadership.holds(partition):
            leadership.step_down(partition)  # expired while reading: let it go cleanly
            return
        decision = self._apply(PartitionRecovered(partition, records, timers, journals))
        # the limits owned here: their rows, read after the claim like everything above
        self._perform(self._apply(PermitsRead(permits, partition=partition)).effects)
        await self._run_effects(decision.effects)
        self._counters["partitions_recovered"] += 1
        log.info(
            "partition %d: recovered, %d invocations in flight",
            partition,
            len(records),
            extra={"partition": partition},
        )

    async def wake_if_completed(self, invocation_ids: list[str]) -> None:
        """Wake those of ``invocation_ids`` still suspended here that hold a completion they
        wait on (or a cancellation)."""
        journals = await self.store.get_journals(self.core.still_suspended(invocation_ids))
        self._perform(self._apply(CompletionsFound(journals)).effects)

    async def reconcile(self, invocation_id: str) -> bool:
        """Bring memory in line with the store for one invocation another process created,
        completed or changed. False if its partition is not led here right now (nothing
        done: its message stays for whoever leads)."""
        rec = await self.store.get_invocation(invocation_id)
        if rec is None:
            return True
        if not self.leadership.leads(rec.partition):
            return False
        self._counters["reconciled"] += 1
        _, completions = await self.store.get_journal(invocation_id)
        self._perform(self._apply(Reconcile(rec, completions)).effects)
        return True

    async def inbox_forever(self) -> None:
        """Poll the inboxes of the partitions led here (and re-read deployments every 2 s).
        The poll interval starts at ``inbox_interval_s`` and doubles while the inboxes stay
        empty, up to 1 s; any message brings it back down. A process alone on an exclusive
        store (SQLite) never polls: nobody else can write to it."""
        loop = asyncio.get_running_loop()
        refreshed = loop.time()
        interval = self.inbox_interval_s
        while True:
            await asyncio.sleep(interval)
            if self.leadership.alone():
                continue
            if loop.time() - refreshed > DEPLOYMENTS_EVERY_S:
                refreshed = loop.time()
                try:
                    await self._refresh_deployments()
                    await self.limits.refresh()
                except StoreError:
                    log.exception("reading deployments failed; trying again")
            found = 0
            for p in self.leadership.owned():
                if not self.core.is_ready(p) or self.core.is_draining(p):
                    continue  # a partition being handed over: its messages are for its next leader
                try:
                    found += await self.drain_inbox(p)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception(
                        "partition %d: inbox failed; trying again", p, extra={"partition": p}
                    )
            idle_max = max(self.inbox_interval_s, 1.0)
            interval = self.inbox_interval_s if found else min(interval * 2, idle_max)

    async def drain_inbox(self, partition: int) -> int:
        """Reconcile every invocation named in the partition's inbox, then delete the
        messages, fenced by our epoch. Returns how many were read."""
        epoch = self.leadership.epoch(partition)
        self.leadership.stats.requests["read_inbox"] += 1
        messages = await self.store.read_inbox(partition)
        if not messages or epoch is None:
            return len(messages)
        for inv_id in dict.fromkeys(inv for _, inv in messages):
            if not self.leadership.leads(partition):
                return len(messages)  # not ours now: the messages stay for whoever leads
            permit = parse_permit_message(inv_id)
            if permit is not None:
                await self.limits.changed(*permit)
            elif not await self.reconcile(inv_id):
                return len(messages)
        self.leadership.stats.requests["ack_inbox"] += 1
        try:
            await self.store.ack_inbox(partition, [m for m, _ in messages], epoch)
        except FencedError:
            self.leadership.step_down(partition)
        return len(messages)
