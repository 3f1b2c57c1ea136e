"""``check_store``: one pass over the store, reading each invocation consistently, then every
rule (the invariants are listed in ``ritornello.orchestrator.check``); with ``recheck_s``, a
second pass that keeps only what recurs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from ritornello.store import InvocationRecord, Store

from ._invocation import Journal, check_journal, check_record
from ._liveness import check_liveness, check_timers
from ._permits import check_permits
from ._relations import check_calls, check_exclusive, check_expected
from ._report import CheckReport
from ._schedules import check_schedules
from ._values import check_state_values, check_values


async def check_store(
    store: Store,
    *,
    now_ms: int | None = None,
    expect_ids: Sequence[str] | None = None,
    expect_terminal: bool = False,
    recheck_s: float = 0.0,
) -> CheckReport:
    """Check every invariant over the (open) ``store``; see ``ritornello.orchestrator.check``.

    ``recheck_s`` > 0: if anything was found, wait that long, check again, and report only
    violations (by kind and invocation) found both times — for a store a live orchestrator is
    changing."""
    report = await _check_once(store, now_ms, expect_ids, expect_terminal)
    if recheck_s <= 0 or report.ok:
        return report
    await asyncio.sleep(recheck_s)
    again = await _check_once(store, now_ms, expect_ids, expect_terminal)
    first = {(v.kind, v.invocation_id) for v in report.violations}
    again.violations = [v for v in again.violations if (v.kind, v.invocation_id) in first]
    return again


async def _check_once(
    store: Store, now_ms: int | None, expect_ids: Sequence[str] | None, expect_terminal: bool
) -> CheckReport:
    now = int(time.time() * 1000) if now_ms is None else now_ms
    report = CheckReport()
    listed = await _list_all(store)
    records: dict[str, InvocationRecord] = {}
    journals: dict[str, Journal] = {}
    for listed_rec in listed:
        read = await _read_consistently(store, listed_rec)
        if read is None:
            continue  # purged since it was listed
        rec, entries, completions = read
        records[rec.id] = rec
        report.entries += len(entries)
        report.completions += len(completions)
        journals[rec.id] = check_journal(rec, entries, completions, report)
        check_values(rec, entries, completions, report)
    # A callee the listing missed (an eventually consistent index) is read directly, so the
    # call rules judge what is there, not what the index shows.
    missing = {t for j in journals.values() for t in j.targets.values() if t not in records}
    for callee_id in sorted(missing):
        found = await store.get_invocation(callee_id)
        read = await _read_consistently(store, found) if found is not None else None
        if read is not None:
            report.unlisted += 1
            report.entries += len(read[1])
            report.completions += len(read[2])
            records[callee_id] = read[0]
            journals[callee_id] = check_journal(read[0], read[1], read[2], report)
            check_values(read[0], read[1], read[2], report)
    report.invocations = len(records)
    timers = await store.list_timers()
    report.timers = len(timers)
    report.overdue_timers = sum(1 for t in timers if t.fire_at < now)
    timer_names = {(t.invocation_id, t.kind, t.index) for t in timers}
    states: dict[tuple[str, str], dict[str, str]] = {}
    for rec in records.values():
        j = journals[rec.id]
        if not check_record(rec, j, store.partitions, report):
            continue
        check_calls(rec, j, records, journals, report)
        await check_liveness(store, rec, j, records, timer_names, states, report)
    await check_state_values(store, records, states, report)
    check_timers(timers, records, journals, report)
    check_exclusive(records, report)
    await check_schedules(store, records, now, report)
    await check_permits(store, records, journals, report)
    check_expected(expect_ids, expect_terminal, records, report)
    return report


# ---------------------------------------------------------------------------------- reading


async def _list_all(store: Store, page_size: int = 1000) -> list[InvocationRecord]:
    """Every invocation (``Store.scan_invocations``: none skipped where two share a seq)."""
    found = [rec async for rec in store.scan_invocations(page=page_size)]
    return sorted(found, key=lambda r: (r.seq, r.id))


async def _read_consistently(
    store: Store, rec: InvocationRecord, tries: int = 5
) -> tuple[InvocationRecord, list[str], list[str]] | None:
    """(record, entries, completions) with the record re-read after the journal until its
    version holds still (entries and the record change in one unit); None if it is gone."""
    entries: list[str] = []
    completions: list[str] = []
    for _ in range(tries):
        entries, completions = await store.get_journal(rec.id)
        fresh = await store.get_invocation(rec.id)
        if fresh is None:
            return None
        if fresh.version == rec.version:
            return rec, entries, completions
        rec = fresh
    entries, completions = await store.get_journal(rec.id)
    return rec, entries, completions
