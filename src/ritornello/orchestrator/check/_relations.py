"""Invariants ``call``, ``exclusive`` and ``acknowledged``: invocations judged together — a
call entry and its callee, the invocations of one object key, the ids a caller was given
(``ritornello.orchestrator.check`` lists every invariant)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from ritornello.protocol import derive_id
from ritornello.store import FINAL_STATUSES, LIVE_STATUSES, InvocationRecord, Status

from ._invocation import Journal
from ._report import CheckReport

#: Statuses that hold an object key (pending and scheduled ones wait their turn).
ACTIVE = LIVE_STATUSES - {Status.PENDING.value, Status.SCHEDULED.value}


def check_calls(
    rec: InvocationRecord,
    j: Journal,
    records: dict[str, InvocationRecord],
    journals: dict[str, Journal],
    report: CheckReport,
) -> None:
    """Invariant ``call``: call entries and their callees name each other; a finished callee
    delivered its result."""

    def bad(message: str) -> None:
        report.add("call", rec.id, message)

    for index, callee_id in sorted(j.targets.items()):
        kind = j.kinds[index]
        callee = records.get(callee_id)
        if callee_id != derive_id(rec.id, index):
            key = j.keyed.get(index)
            if key is not None and (callee is None or callee.idempotency_key == key):
                continue  # an idempotency key named an invocation that existed (or purged)
            bad(f"entry {index} ({kind}) names {callee_id}, not the derived id")
        if callee is None:
            if kind == "call" and index not in j.completed:
                bad(f"entry {index} calls {callee_id}, which does not exist")
            continue  # a send's callee may have been purged: nothing tells
        back = (rec.id, index) if kind == "call" else (None, None)
        if (callee.caller_id, callee.caller_index) != back:
            bad(
                f"entry {index} ({kind}) names {callee_id}, whose caller is "
                f"{callee.caller_id} entry {callee.caller_index}"
            )
    if rec.caller_id is None or rec.caller_index is None:
        return
    caller = records.get(rec.caller_id)
    caller_j = journals.get(rec.caller_id)
    if caller is None or caller_j is None:
        return  # purged: nothing left to deliver to
    index = rec.caller_index
    if caller_j.targets.get(index) != rec.id or caller_j.kinds[index] != "call":
        bad(f"its caller {rec.caller_id} has no call entry {index} naming it")
    elif (
        rec.status in FINAL_STATUSES
        and caller.status not in FINAL_STATUSES
        and index not in caller_j.completed
    ):
        bad(f"{rec.status}, but its caller {rec.caller_id} never got entry {index} completed")


def check_exclusive(records: dict[str, InvocationRecord], report: CheckReport) -> None:
    """Invariant ``exclusive``: one active exclusive invocation per object key."""
    active: dict[tuple[str, str], list[InvocationRecord]] = defaultdict(list)
    for rec in records.values():
        if (
            rec.key is not None
            and rec.handler_kind in ("exclusive", "workflow")
            and rec.status in ACTIVE
        ):
            active[(rec.service, rec.key)].append(rec)
    for (service, key), recs in sorted(active.items()):
        if len(recs) < 2:
            continue
        recs.sort(key=lambda r: (r.seq, r.id))
        names = ", ".join(f"{r.id} ({r.status})" for r in recs)
        for rec in recs[1:]:
            report.add("exclusive", rec.id, f"{service} {key!r} has {len(recs)} active: {names}")


def check_expected(
    expect_ids: Sequence[str] | None,
    expect_terminal: bool,
    records: dict[str, InvocationRecord],
    report: CheckReport,
) -> None:
    """Invariant ``acknowledged``: acknowledged invocations exist (and are finished)."""
    ids = list(expect_ids) if expect_ids is not None else []
    if expect_ids is None and expect_terminal:
        ids = sorted(records)
    for inv_id in ids:
        rec = records.get(inv_id)
        if rec is None:
            report.add("acknowledged", inv_id, "acknowledged but not in the store (lost or purged)")
        elif expect_terminal and rec.status not in FINAL_STATUSES:
            report.add("acknowledged", inv_id, f"expected finished, but it is {rec.status}")
