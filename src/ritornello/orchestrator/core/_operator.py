"""Operators and the outside world: kill, cancel, pause, resume, awakeables completed through
the ingress, purges, state writes.

An operator's change goes: ``Stopping`` (its driver is halted and nothing starts it) → the
runtime reads the record (and journal) → ``Operate`` (the unit, conditioned on the version
read; a conflict means it moved meanwhile: read again) → ``Committed`` → ``Released``.
Everything else here is one unit and the deliveries it justifies once committed.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ritornello.protocol import parse_awakeable_id
from ritornello.protocol._entries import INVOCATION_PERMIT
from ritornello.store.records import (
    FINAL_STATUSES,
    CommitUnit,
    InvocationRecord,
    InvocationWrite,
    Status,
    TimerRecord,
)

from .._json import loads
from ..errors import NotFoundError, StateConflictError
from ._answer import Outcome, terminal
from ._effects import Decision, Disarm, Effect, Halt
from ._events import (
    CancelSignal,
    CompleteAwakeable,
    HoldKey,
    Operate,
    Purge,
    Released,
    ReleaseKey,
    Stopping,
    WriteState,
)
from ._invocation import open_permits
from ._journal import CANCEL_INDEX, CANCELLED_RESULT, KILLED_RESULT, completion_text
from ._permits import give_back, instance_of
from ._registry import Registry
from ._restart import chosen_deployment
from ._state import CoreState, Plain

#: The id that holds a key's queue while an operator writes the key's state.
STATE_WRITER = "\x00state-write"


def stopping(core: CoreState, ev: Stopping, now: int) -> Decision:
    core.stopping.add(ev.invocation_id)
    core.keys.prepared.pop(ev.invocation_id, None)  # it changes: a driver must read it again
    halt: list[Effect] = [Halt(ev.invocation_id)] if ev.invocation_id in core.driving else []
    return Decision(effects=halt)


def released(core: CoreState, ev: Released, now: int) -> Decision:
    core.stopping.discard(ev.invocation_id)
    return Decision()


def cancels_at_once(rec: InvocationRecord) -> bool:
    """A cancellation ends ``rec`` at once when it never started (pending behind its key,
    scheduled, or waiting for its limited handler's permit): no handler ran, no compensation
    to run."""
    if rec.journal_len != 1:
        return False
    return rec.status in (Status.PENDING, Status.SCHEDULED) or (
        rec.status == Status.SUSPENDED and rec.waiting == (INVOCATION_PERMIT,)
    )


def operate(core: CoreState, ev: Operate, now: int) -> Decision:
    """The unit of an operator's action on the record as read (its driver has stopped)."""
    core.suspended.pop(ev.invocation_id, None)
    rec = ev.record
    if rec is None:
        raise NotFoundError(f"invocation {ev.invocation_id} not found")
    if rec.status in FINAL_STATUSES:
        raise StateConflictError(f"invocation {rec.id} is already {rec.status}")
    p = rec.partition
    unit = CommitUnit(
        timers_remove=[TimerRecord(0, rec.id, "retry", 0, p), TimerRecord(0, rec.id, "start", 0, p)]
    )
    if ev.action == "kill":
        done = {loads(c)["index"] for c in ev.completions}
        unit.timers_remove.extend(
            TimerRecord(0, rec.id, "sleep", i, p)
            for i, e in enumerate(ev.entries)
            if i not in done and loads(e)["kind"] == "sleep"
        )
        killed = ev.result or KILLED_RESULT
        terminal(Outcome(unit=unit, record=rec), rec, killed)
        new = replace(rec, status=Status.KILLED.value, result=killed, waiting=(), next_at=None)
    elif ev.action == "cancel":
        terminal(Outcome(unit=unit, record=rec), rec, CANCELLED_RESULT)
        new = replace(rec, status=Status.COMPLETED.value, result=CANCELLED_RESULT, next_at=None)
    elif ev.action == "pause":
        if rec.status == Status.PAUSED:
            raise StateConflictError(f"invocation {rec.id} is already paused")
        new = replace(rec, status=Status.PAUSED.value, next_at=None)
    elif ev.action == "resume":
        if rec.status != Status.PAUSED:
            raise StateConflictError(f"invocation {rec.id} is {rec.status}, not paused")
        new = replace(rec, status=Status.RUNNING.value, attempt=1, next_at=None, waiting=())
        if ev.deployment is not None:  # it goes on with another deployment's code
            deployment = chosen_deployment(core.registry, rec, ev.deployment)
            new = replace(new, deployment_id=deployment)
    else:
        raise ValueError(f"unknown operator action {ev.action!r}")
    if ev.action != "resume":  # its permits go back (a resumed one asks again)
        held = open_permits(ev.entries)
        limit = core.registry.limit_of(rec.deployment_id, rec.service, rec.handler)
        if limit is not None and ev.entries:
            held[INVOCATION_PERMIT] = instance_of(core.limits.specs, limit, ev.entries[0], rec.key)
        if held:
            give_back(unit, rec.id, held, remove_grants=ev.action == "pause")
    new = replace(new, modified_at=now, version=rec.version + 1)
    unit.invocations.insert(0, InvocationWrite(new, expect_version=rec.version))
    if not ev.here:  # its leader drops or resumes it when it reads its inbox
        unit.notify.append((p, rec.id))
    decision = core.emit(unit, p if ev.here else None, _OperatorCommit(ev.action, new, unit), now)
    decision.record = new
    return decision


@dataclass(slots=True)
class _OperatorCommit:
    action: str
    record: InvocationRecord
    unit: CommitUnit

    def committed(self, core: CoreState, now: int) -> Decision:
        new = self.record
        core.stopping.discard(new.id)  # the operator's hold ends with its commit
        effects: list[Effect] = []
        if self.action in ("kill", "cancel"):
            for cid, index, text in self.unit.completions:
                effects.extend(core.deliver(cid, index, text))
            effects.extend(core.finish(new))
        elif self.action == "resume" and core.may_run(new):
            effects.extend(core.drive(new.id, partition=new.partition))
        return Decision(effects=effects, record=new)

    def failed(self, core: CoreState, reason: str, now: int) -> Decision:
        return Decision()  # the runtime reads the record again (or gives up and releases)


def cancel_signal(core: CoreState, ev: CancelSignal, now: int) -> Decision:
    """The cancellation signal of a started invocation (completion index -1): its handler's
    next await raises a terminal "cancelled" error, so its compensations run."""
    rec = ev.record
    text = completion_text(CANCEL_INDEX, CANCELLED_RESULT)
    unit = CommitUnit(completions=[(rec.id, CANCEL_INDEX, text)])
    return core.emit(unit, None, _Delivery(rec.id, CANCEL_INDEX, text), now)


def awakeable_target(
    awakeable_id: str,
    rec: InvocationRecord | None,
    entries: list[str],
    completions: list[str],
    registry: Registry,
) -> tuple[str, int]:
    """(invocation, entry index) of an awakeable that exists and is still open, checked
    against its journal (the id's secret included). Unknown or forged: NotFoundError;
    completed, or its invocation finished: StateConflictError. A ``sleep`` entry that carries
    an awakeable id (an AWS callback's heartbeat timer, which a heartbeat completes early) is
    one too; a sleep without one is not.

    A Restate SDK's awakeable (``sign_1...``) is a signal, not an entry: its index is the
    negative signal number, taken only for an invocation of a Restate endpoint (whose ids
    hold no secret: as on Restate, knowing the invocation id is enough)."""
    target = parse_awakeable_id(awakeable_id)
    if target is None or rec is None or rec.id != target[0]:
        raise NotFoundError(f"awakeable {awakeable_id!r} not found")
    index = target[1]
    if index < 0:
        if not registry.signals(rec.deployment_id):
            raise NotFoundError(f"awakeable {awakeable_id!r} not found")
    else:
        entry = loads(entries[index]) if index < len(entries) else {}
        if entry.get("id") != awakeable_id or entry.get("kind") not in ("awakeable", "sleep"):
            raise NotFoundError(f"awakeable {awakeable_id!r} not found")
    if rec.status in FINAL_STATUSES:
        raise StateConflictError(f"awakeable {awakeable_id!r}: its invocation is {rec.status}")
    for text in completions:
        done = loads(text)
        if done["index"] == index:
            failure = done.get("failure")
            how = "timed out" if isinstance(failure, dict) and "timed_out" in failure else ""
            raise StateConflictError(
                f"awakeable {awakeable_id!r} is already completed{': ' if how else ''}{how}"
            )
    return target


def complete_awakeable(core: CoreState, ev: CompleteAwakeable, now: int) -> Decision:
    """Resolve or reject an awakeable from outside. The check against the journal read
    (``awakeable_target``) answers the common case; the race it cannot see — two completions
    that both read it open — is settled by the store: the completion is ``fresh``, so only the
    first commit lands and the others fail with ``ConflictError`` (the runtime's 409)."""
    inv_id, index = awakeable_target(
        ev.awakeable_id, ev.record, ev.entries, ev.completions, core.registry
    )
    text = completion_text(index, ev.result_text)
    unit = CommitUnit(completions=[(inv_id, index, text)], fresh=[(inv_id, index)])
    if index >= 0 and loads(ev.entries[index]).get("kind") == "sleep":  # its timer goes too
        assert ev.record is not None
        unit.timers_remove.append(TimerRecord(0, inv_id, "sleep", index, ev.record.partition))
    return core.emit(unit, None, _Delivery(inv_id, index, text, unit.timers_remove), now)


@dataclass(slots=True)
class _Delivery:
    """A completion from outside the invocation's driver (an awakeable, a cancellation)."""

    invocation_id: str
    index: int
    text: str
    #: the timer of a sleep completed early, removed in the unit
    timers: list[TimerRecord] = field(default_factory=list)

    def committed(self, core: CoreState, now: int) -> Decision:
        effects: list[Effect] = [Disarm(t) for t in self.timers]
        effects.extend(core.deliver(self.invocation_id, self.index, self.text))
        return Decision(effects=effects)

    def failed(self, core: CoreState, reason: str, now: int) -> Decision:
        return Decision()


def purge(core: CoreState, ev: Purge, now: int) -> Decision:
    """Delete finished invocations with their journals (and a workflow run's state and
    promises, so its id is free again)."""
    if not ev.records:
        return Decision()
    for rec in ev.records:
        if rec.status not in FINAL_STATUSES:
            raise StateConflictError(
                f"invocation {rec.id} is {rec.status}: only a completed or killed "
                "invocation can be purged (cancel or kill it first)"
            )
    unit = CommitUnit(purge=[r.id for r in ev.records])
    for r in ev.records:
        if r.handler_kind == "workflow" and r.key is not None:
            unit.state.append((r.service, r.key, None, None))
    home = ev.records[0].partition
    if not ev.here:  # its leader forgets it (reconcile)
        unit.notify.extend((r.partition, r.id) for r in ev.records)
    return core.emit(unit, home if ev.here else None, Plain(), now)


def hold_key(core: CoreState, ev: HoldKey, now: int) -> Decision:
    """Hold an object key for an operator's state write: refused (409) while any exclusive
    invocation (or another write) holds it — its handler would see the state change under
    it."""
    key = (ev.service, ev.key)
    held = core.keys.holder(key)
    if held is not None:
        holder = "another state write" if held == STATE_WRITER else f"invocation {held}"
        raise StateConflictError(
            f"{ev.service}/{ev.key} is held by {holder}; write its state when the key is free"
        )
    core.keys.queue_for(key).append(STATE_WRITER)
    return Decision()


def write_state(core: CoreState, ev: WriteState, now: int) -> Decision:
    """Replace the user state of a held key: clear the rows not kept, write the changed."""
    unit = CommitUnit()
    for name in sorted(ev.rows):
        if not name.startswith("\x00") and name not in ev.texts:
            unit.state.append((ev.service, ev.key, name, None))
    for name in sorted(ev.texts):
        if ev.rows.get(name) != ev.texts[name]:
            unit.state.append((ev.service, ev.key, name, ev.texts[name]))
    if not unit.state:
        return Decision()
    return core.emit(unit, core.key_partition(ev.service, ev.key), Plain(), now)


def release_key(core: CoreState, ev: ReleaseKey, now: int) -> Decision:
    """The write is over: the key goes to the invocation that queued behind it, if any."""
    q = core.keys.queues.get((ev.service, ev.key))
    if q is None:
        return Decision()  # the partition was lost meanwhile: its queues went with it
    if STATE_WRITER in q:
        q.remove(STATE_WRITER)
    if not q:
        del core.keys.queues[(ev.service, ev.key)]
        return Decision()
    return Decision(effects=core.drive(q[0], partition=core.key_partition(ev.service, ev.key)))
