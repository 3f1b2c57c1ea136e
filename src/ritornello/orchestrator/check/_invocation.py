"""Invariants ``journal`` and ``state``: one invocation's journal and record, each on its own
(``ritornello.orchestrator.check`` lists every invariant). ``check_journal`` also gathers the
``Journal`` summary the rules across invocations read."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ritornello.orchestrator.core import partition_of
from ritornello.protocol._entries import (
    CANCEL_ENTRY,
    ENTRY_KINDS,
    HANDLER_KINDS,
    INVOCATION_PERMIT,
    WAITING_KINDS,
    is_signal,
)
from ritornello.store import FINAL_STATUSES, STATUSES, InvocationRecord, Status

from ._report import CheckReport


@dataclass(slots=True)
class Journal:
    """What the cross-invocation rules need of one journal."""

    kinds: list[str] = field(default_factory=list)  # by index; "" when unreadable
    targets: dict[int, str] = field(default_factory=dict)  # call/send index -> callee id
    names: dict[int, str] = field(default_factory=dict)  # promise entry index -> name
    #: call/send index -> its idempotency key (a Restate SDK's; it may name an invocation
    #: that existed rather than a derived callee)
    keyed: dict[int, str] = field(default_factory=dict)
    completed: set[int] = field(default_factory=set)
    cancel_seen: bool = False  # a ctx.cancelled entry: the handler saw the cancellation


def _parse(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_journal(
    rec: InvocationRecord, entries: list[str], completions: list[str], report: CheckReport
) -> Journal:
    """Invariant ``journal``: density, well-formed entries and completions."""
    j = Journal()

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
            if isinstance(entry.get("idempotency_key"), str):
                j.keyed[index] = entry["idempotency_key"]
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
        if is_signal(index) or index == INVOCATION_PERMIT:  # cancel, a signal, a permit
            continue
        if not 0 <= index < len(entries):
            bad(f"completion of entry {index}, which does not exist")
        elif j.kinds[index] not in WAITING_KINDS:
            bad(f"completion of entry {index}, a {j.kinds[index]!r} entry that waits for none")
    return j


def check_record(rec: InvocationRecord, j: Journal, partitions: int, report: CheckReport) -> bool:
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
    if "output" in j.kinds and rec.status != Status.COMPLETED:
        bad(f"its journal ends with an output but it is {rec.status}")
    if rec.waiting and rec.status not in (Status.SUSPENDED, Status.PAUSED):
        bad(f"{rec.status} but waiting on {list(rec.waiting)}")
    if rec.status == Status.SUSPENDED and not rec.waiting:
        bad("suspended on nothing")
    for index in rec.waiting:
        kind = j.kinds[index] if 0 <= index < len(j.kinds) else None
        if kind not in WAITING_KINDS and index != INVOCATION_PERMIT:
            bad(f"waits on entry {index}, which is {kind or 'missing'}, not a waiting kind")
    timed = rec.status in (Status.BACKING_OFF, Status.SCHEDULED)
    if timed != (rec.next_at is not None):
        bad(f"{rec.status} with next_at {rec.next_at}")
    expected = partition_of(rec.service, rec.key, rec.id, partitions)
    if rec.partition != expected:
        bad(f"in partition {rec.partition}, but it hashes to {expected} of {partitions}")
    return True
