"""Commits units as the leader of their partition, so that no effect is lost to a change of
leader.

* A unit is fenced by its home partition's epoch, and by the epoch of every other partition it
  creates or completes an invocation in and that this process leads (the core acts on those in
  memory once it is committed; the fence proves this process still led them when the unit
  landed, so a successor's recovery, which reads after its claim, sees it).
* For invocations of partitions led elsewhere it adds inbox messages instead.
* A failed fence of the home partition raises ``FencedError`` after stepping down from it; a
  failed fence of another partition steps down from that one and commits again with a message.

Timeline of a lapse (the lease's validity ran out with its renewal still in flight)::

    renewal sent ── validity lapses ── commit waits (``leading``) ── renewal lands ── commit
                                                       └── renewal fenced ── step down, raise

A lapse may also come while the commit reads which partitions its unit touches: the commit
then goes round again and waits it out the same way.

Giving up during the lapse would leave an invocation with no driver while the partition stays
this process's own.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence

from ritornello.store import (
    CommitUnit,
    ConflictError,
    FencedError,
    Store,
    StoreError,
    crashpoints,
)

from ..core import CommitFailed, Committed, Decision, Effect, Event, permit_message
from ._leadership import Leadership
from ._metrics import CommitTimings

#: How many times a commit goes round when leadership keeps changing under it.
ROUNDS = 4


class Committer:
    """Writes commit units for one orchestrator process."""

    def __init__(
        self,
        store: Store,
        leadership: Leadership,
        *,
        known_partition: Callable[[str], int | None],
        limit_partition: Callable[[str], int],
        counters: Counter[str],
        timings: CommitTimings,
        apply: Callable[[Event], Decision],
        perform: Callable[[Sequence[Effect]], None],
    ) -> None:
        self.store = store
        self._apply = apply  # report to the core
        self._perform = perform
        self.leadership = leadership
        self._known_partition = known_partition  # an invocation's partition, if in memory
        self._limit_partition = limit_partition  # a limit instance's partition
        self._counters = counters
        self._timings = timings

    async def commit_decision(self, decision: Decision) -> Decision:
        """Commit a decision's unit, report the outcome to the core, perform the effects that
        follow and return the decision that follows. A failure is reported (``CommitFailed``, its
        effects performed) and raised; cancellation too (a cut-off commit may still land)."""
        assert decision.unit is not None
        try:
            await self.commit(decision.unit, decision.home)
        except BaseException as exc:
            self._perform(self._apply(CommitFailed(decision.token, _reason(exc))).effects)
            raise
        after = self._apply(Committed(decision.token))
        if after.effects:
            self._perform(after.effects)
            after.effects = ()
        return after

    async def commit(self, unit: CommitUnit, home: int | None) -> None:
        """Commit ``unit`` as the leader of partition ``home`` (None: as nobody's leader, e.g.
        an ingress request for a partition led elsewhere). See the module docstring."""
        leadership = self.leadership
        base_notify = list(unit.notify)
        for _ in range(ROUNDS):
            if (
                home is not None
                and not leadership.leads(home)
                and not await leadership.leading(home)
            ):
                raise FencedError(f"partition {home} is not led by {leadership.node}", home)
            unit.fences.clear()
            unit.notify[:] = base_notify
            fence = {home} if home is not None else set()
            # nothing to find when this process alone can use the store: it leads them all
            if not leadership.alone():
                for inv_id, p in (await self._targets(unit)).items():
                    if p == home:
                        continue
                    if leadership.leads(p):
                        fence.add(p)
                    elif (p, inv_id) not in unit.notify:
                        unit.notify.append((p, inv_id))
                if unit.permits_ask or unit.permits_release:
                    self._permit_owners(unit, home, fence)
            order = sorted(fence, key=lambda q: (q != home, q)) if len(fence) > 1 else fence
            for p in order:  # home first
                epoch = leadership.epoch(p)
                if epoch is None or not leadership.leads(p):
                    # lost or lapsed during the reads above: go round again (home: the check at
                    # the top waits a lapse out, raises if it is lost; another partition gets
                    # a message instead). Raising at once failed commits over a lapse of a
                    # moment, and the attempt ran again (issue 23).
                    break
                unit.fences.append((p, epoch))
            else:
                try:
                    if crashpoints.ARMED:
                        crashpoints.reach("before-commit")
                    began = time.perf_counter()
                    await self.store.commit(unit)
                    self._timings.observe(time.perf_counter() - began)
                    if crashpoints.ARMED:
                        crashpoints.reach("after-commit")
                    return
                except FencedError as exc:
                    self._counters["fenced"] += 1
                    lost = exc.partition
                    if lost is None or lost == home:
                        if home is not None:
                            leadership.step_down(home)
                        raise
                    leadership.step_down(lost)
        raise FencedError(f"leadership keeps changing under a commit of {leadership.node}")

    def _permit_owners(self, unit: CommitUnit, home: int | None, fence: set[int]) -> None:
        """The owners of the limits whose rows ``unit`` asks or releases: fenced when led
        here (the core learns of it once committed), else told by an inbox message."""
        rows = [(r.limit, r.invocation_id, r.index, r.partition) for r in unit.permits_ask]
        rows.extend(
            (limit, inv_id, index, self._limit_partition(limit))
            for limit, inv_id, index in unit.permits_release
        )
        for limit, inv_id, index, p in rows:
            if p == home:
                continue
            if self.leadership.leads(p):
                fence.add(p)
            else:
                unit.notify.append((p, permit_message(limit, inv_id, index)))

    async def _targets(self, unit: CommitUnit) -> dict[str, int]:
        """The partitions of the invocations ``unit`` creates or completes an entry of (asked
        only when another process may use the store)."""
        targets: dict[str, int] = {}
        for write in unit.invocations:
            if write.expect_version is None:
                targets[write.record.id] = write.record.partition
        for inv_id, _, _ in unit.completions:
            if inv_id in targets:
                continue
            known = self._known_partition(inv_id)
            if known is not None:
                targets[inv_id] = known
                continue
            rec = await self.store.get_invocation(inv_id)
            if rec is not None:
                targets[inv_id] = rec.partition
        return targets


def _reason(exc: BaseException) -> str:
    """What ``CommitFailed`` calls a failure."""
    if isinstance(exc, FencedError):
        return "fenced"
    if isinstance(exc, ConflictError):
        return "conflict"
    if isinstance(exc, StoreError):
        return "store"
    return "cancelled"
