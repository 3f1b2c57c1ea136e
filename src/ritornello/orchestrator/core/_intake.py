"""New invocations: created by the ingress or the scheduler (``Submit``), and delayed ones
started when their start timer fires (``ScheduledDue``).

A new invocation is admitted to its key's queue before its creation is committed (so two
requests for one key queue in arrival order), marked ``creating`` until the commit's outcome
is known (nothing starts it before it exists), and started — or its start timer armed — only
once it is committed. A creation that fails leaves its queue.
"""

from __future__ import annotations

from dataclasses import dataclass

from ritornello.store.records import (
    CommitUnit,
    InvocationRecord,
    InvocationWrite,
    Status,
    TimerRecord,
    with_changes,
)

from .._json import loads
from ._answer import new_invocation
from ._effects import Arm, Decision, Disarm, Effect, Rearm, StartRecheck
from ._events import ScheduledDue, ScheduledRecheck, Submit
from ._invocation import Invocation
from ._journal import DEBOUNCE_PREFIX, SUPERSEDED_RESULT, WORKFLOW_RUN, input_entry
from ._queues import exclusive_key
from ._state import CoreState

#: Seconds before a start timer whose commit failed fires again.
START_RETRY_S = 1.0


def submit(core: CoreState, ev: Submit, now: int) -> Decision:
    """The unit that creates the invocation (its record and input entry, and its start timer
    when delayed); ``Decision.record`` is the record written."""
    target = ev.target
    service, handler, kind = target.service.name, target.handler.name, target.handler.kind
    partition = core.partition_of(service, ev.key, ev.invocation_id)
    idempotency_key = WORKFLOW_RUN if kind == "workflow" else ev.idempotency_key
    delayed = ev.delay_ms > 0
    here = ev.here and partition not in core.draining  # a partition being handed over: its
    # next leader admits the newcomer (its recovery reads it; this unit is still fenced here)
    rec = new_invocation(
        id=ev.invocation_id,
        partition=partition,
        service=service,
        handler=handler,
        key=ev.key,
        handler_kind=kind,
        deployment_id=target.deployment_id,
        seq=core.next_seq(now),
        now_ms=now,
        status=Status.SCHEDULED.value if delayed else Status.RUNNING.value,
        idempotency_key=idempotency_key,
        next_at=now + ev.delay_ms if delayed else None,
    )
    if ev.journal:  # a restart-as-new: its kept prefix, input first (``_restart``)
        entry = ev.journal[0]
        rec = with_changes(rec, journal_len=len(ev.journal))
        unit = CommitUnit(
            entries=[(rec.id, i, text) for i, text in enumerate(ev.journal)],
            completions=[(rec.id, loads(c)["index"], c) for c in ev.completions],
        )
    else:
        entry = input_entry(ev.input_text, ev.headers)
        unit = CommitUnit(entries=[(rec.id, 0, entry)])
    timer = None
    state: dict[str, str] | None = None
    key = exclusive_key(rec)
    if delayed:
        timer = TimerRecord(now + ev.delay_ms, rec.id, "start", 0, partition)
        unit.timers_add.append(timer)
    elif here:
        # an idle key's cached state: valid only until its queue exists (just below)
        state = core.keys.states.pop(key, None) if key is not None else None
        status = core.admit(rec)
        if status != rec.status:
            rec = with_changes(rec, status=status)
    elif key is not None:
        rec = with_changes(rec, status=Status.PENDING.value)  # its leader admits it
    superseded = _supersede(core, unit, ev.supersedes, now)
    unit.invocations.append(InvocationWrite(rec))
    core.creating.add(rec.id)
    pending = _Creation(rec, entry, here, timer, state, superseded, ev.journal, ev.completions)
    decision = core.emit(unit, partition if ev.here else None, pending, now)
    decision.record = rec
    return decision


@dataclass(slots=True)
class _Creation:
    record: InvocationRecord
    input_entry: str
    here: bool
    timer: TimerRecord | None
    #: the key's cached state taken for it (it has held its key since before it was taken)
    state: dict[str, str] | None
    #: the debounced send it supersedes, as written (ended, or its key given up)
    superseded: InvocationRecord | None = None
    #: a restart-as-new's kept journal and completions (empty: a new invocation's)
    journal: tuple[str, ...] = ()
    completions: tuple[str, ...] = ()

    def created(self) -> Invocation:
        """The invocation as its driver starts it: its input, or its kept prefix."""
        if self.journal:
            return Invocation.from_journal(self.record, list(self.journal), list(self.completions))
        return Invocation.created(self.record, self.input_entry)

    def committed(self, core: CoreState, now: int) -> Decision:
        rec = self.record
        core.creating.discard(rec.id)
        if self.superseded is not None:
            before = self.superseded
            timer = TimerRecord(0, before.id, "start", 0, before.partition)
            done = core.finish(before) if before.result == SUPERSEDED_RESULT else []
            after = self.committed_creation(core, now)
            after.effects = [Disarm(timer), *done, *after.effects]
            return after
        return self.committed_creation(core, now)

    def committed_creation(self, core: CoreState, now: int) -> Decision:
        rec = self.record
        if not self.here:
            return Decision(record=rec)  # the partition's leader picks it up from its inbox
        if self.timer is not None:
            return Decision(effects=[Arm(self.timer)], record=rec)
        effects: list[Effect] = []
        if rec.status == Status.RUNNING or core.may_run(rec):
            # (a pending one may run: its key was freed while the commit was in flight)
            inv = self.created()
            if rec.status == Status.RUNNING:
                inv.state = self.state
            effects = core.drive(rec.id, inv)
        elif core.exclusive and core.keys.contains(rec):  # still waiting for its key
            core.keys.prepared[rec.id] = self.created()
        return Decision(effects=effects, record=rec)

    def failed(self, core: CoreState, reason: str, now: int) -> Decision:
        core.creating.discard(self.record.id)
        return Decision(effects=core.unqueue(self.record), record=self.record)


def _supersede(
    core: CoreState, unit: CommitUnit, earlier: InvocationRecord | None, now: int
) -> InvocationRecord | None:
    """A debounced send replaces the one before it (``Submit.supersedes``): still scheduled,
    that one ends with a 409 (its start timer goes); finished already (cancelled), it only
    gives the key up. Either write is conditioned on the version read, so of two sends at
    once one wins and the other tries again."""
    if earlier is None:
        return None
    changes: dict[str, object] = {"idempotency_key": None, "modified_at": now}
    if earlier.status == Status.SCHEDULED:
        changes.update(status=Status.COMPLETED.value, result=SUPERSEDED_RESULT, next_at=None)
        unit.timers_remove.append(TimerRecord(0, earlier.id, "start", 0, earlier.partition))
    written = with_changes(earlier, version=earlier.version + 1, **changes)
    unit.invocations.append(InvocationWrite(written, expect_version=earlier.version))
    if earlier.partition not in core.ready:
        unit.notify.append((earlier.partition, earlier.id))  # its leader answers its waiters
    return written


def scheduled_due(core: CoreState, ev: ScheduledDue, now: int) -> Decision:
    """A delayed invocation's start time came: admit it to its key's queue and mark it
    running (or pending), removing the timer in the same unit. A timer whose invocation is no
    longer scheduled (started by another path, or gone) is only removed."""
    rec, timer = ev.record, ev.timer
    if rec is None or rec.status != Status.SCHEDULED:
        return _remove_timer(core, timer, now)
    status = core.admit(rec)
    new = with_changes(rec, status=status, next_at=None, version=rec.version + 1)
    if rec.idempotency_key is not None and rec.idempotency_key.startswith(DEBOUNCE_PREFIX):
        new = with_changes(new, idempotency_key=None)  # it runs: the next send starts anew
    unit = CommitUnit(
        invocations=[InvocationWrite(new, expect_version=rec.version)], timers_remove=[timer]
    )
    return core.emit(unit, rec.partition, _Start(timer, rec, status), now)


def scheduled_recheck(core: CoreState, ev: ScheduledRecheck, now: int) -> Decision:
    """The start's commit conflicted. Still scheduled: try again later (it leaves the queue
    unless a driver already runs it). Moved on: it was started by another path (its key's
    holder finished and started it, simulation seed 8517) and keeps its place; only its timer
    is left to remove."""
    rec = ev.record
    if rec is not None and rec.status == Status.SCHEDULED:
        effects: list[Effect] = []
        if rec.id not in core.driving:
            effects.extend(core.unqueue(rec))
        effects.append(Rearm([ev.timer], START_RETRY_S))
        return Decision(effects=effects)
    return _remove_timer(core, ev.timer, now)


@dataclass(slots=True)
class _Start:
    timer: TimerRecord
    record: InvocationRecord
    status: str

    def committed(self, core: CoreState, now: int) -> Decision:
        if self.status == Status.RUNNING:
            return Decision(effects=core.drive(self.record.id, partition=self.record.partition))
        return Decision()

    def failed(self, core: CoreState, reason: str, now: int) -> Decision:
        if reason == "conflict":
            return Decision(effects=[StartRecheck(self.timer)])
        effects: list[Effect] = []
        if self.record.id not in core.driving:  # never pull a running invocation off its key
            effects.extend(core.unqueue(self.record))
        if reason != "cancelled":
            effects.append(Rearm([self.timer], START_RETRY_S))
        return Decision(effects=effects)


def _remove_timer(core: CoreState, timer: TimerRecord, now: int) -> Decision:
    return core.emit(CommitUnit(timers_remove=[timer]), timer.partition, _TimerGone(timer), now)


@dataclass(slots=True)
class _TimerGone:
    timer: TimerRecord

    def committed(self, core: CoreState, now: int) -> Decision:
        return Decision()

    def failed(self, core: CoreState, reason: str, now: int) -> Decision:
        if reason == "cancelled":
            return Decision()
        return Decision(effects=[Rearm([self.timer], START_RETRY_S)])
