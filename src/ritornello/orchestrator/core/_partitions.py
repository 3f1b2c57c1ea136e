"""Partitions gained and lost, and invocations changed by someone else.

Recovery (``PartitionRecovered``) rebuilds what the partition's previous leader held in memory
from what the runtime read: key queues in arrival order (each key's holder first), the
suspended set, timers; and drives what was in flight from the journals read with it.
Recovering twice is harmless: drivers are keyed by invocation id, and everything a re-driven
attempt writes is conditioned on the record version it read.

A lost partition (``PartitionLost``) is forgotten at once: its drivers are halted (their state
is in the store; the new leader recovers it), its queues, suspended invocations and timers go.

``Reconcile`` brings memory in line with the store for one invocation that another process
created, completed or changed (an inbox message, or the watchdog): idempotent, messages may
repeat.
"""

from __future__ import annotations

from collections import deque

from ritornello.store.records import FINAL_STATUSES, Status, TimerRecord

from .._json import loads
from ._effects import Arm, CheckSuspended, Decision, DropTimers, Effect, Halt
from ._events import (
    CompletionsFound,
    PartitionClaimed,
    PartitionDraining,
    PartitionLost,
    PartitionRecovered,
    Reconcile,
)
from ._invocation import Invocation
from ._journal import CANCEL_INDEX
from ._limits import lost as limits_lost
from ._state import CoreState

#: Journals of suspended invocations read per ``CheckSuspended`` after a recovery.
SUSPENDED_BATCH = 500


def claimed(core: CoreState, ev: PartitionClaimed, now: int) -> Decision:
    core.claimed.add(ev.partition)
    return Decision()


def recovered(core: CoreState, ev: PartitionRecovered, now: int) -> Decision:
    p = ev.partition
    core.ready.add(p)
    records = ev.records
    # Key queues: the key's holder first (the one that started: running, suspended,
    # backing-off or paused), then the ones waiting behind it in arrival order. Arrival (seq)
    # alone is not enough: a delayed send joins its queue when its timer admits it, possibly
    # behind a holder that arrived later (found by the simulation, seed 110).
    holders = [r for r in records if r.status not in (Status.PENDING, Status.SCHEDULED)]
    waiting = [r for r in records if r.status == Status.PENDING]
    # A queue of this partition that exists already holds what ``admit`` queued while the
    # reads ran (a lost partition leaves none): newer than everything read, so behind it; one
    # whose creation failed meanwhile has left its queue and stays out.
    read = {r.id for r in records}
    queues = core.keys.queues
    early = {
        k: [inv_id for inv_id in queues.pop(k) if inv_id not in read]
        for k in [k for k in queues if core.key_partition(*k) == p]
    }
    for rec in holders + waiting:  # each list ordered by seq
        core.keys.enqueue(rec)
    for k, ids in early.items():
        queues.setdefault(k, deque()).extend(ids)
    effects: list[Effect] = []
    suspended: list[str] = []
    for rec in records:
        if rec.status == Status.SUSPENDED and rec.id not in core.driving:
            core.suspended[rec.id] = (rec.waiting, rec.partition)
            suspended.append(rec.id)
        elif rec.status in (Status.RUNNING, Status.PENDING) and core.may_run(rec):
            prepared = Invocation.from_journal(rec, *ev.journals[rec.id])
            effects.extend(core.drive(rec.id, prepared))
    for k, ids in early.items():  # first in its queue: started (once it is created: ``drive``
        if ids and queues[k][0] == ids[0]:  # refuses while its creation is committing)
            effects.extend(core.drive(ids[0], partition=p))
    effects.extend(Arm(t) for t in ev.timers)
    # A completion committed just before a crash may not have woken its invocation.
    for start in range(0, len(suspended), SUSPENDED_BATCH):
        effects.append(CheckSuspended(suspended[start : start + SUSPENDED_BATCH]))
    return Decision(effects=effects)


def completions_found(core: CoreState, ev: CompletionsFound, now: int) -> Decision:
    effects: list[Effect] = []
    for inv_id, (_, completions) in ev.journals.items():
        done = {loads(c)["index"] for c in completions}
        entry = core.suspended.get(inv_id)  # may have changed during the read
        if entry is not None and (CANCEL_INDEX in done or done.intersection(entry[0])):
            effects.extend(core.wake(inv_id))
    return Decision(effects=effects)


def draining(core: CoreState, ev: PartitionDraining, now: int) -> Decision:
    """Start the hand-over of a partition: drivers end at their next attempt (``_drive``),
    nothing new starts on it (``CoreState.drive``, ``admit``, ``submit``)."""
    core.draining.add(ev.partition)
    return Decision()


def lost(core: CoreState, ev: PartitionLost, now: int) -> Decision:
    p = ev.partition
    core.ready.discard(p)
    core.claimed.discard(p)
    core.draining.discard(p)
    effects: list[Effect] = [
        Halt(inv_id)
        for inv_id, d in core.driving.items()
        if d.invocation is not None and d.invocation.rec.partition == p
    ]
    for inv_id in [i for i, (_, q) in core.suspended.items() if q == p]:
        del core.suspended[inv_id]
    core.keys.drop(p, core.key_partition)
    limits_lost(core.limits, p)
    effects.append(DropTimers(p))
    return Decision(effects=effects)


def reconcile(core: CoreState, ev: Reconcile, now: int) -> Decision:
    rec = ev.record
    inv_id = rec.id
    effects: list[Effect] = []
    if rec.status in FINAL_STATUSES or rec.status == Status.PAUSED:
        if inv_id in core.driving:
            effects.append(Halt(inv_id))
        core.suspended.pop(inv_id, None)
        if rec.status != Status.PAUSED:
            effects.extend(core.finish(rec))
        return Decision(effects=effects)
    if rec.status == Status.SCHEDULED:
        if rec.next_at is not None:
            effects.append(Arm(TimerRecord(rec.next_at, inv_id, "start", 0, rec.partition)))
        return Decision(effects=effects)
    core.keys.enqueue(rec)
    if rec.status == Status.BACKING_OFF:
        if rec.next_at is not None and inv_id not in core.driving:
            effects.append(Arm(TimerRecord(rec.next_at, inv_id, "retry", 0, rec.partition)))
        return Decision(effects=effects)
    d = core.driving.get(inv_id)
    if d is not None:
        if d.invocation is None:  # loading: its read may predate these completions
            d.reload = True
            return Decision()
        for text in ev.completions:
            index = loads(text)["index"]
            if index not in d.invocation.completions:
                effects.extend(core.deliver(inv_id, index, text))
        return Decision(effects=effects)
    if rec.status == Status.SUSPENDED:
        core.suspended[inv_id] = (rec.waiting, rec.partition)
        done = {loads(c)["index"] for c in ev.completions}
        if CANCEL_INDEX in done or done.intersection(rec.waiting):
            effects.extend(core.wake(inv_id))
    elif core.may_run(rec):
        effects.extend(core.drive(inv_id, partition=rec.partition))
    return Decision(effects=effects)
