"""Invariant ``permit`` (docs/limits.md): the rows of named limits agree with the journals.

* Every permit row belongs to an existing, unfinished invocation, at a ``permit`` entry
  whose step is not journaled yet (or at ``INVOCATION_PERMIT``, the invocation's own permit):
  a row left behind would hold a permit, or a place in the queue, forever.
* A granted row's invocation holds its grant (the completion), and a waiting row's does not.
* An invocation suspended on a permit has a row: else nothing would ever grant it.
* No limit set through the admin API has more permits out than its concurrency (limits
  defined in ritornello.toml or in code are not in the store: not checked here).
"""

from __future__ import annotations

from collections import Counter

from ritornello.protocol._entries import INVOCATION_PERMIT
from ritornello.store import FINAL_STATUSES, InvocationRecord, PermitRecord, Status, Store

from ._invocation import Journal
from ._report import CheckReport


async def check_permits(
    store: Store,
    records: dict[str, InvocationRecord],
    journals: dict[str, Journal],
    report: CheckReport,
) -> None:
    """Invariant ``permit`` over every row and every suspended invocation."""
    rows = await store.list_permits()
    named = {(r.invocation_id, r.index): r for r in rows}
    for row in rows:
        _check_row(row, records.get(row.invocation_id), journals, report)
    for rec in records.values():
        if rec.status != Status.SUSPENDED:
            continue
        j = journals[rec.id]
        for index in rec.waiting:
            kind = j.kinds[index] if 0 <= index < len(j.kinds) else None
            permit = kind == "permit" or index == INVOCATION_PERMIT
            if permit and index not in j.completed and (rec.id, index) not in named:
                report.add("stuck", rec.id, f"waits for a permit at {index} it never asked")
    held = Counter(r.limit for r in rows if r.granted_at is not None)
    for limit in await store.list_limits():
        if limit.concurrency is not None and held[limit.name] > limit.concurrency:
            report.add(
                "permit",
                None,
                f"limit {limit.name!r}: {held[limit.name]} permits out, "
                f"concurrency {limit.concurrency}",
            )


def _check_row(
    row: PermitRecord,
    rec: InvocationRecord | None,
    journals: dict[str, Journal],
    report: CheckReport,
) -> None:
    where = f"permit row {row.limit!r} at {row.index}"
    if rec is None:
        report.add("permit", row.invocation_id, f"{where} of an invocation that does not exist")
        return
    if rec.status in FINAL_STATUSES:
        report.add("permit", rec.id, f"{where} of a {rec.status} invocation")
        return
    j = journals[rec.id]
    if row.index != INVOCATION_PERMIT:
        kind = j.kinds[row.index] if 0 <= row.index < len(j.kinds) else None
        if kind != "permit":
            report.add("permit", rec.id, f"{where}, which is {kind or 'missing'}, not a permit")
            return
        if row.index + 1 < len(j.kinds) and j.kinds[row.index + 1] == "run":
            report.add("permit", rec.id, f"{where}, whose step is journaled: never released")
            return
    granted = row.index in j.completed
    if (row.granted_at is not None) != granted:
        state = "granted" if row.granted_at is not None else "waiting"
        has = "holds" if granted else "lacks"
        report.add("permit", rec.id, f"{where} is {state} but the invocation {has} its grant")
