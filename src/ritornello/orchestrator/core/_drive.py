"""A driver's conversation with the core: load, read, invoke, settle the answer, go on.

One driver per invocation (a runtime task) performs the actions the core names and reports
what came of them::

    DriverStarted ─▶ Load ─▶ Loaded ─▶ ReadState ─▶ StateRead ─▶ ReadCompletions ─▶ ...
      ─▶ Invoke ─▶ Answered | AttemptFailed ─▶ (Lookup ─▶ LookedUp) ─▶ unit
      ─▶ Committed ─▶ Invoke again (a checkpoint, or a completion arrived meanwhile)
                    │ or nothing more (suspended, backing off, finished) ─▶ DriverEnded

Each read is asked for only when needed: an invocation prepared by the ingress or a recovery
skips the load, an object key's state is read once per driver, a workflow's rows before every
attempt (its shared handlers write promises beside it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ritornello.protocol import InvokeResponse, derive_id, parse_awakeable_id
from ritornello.protocol._entries import INVOCATION_PERMIT, signal_index
from ritornello.store.records import (
    FINAL_STATUSES,
    CommitUnit,
    InvocationRecord,
    InvocationWrite,
    Status,
    TimerRecord,
    with_changes,
)

from .._json import loads
from ..errors import OrchestratorError
from ._answer import AnswerError, Outcome, apply_answer, failed_attempt
from ._effects import (
    LOAD,
    READ_COMPLETIONS,
    Arm,
    Decision,
    Disarm,
    Effect,
    Invoke,
    Lookup,
    ReadState,
    Redrive,
)
from ._events import (
    Answered,
    AttemptFailed,
    CompletionsRead,
    DriverEnded,
    DriverStarted,
    Loaded,
    LookedUp,
    RedriveDue,
    StateRead,
)
from ._grants import eager as eager_grant
from ._invocation import Invocation
from ._journal import CANCEL_INDEX, SLEPT_RESULT, completion_text, split_state
from ._operator import awakeable_target
from ._permits import committed as permits_committed
from ._permits import instance_of
from ._permits import settle as settle_permits
from ._registry import Registry
from ._state import CoreState, Driving, input_of

#: What an answer that needed no lookup found.
_NOTHING_FOUND = LookedUp("", {})

#: Seconds before a driver that failed is started again (a store failure, an error), and
#: before one whose commit was fenced while its partition is still held here (a lapse).
REDRIVE_AFTER_FAILURE_S = 1.0
REDRIVE_AFTER_FENCE_S = 0.05


def started(core: CoreState, ev: DriverStarted, now: int) -> Decision:
    d = core.driving[ev.invocation_id]
    if d.invocation is None:
        return Decision(next=LOAD)
    return _before_attempt(core, d.invocation, now)


def loaded(core: CoreState, ev: Loaded, now: int) -> Decision:
    d = core.driving[ev.invocation_id]
    rec = ev.record
    if rec is None or rec.status in FINAL_STATUSES:
        if d.timer is not None:  # a retry or sleep timer outlived its invocation (driven to
            # its end by another path, or killed): it still goes from the store
            unit = CommitUnit(timers_remove=[d.timer])
            return core.emit(unit, d.timer.partition, _TimerRemoval(ev.invocation_id), now)
        return Decision()
    inv = Invocation.from_journal(rec, ev.entries, ev.completions)
    d.partition = rec.partition
    timer, d.timer = d.timer, None
    if timer is not None:
        inv.timer_removals.append(timer)
        if timer.kind == "sleep" and timer.index not in inv.completions:
            # a sleep is complete once its time has come: held here, committed with the
            # attempt's answer (the timer stays in the store until then)
            inv.completions[timer.index] = completion_text(timer.index, SLEPT_RESULT)
            inv.deferred.append(timer)
    if d.reload:
        d.reload = False
        inv.reload = True
    d.invocation = inv
    return _before_attempt(core, inv, now)


def state_read(core: CoreState, ev: StateRead, now: int) -> Decision:
    inv = _invocation(core, ev.invocation_id)
    if _workflow(core, inv):
        inv.state, inv.promises = split_state(ev.rows)
        inv.rows_read = True
    else:
        inv.state = ev.rows
    return _before_attempt(core, inv, now)


def completions_read(core: CoreState, ev: CompletionsRead, now: int) -> Decision:
    inv = _invocation(core, ev.invocation_id)
    inv.reload = False
    for text in ev.completions:
        inv.completions.setdefault(loads(text)["index"], text)
    return _before_attempt(core, inv, now)


def _before_attempt(
    core: CoreState, inv: Invocation, now: int, effects: list[Effect] | None = None
) -> Decision:
    """What the driver does before its next attempt: read what is missing, wait for the
    invocation's own permit if its handler is limited, then invoke. ``effects``: those of
    the commit the driver goes on from (a unit to wait for the permit performs them once
    it is committed: a decision never carries both)."""
    rec = inv.rec
    if rec.status in FINAL_STATUSES or rec.partition in core.draining:
        return Decision()  # finished, or its partition is being handed over: no attempt
    workflow = _workflow(core, inv)
    if workflow and not inv.rows_read:
        return Decision(next=ReadState(rec.service, rec.key or ""))
    if not workflow and rec.key is not None and inv.state is None:
        return Decision(next=ReadState(rec.service, rec.key))
    if inv.reload:
        return Decision(next=READ_COMPLETIONS)
    limit = core.registry.limit_of(rec.deployment_id, rec.service, rec.handler)
    if limit is not None:
        if INVOCATION_PERMIT not in inv.permits:
            instance = instance_of(core.limits.specs, limit, inv.entries[0], rec.key)
            inv.permits[INVOCATION_PERMIT] = instance
        if INVOCATION_PERMIT not in inv.completions:
            return _wait_for_permit(core, inv, now, effects or [])
    inv.cancel_sent = CANCEL_INDEX in inv.completions
    d = core.driving[rec.id]
    if d.invoke is None:  # one per driver: it names the invocation, which changes in place
        d.invoke = Invoke(inv, stream=not workflow)
    return Decision(next=d.invoke)


def _wait_for_permit(core: CoreState, inv: Invocation, now: int, effects: list[Effect]) -> Decision:
    """The invocation's handler is limited and it holds no permit: it suspends on its own
    permit (``INVOCATION_PERMIT``), asked in the same unit (``_permits.settle``). Already
    suspended on it (woken by something else, a cancellation): it stays so, no unit."""
    rec = inv.rec
    if rec.status == Status.SUSPENDED and rec.waiting == (INVOCATION_PERMIT,):
        core.suspended[rec.id] = (rec.waiting, rec.partition)
        return Decision(effects=effects)
    waiting = with_changes(
        rec,
        status=Status.SUSPENDED.value,
        waiting=(INVOCATION_PERMIT,),
        next_at=None,
        modified_at=now,
        version=rec.version + 1,
    )
    unit = CommitUnit(
        invocations=[InvocationWrite(waiting, rec.version)],
        timers_remove=list(inv.timer_removals),
    )
    return _commit_outcome(core, inv, Outcome(unit=unit, record=waiting), now, effects)


#: Entry kinds whose unit depends on something only a read can tell.
_LOOKED_UP = frozenset({"complete_awakeable", "call", "send", "signal", "attach", "get_output"})


def answered(core: CoreState, ev: Answered, now: int) -> Decision:
    """An answer: settle it at once, or first look up what its unit depends on."""
    inv = _invocation(core, ev.invocation_id)
    workflow = _workflow(core, inv)
    inv.rows_read = False  # read again before the next attempt
    entries = ev.answer.entries
    kinds = {entry.get("kind") for entry in entries}
    if not workflow and kinds.isdisjoint(_LOOKED_UP):  # the common case: nothing to read
        return _settle(core, inv, now, ev.answer, _NOTHING_FOUND, kinds)
    foreign: list[str] = []
    calls: list[tuple[str, str, str]] = []
    keyed: list[tuple[str, str, str | None, str]] = []
    for entry in entries:
        kind = entry.get("kind")
        if kind == "complete_awakeable":
            aid = str(entry.get("id"))
            target = parse_awakeable_id(aid)
            if target is not None and target[0] != inv.rec.id and aid not in foreign:
                foreign.append(aid)
        elif kind in ("signal", "attach", "get_output"):  # by the target's id (aid_invocation)
            target_id = str(entry.get("id"))
            if target_id != inv.rec.id and target_id not in foreign:
                foreign.append(target_id)
        elif kind in ("call", "send"):
            service, _, handler = str(entry.get("name")).partition("/")
            idem, key = entry.get("idempotency_key"), entry.get("key")
            if isinstance(idem, str):
                keyed.append((service, handler, key if isinstance(key, str) else None, idem))
            if isinstance(key, str):
                found = core.registry.resolve(service, handler)
                if found is not None and found.handler.kind == "workflow":
                    calls.append((service, handler, key))
    if foreign or calls or workflow or keyed:
        core.driving[ev.invocation_id].answer = ev.answer
        rows = (inv.rec.service, inv.rec.key or "") if workflow else None
        return Decision(next=Lookup(tuple(foreign), tuple(calls), rows, tuple(keyed)))
    return _settle(core, inv, now, ev.answer, _NOTHING_FOUND, kinds)


def looked_up(core: CoreState, ev: LookedUp, now: int) -> Decision:
    d = core.driving[ev.invocation_id]
    answer, d.answer = d.answer, None
    assert answer is not None, "looked up twice"
    kinds = {entry.get("kind") for entry in answer.entries}
    return _settle(core, _invocation(core, ev.invocation_id), now, answer, ev, kinds)


def attempt_failed(core: CoreState, ev: AttemptFailed, now: int) -> Decision:
    inv = _invocation(core, ev.invocation_id)
    inv.rows_read = False
    outcome = failed_attempt(
        record=inv.rec,
        message=ev.message,
        now_ms=now,
        retry=core.policy(inv.rec),
        extra_timer_removals=inv.timer_removals,
        throttled=ev.throttled,
    )
    return _commit_outcome(core, inv, outcome, now)


def _settle(
    core: CoreState,
    inv: Invocation,
    now: int,
    answer: InvokeResponse,
    found: LookedUp,
    kinds: set[Any],
) -> Decision:
    """Turn the answer into one commit unit (a protocol-breaking answer: a failed attempt)."""
    rec = inv.rec
    admitted: list[InvocationRecord] = []

    def admit(callee: InvocationRecord) -> str:
        status = core.admit(callee)
        admitted.append(callee)
        return status

    try:
        outcome = apply_answer(
            record=rec,
            answer=answer,
            journal_len=len(inv.entries),
            waitable=inv.waitable,
            service_kind=core.registry.service_kind(rec.service),
            registry=core.registry,
            now_ms=now,
            next_seq=lambda: core.next_seq(now),
            admit=admit,
            # read by an error answer only: not looked up for every answer
            retry=core.policy(rec) if answer.status == "error" else core.retry,
            extra_timer_removals=inv.timer_removals,
            awakeables=(
                _awakeables(inv, answer.entries, found, core.registry)
                if "complete_awakeable" in kinds
                else None
            ),
            signals=_signals(inv, answer.entries, found, core.registry)
            if "signal" in kinds
            else None,
            outputs=_outputs(answer.entries, found) if kinds & _ATTACHES else None,
            workflow_rows=found.rows,
            started_workflows=set(found.started) if found.started else None,
            existing=dict(found.existing) if found.existing else None,
            partition_of=core.partition_of,
            retention_ms=core.retention_for(rec) if answer.status == "done" else None,
            instance_of=lambda limit: instance_of(
                core.limits.specs, limit, inv.entries[0], inv.rec.key
            ),
        )
    except AnswerError as exc:
        for callee in admitted:  # admitted to a key's queue, now never created
            core.keys.remove(callee)
        outcome = failed_attempt(
            record=rec,
            message=f"protocol: {exc}",
            now_ms=now,
            retry=core.policy(rec),
            extra_timer_removals=inv.timer_removals,
        )
    return _commit_outcome(core, inv, outcome, now)


def _commit_outcome(
    core: CoreState,
    inv: Invocation,
    outcome: Outcome,
    now: int,
    before: list[Effect] | None = None,
) -> Decision:
    rec = inv.rec
    if inv.deferred:  # sleeps completed in memory when their timers fired: now durable
        outcome.unit.completions.extend(
            (rec.id, t.index, inv.completions[t.index]) for t in inv.deferred
        )
    if outcome.record.status in FINAL_STATUSES:
        _drop_open_sleeps(inv, outcome)
    settle_permits(
        inv,
        outcome,
        core.partitions,
        lambda: core.next_seq(now),
        lambda row: eager_grant(core, row, now),
    )
    # Callees queued behind their key: were the key freed while this commit is in flight,
    # the queue must not start them before they exist (a driver would read nothing and
    # stop); ``_AnswerCommit.committed`` starts them once they do.
    if outcome.created:
        core.creating.update(callee.id for callee in outcome.created)
    pending = _AnswerCommit(rec.id, outcome, before or [])
    return core.emit(outcome.unit, rec.partition, pending, now)


def _awakeables(
    inv: Invocation, entries: list[Any], found: LookedUp, registry: Registry
) -> dict[str, tuple[str, int]]:
    """The awakeables an answer completes that really exist and are still open (an id that
    is forged, unknown or already completed completes nothing: first writer wins)."""
    result: dict[str, tuple[str, int]] = {}
    for n, entry in enumerate(entries):
        if entry.get("kind") != "complete_awakeable":
            continue
        aid = str(entry.get("id"))
        target = parse_awakeable_id(aid)
        if target is None or aid in result:
            continue
        if target[0] == inv.rec.id:  # its own awakeable: this journal or this answer
            i = target[1]
            if i < 0:  # a Restate awakeable (a signal): open unless completed
                if registry.signals(inv.rec.deployment_id) and i not in inv.completions:
                    result[aid] = target
                continue
            own = [loads(e) for e in inv.entries] + list(entries[:n])
            if i < len(own) and own[i].get("id") == aid and i not in inv.completions:
                result[aid] = target
            continue
        read = found.awakeables.get(aid)
        if read is None:
            continue
        try:
            result[aid] = awakeable_target(aid, *read, registry)
        except OrchestratorError:
            continue  # forged, unknown, or completed already: completes nothing
    return result


_ATTACHES = frozenset({"attach", "get_output"})


def _outputs(entries: list[Any], found: LookedUp) -> dict[int, str]:
    """The results of the finished invocations the answer's ``attach``/``get_output``
    entries name, by the entry's position (an unknown or unfinished target: absent)."""
    result: dict[int, str] = {}
    for n, entry in enumerate(entries):
        if entry.get("kind") in _ATTACHES:
            read = found.awakeables.get(str(entry.get("id")))
            rec = read[0] if read is not None else None
            if rec is not None and rec.status in FINAL_STATUSES and rec.result is not None:
                result[n] = rec.result
    return result


def _signals(
    inv: Invocation, entries: list[Any], found: LookedUp, registry: Registry
) -> dict[int, tuple[str, int]]:
    """The signals an answer sends that reach an open target: entry position -> (target,
    completion index). Cancel (-1) reaches any started or waiting invocation; awakeable and
    named signals only one of a Restate endpoint. Unknown, finished or already signalled
    targets get nothing (first writer wins, as for awakeables)."""
    result: dict[int, tuple[str, int]] = {}
    sent: set[tuple[str, int]] = set()
    created: dict[str, str] = {}  # callees this answer creates: id -> their deployment
    for n, entry in enumerate(entries):
        kind = entry.get("kind")
        if kind in ("call", "send"):
            service, _, handler = str(entry.get("name")).partition("/")
            target = registry.resolve(service, handler)
            created[str(entry.get("id"))] = target.deployment_id if target else ""
        if kind != "signal":
            continue
        index = signal_index(entry)
        target_id = str(entry.get("id"))
        if index is None or (target_id, index) in sent:
            continue
        if target_id in created:  # created in this unit: open, nothing delivered yet
            deployment = created[target_id]
        else:
            if target_id == inv.rec.id:
                rec, done = inv.rec, set(inv.completions)
            else:
                read = found.awakeables.get(target_id)
                if read is None or read[0] is None:
                    continue
                rec, done = read[0], {loads(c)["index"] for c in read[2]}
            if rec.status in FINAL_STATUSES or index in done:
                continue
            deployment = rec.deployment_id
        if index != CANCEL_INDEX and not registry.signals(deployment):
            continue
        result[n] = (target_id, index)
        sent.add((target_id, index))
    return result


def _drop_open_sleeps(inv: Invocation, outcome: Outcome) -> None:
    """An invocation that finishes while a sleep (or an attach) is still pending (it lost a
    ``select`` to an awakeable, say) takes that entry's timer with it, in the same unit; one
    its last answer armed is simply not armed (a remove and an add of one timer in one unit
    would leave it to the store's order)."""
    if not inv.waitable and not outcome.waitable:
        return  # nothing it ever waited on (most finished invocations)
    rec = inv.rec
    entries = inv.entries + outcome.new_entries
    done = set(inv.completions) | {i for c, i, _ in outcome.unit.completions if c == rec.id}
    unit = outcome.unit
    for index in sorted(inv.waitable.union(outcome.waitable)):
        entry = loads(entries[index]) if index not in done else {}
        kind = entry.get("kind")
        if kind == "call" and entry.get("id") != derive_id(rec.id, index):
            kind = "attach"  # a call to an invocation that existed: awaited by a timer
        if kind not in ("sleep", "attach"):  # the entries that wait on a timer of their own
            continue
        added = [
            t
            for t in unit.timers_add
            if (t.invocation_id, t.kind, t.index) == (rec.id, kind, index)
        ]
        if added:  # armed by this very answer: not armed at all
            unit.timers_add[:] = [t for t in unit.timers_add if t not in added]
        else:
            unit.timers_remove.append(TimerRecord(0, rec.id, kind, index, rec.partition))


@dataclass(slots=True)
class _AnswerCommit:
    """An attempt's unit in flight."""

    invocation_id: str
    outcome: Outcome
    #: effects of the commit before this one, performed with this one's (``_go_on``)
    before: list[Effect]

    def committed(self, core: CoreState, now: int) -> Decision:
        """Apply the committed outcome to memory and perform what it justifies; the driver
        goes on at once after a checkpoint, or when what it suspended on arrived meanwhile."""
        outcome = self.outcome
        if outcome.created:
            core.creating.difference_update(callee.id for callee in outcome.created)
        inv = _invocation(core, self.invocation_id)
        inv.timer_removals = []
        inv.deferred = []
        rec = outcome.record
        inv.rec = rec
        inv.entries.extend(outcome.new_entries)
        inv.waitable.update(outcome.waitable)
        permits_committed(inv, outcome)
        if inv.state is not None:
            for name, value in outcome.state:
                if name is None:
                    inv.state.clear()
                elif value is None:
                    inv.state.pop(name, None)
                else:
                    inv.state[name] = value
        unit = outcome.unit
        effects: list[Effect] = [*self.before, *(Disarm(t) for t in unit.timers_remove)]
        effects.extend(Arm(t) for t in unit.timers_add)
        for cid, index, text in unit.completions:
            if cid == rec.id:
                inv.completions[index] = text
        for callee in outcome.created:
            if callee.status == Status.RUNNING:
                created = Invocation.created(callee, input_of(unit, callee.id))
                effects.extend(core.drive(callee.id, created))
            elif callee.status == Status.PENDING and core.may_run(callee):
                # its key was freed meanwhile
                effects.extend(core.drive(callee.id, partition=callee.partition))
        for cid, index, text in unit.completions:
            if cid != rec.id:  # a caller's call entry, or another invocation's awakeable
                effects.extend(core.deliver(cid, index, text))
        if rec.status in FINAL_STATUSES:
            effects.extend(core.finish(rec))
            return Decision(effects=effects)
        if rec.status == Status.RUNNING:  # a checkpoint: the next attempt at once
            return _go_on(core, inv, effects, now)
        if rec.status == Status.SUSPENDED:
            if inv.reload or any(i in inv.completions for i in rec.waiting):
                return _go_on(core, inv, effects, now)
            if CANCEL_INDEX in inv.completions and not inv.cancel_sent:
                return _go_on(core, inv, effects, now)  # cancelled while the attempt was out
            core.suspended[rec.id] = (rec.waiting, rec.partition)
        # backing-off: the retry timer drives it again; paused: an operator resumes it
        return Decision(effects=effects)

    def failed(self, core: CoreState, reason: str, now: int) -> Decision:
        """Nothing of the attempt is known to be committed; the driver ends and is driven
        again. Callees it admitted leave their queues — unless the commit was only cut off
        (cancelled), when it may still land."""
        created = self.outcome.created
        core.creating.difference_update(callee.id for callee in created)
        effects: list[Effect] = list(self.before)
        if reason != "cancelled":
            for callee in created:
                effects.extend(core.unqueue(callee))
        return Decision(effects=effects)


def _go_on(core: CoreState, inv: Invocation, effects: list[Effect], now: int) -> Decision:
    decision = _before_attempt(core, inv, now, effects)
    if decision.unit is None:
        decision.effects = effects
    return decision


@dataclass(slots=True)
class _TimerRemoval:
    """The removal of a timer that outlived its invocation, by the driver it woke."""

    invocation_id: str

    def committed(self, core: CoreState, now: int) -> Decision:
        d = core.driving.get(self.invocation_id)
        if d is not None:
            d.timer = None  # removed: nothing to arm again
        return Decision()

    def failed(self, core: CoreState, reason: str, now: int) -> Decision:
        return Decision()


def ended(core: CoreState, ev: DriverEnded, now: int) -> Decision:
    """The driver stopped: sleep timers whose removal no unit carried are armed again (they
    are due: they fire again at once and complete the sleep by a commit of their own), and
    a driver that failed is driven again later."""
    d = core.driving.pop(ev.invocation_id, None)
    if d is None:
        return Decision()
    inv = d.invocation
    left = [t for t in inv.timer_removals if t.kind == "sleep"] if inv is not None else []
    if d.timer is not None and d.timer.kind == "sleep":
        left.append(d.timer)
    effects = core.rearm(left)
    if not core.closing:
        if ev.cause == "fenced":
            if inv is not None and inv.rec.partition in core.ready:
                # still ours (a lapse): nothing of the attempt was committed; drive it again
                effects.append(Redrive(ev.invocation_id, REDRIVE_AFTER_FENCE_S))
        elif ev.cause in ("store", "error"):
            effects.append(Redrive(ev.invocation_id, REDRIVE_AFTER_FAILURE_S))
    return Decision(effects=effects)


def redrive_due(core: CoreState, ev: RedriveDue, now: int) -> Decision:
    return Decision(effects=core.drive(ev.invocation_id))


def _invocation(core: CoreState, invocation_id: str) -> Invocation:
    d: Driving = core.driving[invocation_id]
    assert d.invocation is not None, f"{invocation_id} is not loaded"
    return d.invocation


def _workflow(core: CoreState, inv: Invocation) -> bool:
    """Whether ``inv`` is a workflow's (found once per driver)."""
    d = core.driving[inv.rec.id]
    if d.workflow is None:
        d.workflow = (
            inv.rec.key is not None and core.registry.service_kind(inv.rec.service) == "workflow"
        )
    return d.workflow
