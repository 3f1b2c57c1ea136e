"""Invariants ``liveness``, ``stuck`` and ``timer``: every unfinished invocation waits on
something that will move it, and timers match the state they belong to, both ways
(``ritornello.orchestrator.check`` lists every invariant)."""

from __future__ import annotations

from ritornello.orchestrator.core import PROMISE_ROW, WAITER_ROW
from ritornello.protocol._entries import CANCEL_INDEX
from ritornello.store import FINAL_STATUSES, STATUSES, InvocationRecord, Status, Store, TimerRecord

from ._invocation import Journal
from ._report import CheckReport


async def check_liveness(
    store: Store,
    rec: InvocationRecord,
    j: Journal,
    records: dict[str, InvocationRecord],
    timer_names: set[tuple[str, str, int]],
    states: dict[tuple[str, str], dict[str, str]],
    report: CheckReport,
) -> None:
    """Invariants ``liveness`` and ``stuck``: an unfinished invocation waits on something
    that will move it."""

    def bad(message: str) -> None:
        report.add("liveness", rec.id, message)

    if rec.status == Status.SCHEDULED and (rec.id, "start", 0) not in timer_names:
        bad("scheduled without a start timer")
    if rec.status == Status.BACKING_OFF and (rec.id, "retry", 0) not in timer_names:
        bad("backing-off without a retry timer")
    if rec.status != Status.SUSPENDED:
        return  # running/pending: driven; paused: an operator's; terminal: done
    if CANCEL_INDEX in j.completed and not j.cancel_seen:
        report.add("stuck", rec.id, "suspended with a cancellation it was never woken for")
    for index in rec.waiting:
        if index in j.completed:
            report.add("stuck", rec.id, f"suspended on entry {index}, which is completed")
            continue
        kind = j.kinds[index] if 0 <= index < len(j.kinds) else ""
        if kind in ("sleep", "attach") and (rec.id, kind, index) not in timer_names:
            bad(f"suspended on {kind} entry {index}, which has no timer")
        elif kind == "call" and (rec.id, "attach", index) in timer_names:
            continue  # an idempotent call to an invocation that existed: its timer reads it
        elif kind == "call":
            callee = records.get(j.targets.get(index, ""))
            if callee is None:
                bad(f"suspended on call entry {index}, whose callee does not exist")
            elif callee.status in FINAL_STATUSES:
                bad(f"suspended on call entry {index}, whose callee {callee.id} is {callee.status}")
        elif kind == "promise_complete":
            bad(f"suspended on promise_complete entry {index} (completed in its own unit)")
        elif kind == "promise_get" and rec.key is not None:
            name = j.names.get(index, "")
            where = (rec.service, rec.key)
            if where not in states:
                states[where] = await store.get_state(*where)
            rows = states[where]
            if PROMISE_ROW + name in rows:
                bad(f"suspended on promise {name!r} (entry {index}), resolved without it")
            elif f"{WAITER_ROW}{name}:{rec.id}:{index}" not in rows:
                bad(f"suspended on promise {name!r} (entry {index}) with no waiter registered")


def check_timers(
    timers: list[TimerRecord],
    records: dict[str, InvocationRecord],
    journals: dict[str, Journal],
    report: CheckReport,
) -> None:
    """Invariant ``timer``: timers and the state they belong to match, both ways."""
    seen: set[tuple[str, int]] = set()
    for t in timers:
        rec = records.get(t.invocation_id)
        what = f"{t.kind} timer (entry {t.index}, fire_at {t.fire_at})"
        if rec is None:
            report.add("timer", t.invocation_id, f"{what} of an invocation that does not exist")
            continue
        if rec.status in FINAL_STATUSES:
            report.add("timer", rec.id, f"{what} of a {rec.status} invocation")
            continue
        if t.partition != rec.partition:
            report.add("timer", rec.id, f"{what} in partition {t.partition}, not {rec.partition}")
        j = journals[rec.id]
        if t.kind in ("sleep", "attach"):
            seen.add((rec.id, t.index))
            kind = j.kinds[t.index] if 0 <= t.index < len(j.kinds) else "missing"
            expected = ("attach", "call") if t.kind == "attach" else (t.kind,)
            if kind not in expected:
                report.add("timer", rec.id, f"{what} for an entry that is {kind}, not {t.kind}")
            elif t.index in j.completed:
                report.add("timer", rec.id, f"{what} for an entry that is already completed")
        elif t.kind in ("retry", "start"):
            status = Status.BACKING_OFF if t.kind == "retry" else Status.SCHEDULED
            if rec.status != status:
                report.add("timer", rec.id, f"{what}, but the invocation is {rec.status}")
            elif rec.next_at != t.fire_at:
                report.add("timer", rec.id, f"{what}, but next_at is {rec.next_at}")
        else:
            report.add("timer", rec.id, f"{what}: unknown timer kind")
    for rec in records.values():
        if rec.status in FINAL_STATUSES or rec.status not in STATUSES:
            continue
        j = journals[rec.id]
        for index, kind in enumerate(j.kinds):
            if (
                kind == "sleep"
                and index not in j.completed
                and (rec.id, index) not in seen
                and not (rec.status == Status.SUSPENDED and index in rec.waiting)  # liveness's
            ):
                report.add("timer", rec.id, f"sleep entry {index} has no timer and no completion")
