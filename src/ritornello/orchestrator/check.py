"""An invariant checker over a store: reads everything through the ``Store`` interface (so it
works on memory, SQLite and DynamoDB), writes nothing, and reports what breaks the rules the
engine keeps. Each invariant is one function below and one ``Violation.kind``:

``journal`` (``_check_journal``)
    Entries are exactly indices 0 .. journal_len - 1, each a JSON object with a known
    ``kind``; entry 0 is the input and an output can only be last. Every completion names an
    existing entry of a waiting kind (or ``CANCEL_INDEX``), once, with a value or a failure.
``state`` (``_check_record``)
    The status is one of ``STATUSES``; a terminal invocation has a result (``{"value"}`` or
    ``{"failure"}``) and nothing to wait on; a live one has no result; ``waiting`` is set only
    when suspended (or paused from suspended) and names entries of a waiting kind; ``next_at``
    is set exactly when backing-off or scheduled; the partition is the one its id/key hashes to.
``call`` (``_check_calls``)
    A call entry names its derived callee, which exists (unless purged by retention after it
    delivered: the entry then has its completion) and names the entry back as its caller. A
    terminal callee has delivered its result to its caller, unless the caller is terminal or
    gone.
``liveness`` and ``stuck`` (``_check_liveness``)
    Every unfinished invocation waits on something real: running or pending (driven),
    scheduled with a start timer, backing-off with a retry timer, paused (an operator), or
    suspended on entries each of which is a sleep with a timer, a call whose callee is
    unfinished, an awakeable, or a workflow promise with a registered waiter. A suspended
    invocation holding a completion for an entry it waits on — or a cancellation its handler
    never saw — is ``stuck``: a wake-up was lost and only a recovery would re-drive it.
``timer`` (``_check_timers``)
    Every timer belongs to an existing unfinished invocation of its partition and matches its
    state (sleep: an uncompleted sleep entry; retry: backing-off at ``next_at``; start:
    scheduled at ``next_at``), and every uncompleted sleep of an unfinished invocation has one.
``exclusive`` (``_check_exclusive``)
    At most one unfinished exclusive (or workflow-run) invocation per object key is active
    (running, suspended, backing-off or paused); the others are pending or scheduled.
``schedule`` (``_check_schedule``, ``_check_last_fire``, ``_check_fire_keys``)
    A cron schedule (docs/schedules.md) is well formed: its cron parses in its time zone (the
    scheduler's own ``cron_of``), its overlap is one of ``OVERLAP_POLICIES``, its target names
    a service and a handler, its input is JSON text, its partition is the one its id hashes
    to, its counters are >= 0 and ``checked_until >= created_at`` (``checked_until`` only
    moves forward from the creation). ``last_fire_at``, ``last_invocation_id`` and
    ``fires >= 1`` are set together (each fire sets all three in one compare-and-set); a
    skip or a miss is counted only beside a fire (a skip needs a previous invocation, and
    only with overlap ``skip``); ``created_at < last_fire_at <= checked_until`` and
    ``last_fire_at`` is a fire time of the cron. The last invocation, unless purged, is of
    the schedule's service, handler and key with the idempotency key
    ``schedule:{id}:{last_fire_at}``; no two invocations of one target hold the same
    ``schedule:`` idempotency key (the stores' unique index); and a fire-time invocation the
    scheduler may submit again (the last, or one after ``checked_until``) is the one its
    idempotency key finds (``find_idempotent``), else that fire would create a second.
    Not reported, as the engine
    allows them: an invocation for a fire time after ``checked_until`` (a crash at
    ``after-fire``: the next pass records it), fire-time invocations the counters do not
    count (retention purges; a fire that lost to a resume), and invocations whose
    ``schedule:`` key names another target (the ingress takes any idempotency key).
``acknowledged`` (``_check_expected``)
    Ids the caller was given (``expect_ids``) exist and, with ``expect_terminal``, are
    finished (without ``expect_ids``: every invocation is finished).

The check is exact on a quiescent store. Beside a live orchestrator each invocation is read
consistently (its record is re-read after its journal until its version holds still), but the
cross-invocation rules compare reads made at different moments, and an invocation being woken
still says ``suspended``: pass ``recheck_s`` to read everything again after a pause and keep
only the violations seen both times.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ritornello.protocol import derive_id
from ritornello.protocol._entries import (
    CANCEL_ENTRY,
    CANCEL_INDEX,
    ENTRY_KINDS,
    HANDLER_KINDS,
    WAITING_KINDS,
)
from ritornello.store import (
    FINAL_STATUSES,
    STATUSES,
    InvocationRecord,
    Store,
    TimerRecord,
)

from ._apply import PROMISE_ROW, WAITER_ROW
from ._check_report import KINDS, CheckReport, Violation
from ._check_schedules import check_schedules
from ._partitions import partition_of

__all__ = ["KINDS", "CheckReport", "Violation", "check_store"]

#: Statuses that hold an object key (pending and scheduled ones wait their turn).
ACTIVE = frozenset({"running", "suspended", "backing-off", "paused"})


@dataclass(slots=True)
class _Journal:
    """What the cross-invocation rules need of one journal."""

    kinds: list[str] = field(default_factory=list)  # by index; "" when unreadable
    targets: dict[int, str] = field(default_factory=dict)  # call/send index -> callee id
    names: dict[int, str] = field(default_factory=dict)  # promise entry index -> name
    completed: set[int] = field(default_factory=set)
    cancel_seen: bool = False  # a ctx.cancelled entry: the handler saw the cancellation


async def check_store(
    store: Store,
    *,
    now_ms: int | None = None,
    expect_ids: Sequence[str] | None = None,
    expect_terminal: bool = False,
    recheck_s: float = 0.0,
) -> CheckReport:
    """Check every invariant over the (open) ``store``; see the module docstring.

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
    journals: dict[str, _Journal] = {}
    for listed_rec in listed:
        read = await _read_consistently(store, listed_rec)
        if read is None:
            continue  # purged since it was listed
        rec, entries, completions = read
        records[rec.id] = rec
        report.entries += len(entries)
        report.completions += len(completions)
        journals[rec.id] = _check_journal(rec, entries, completions, report)
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
            journals[callee_id] = _check_journal(read[0], read[1], read[2], report)
    report.invocations = len(records)
    timers = await store.list_timers()
    report.timers = len(timers)
    report.overdue_timers = sum(1 for t in timers if t.fire_at < now)
    timer_names = {(t.invocation_id, t.kind, t.index) for t in timers}
    states: dict[tuple[str, str], dict[str, str]] = {}
    for rec in records.values():
        j = journals[rec.id]
        if not _check_record(rec, j, store.partitions, report):
            continue
        _check_calls(rec, j, records, journals, report)
        await _check_liveness(store, rec, j, records, timer_names, states, report)
    _check_timers(timers, records, journals, report)
    _check_exclusive(records, report)
    await check_schedules(store, records, now, report)
    _check_expected(expect_ids, expect_terminal, records, report)
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


def _parse(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# ------------------------------------------------------------------------------- invariants


def _check_journal(
    rec: InvocationRecord, entries: list[str], completions: list[str], report: CheckReport
) -> _Journal:
    """Invariant ``journal``: density, well-formed entries and completions."""
    j = _Journal()

    def bad(message: str) -> None:
        report.add("journal", rec.id, message)

    if len(entries) != rec.journal_len:
        bad(f"journal_len is {rec.journal_len} but the journal holds {len(entries)} entries")
    for index, text in enumerate(entries):
        entry = _parse(text)
        kind = entry.get("kind") if entry is not None else None
        if entry is None or not isinstance(kind, str):
            bad(f"entry {index} is not a JSON object with a kind: {text[:80]!r}")
            j.kinds.append("")
            continue
        j.kinds.append(kind)
        if kind not in ENTRY_KINDS:
            bad(f"entry {index} has an unknown kind {kind!r}")
        if (index == 0) != (kind == "input"):
            bad(f"entry {index} is {kind!r}: the input is entry 0 and only entry 0")
        if kind == "output" and index != len(entries) - 1:
            bad(f"entry {index} is an output but not the last entry")
        if kind in ("call", "send"):
            if isinstance(entry.get("id"), str):
                j.targets[index] = entry["id"]
            else:
                bad(f"entry {index} ({kind}) names no callee id")
        if kind.startswith("promise_") and isinstance(entry.get("name"), str):
            j.names[index] = entry["name"]
        if kind == "run" and entry.get("name") == CANCEL_ENTRY:
            j.cancel_seen = True
    for text in completions:
        completion = _parse(text)
        at = completion.get("index") if completion is not None else None
        if completion is None or not isinstance(at, int) or isinstance(at, bool):
            bad(f"completion is not a JSON object with an integer index: {text[:80]!r}")
            continue
        index = at
        if index in j.completed:
            bad(f"entry {index} is completed twice")
        j.completed.add(index)
        if len(set(completion) & {"value", "failure"}) != 1:
            bad(f"completion of entry {index} holds neither exactly a value nor a failure")
        if index == CANCEL_INDEX:
            continue
        if not 0 <= index < len(entries):
            bad(f"completion of entry {index}, which does not exist")
        elif j.kinds[index] not in WAITING_KINDS:
            bad(f"completion of entry {index}, a {j.kinds[index]!r} entry that waits for none")
    return j


def _check_record(rec: InvocationRecord, j: _Journal, partitions: int, report: CheckReport) -> bool:
    """Invariant ``state``: the record's fields fit its status. False if the status is
    unknown (the other rules would only repeat it)."""

    def bad(message: str) -> None:
        report.add("state", rec.id, message)

    if rec.status not in STATUSES:
        bad(f"unknown status {rec.status!r}")
        return False
    if rec.handler_kind not in HANDLER_KINDS:
        bad(f"unknown handler kind {rec.handler_kind!r}")
    if rec.journal_len < 1 or rec.attempt < 1:
        bad(f"journal_len {rec.journal_len} and attempt {rec.attempt} must be >= 1")
    if (rec.caller_id is None) != (rec.caller_index is None):
        bad("caller_id and caller_index must be set together")
    terminal = rec.status in FINAL_STATUSES
    if terminal:
        result = _parse(rec.result) if rec.result is not None else None
        if result is None or set(result) not in ({"value"}, {"failure"}):
            bad(f"{rec.status} but its result is not {{value}} or {{failure}}: {rec.result!r}")
        elif "failure" in result:
            failure = result["failure"]
            if not (
                isinstance(failure, dict)
                and _is_int(failure.get("code"))
                and isinstance(failure.get("message"), str)
            ):
                bad(f"its failure has no integer code and message: {rec.result!r}")
    elif rec.result is not None:
        bad(f"{rec.status} but it has a result")
    if "output" in j.kinds and rec.status != "completed":
        bad(f"its journal ends with an output but it is {rec.status}")
    if rec.waiting and rec.status not in ("suspended", "paused"):
        bad(f"{rec.status} but waiting on {list(rec.waiting)}")
    if rec.status == "suspended" and not rec.waiting:
        bad("suspended on nothing")
    for index in rec.waiting:
        kind = j.kinds[index] if 0 <= index < len(j.kinds) else None
        if kind not in WAITING_KINDS:
            bad(f"waits on entry {index}, which is {kind or 'missing'}, not a waiting kind")
    timed = rec.status in ("backing-off", "scheduled")
    if timed != (rec.next_at is not None):
        bad(f"{rec.status} with next_at {rec.next_at}")
    expected = partition_of(rec.service, rec.key, rec.id, partitions)
    if rec.partition != expected:
        bad(f"in partition {rec.partition}, but it hashes to {expected} of {partitions}")
    return True


def _check_calls(
    rec: InvocationRecord,
    j: _Journal,
    records: dict[str, InvocationRecord],
    journals: dict[str, _Journal],
    report: CheckReport,
) -> None:
    """Invariant ``call``: call entries and their callees name each other; a finished callee
    delivered its result."""

    def bad(message: str) -> None:
        report.add("call", rec.id, message)

    for index, callee_id in sorted(j.targets.items()):
        kind = j.kinds[index]
        if callee_id != derive_id(rec.id, index):
            bad(f"entry {index} ({kind}) names {callee_id}, not the derived id")
        callee = records.get(callee_id)
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


async def _check_liveness(
    store: Store,
    rec: InvocationRecord,
    j: _Journal,
    records: dict[str, InvocationRecord],
    timer_names: set[tuple[str, str, int]],
    states: dict[tuple[str, str], dict[str, str]],
    report: CheckReport,
) -> None:
    """Invariants ``liveness`` and ``stuck``: an unfinished invocation waits on something
    that will move it."""

    def bad(message: str) -> None:
        report.add("liveness", rec.id, message)

    if rec.status == "scheduled" and (rec.id, "start", 0) not in timer_names:
        bad("scheduled without a start timer")
    if rec.status == "backing-off" and (rec.id, "retry", 0) not in timer_names:
        bad("backing-off without a retry timer")
    if rec.status != "suspended":
        return  # running/pending: driven; paused: an operator's; terminal: done
    if CANCEL_INDEX in j.completed and not j.cancel_seen:
        report.add("stuck", rec.id, "suspended with a cancellation it was never woken for")
    for index in rec.waiting:
        if index in j.completed:
            report.add("stuck", rec.id, f"suspended on entry {index}, which is completed")
            continue
        kind = j.kinds[index] if 0 <= index < len(j.kinds) else ""
        if kind == "sleep" and (rec.id, "sleep", index) not in timer_names:
            bad(f"suspended on sleep entry {index}, which has no timer")
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


def _check_timers(
    timers: list[TimerRecord],
    records: dict[str, InvocationRecord],
    journals: dict[str, _Journal],
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
        if t.kind == "sleep":
            seen.add((rec.id, t.index))
            kind = j.kinds[t.index] if 0 <= t.index < len(j.kinds) else "missing"
            if kind != "sleep":
                report.add("timer", rec.id, f"{what} for an entry that is {kind}, not a sleep")
            elif t.index in j.completed:
                report.add("timer", rec.id, f"{what} for a sleep that is already completed")
        elif t.kind in ("retry", "start"):
            status = "backing-off" if t.kind == "retry" else "scheduled"
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
                and not (rec.status == "suspended" and index in rec.waiting)  # liveness's
            ):
                report.add("timer", rec.id, f"sleep entry {index} has no timer and no completion")


def _check_exclusive(records: dict[str, InvocationRecord], report: CheckReport) -> None:
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


def _check_expected(
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
