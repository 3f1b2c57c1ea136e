"""Invariant ``schedule`` of the store checker (``ritornello.orchestrator.check``): every cron
schedule's own fields, its last fire, and the fire-time invocations the scheduler may submit
again (docs/schedules.md, "Checking a store")."""

from __future__ import annotations

from collections import defaultdict

from ritornello.orchestrator._json import JsonInputError, json_input
from ritornello.orchestrator.core import partition_of
from ritornello.orchestrator.errors import InvalidRequestError
from ritornello.orchestrator.schedules import cron_of, idempotency_key
from ritornello.store import OVERLAP_POLICIES, InvocationRecord, ScheduleRecord, Store

from ._report import CheckReport


async def check_schedules(
    store: Store, records: dict[str, InvocationRecord], now: int, report: CheckReport
) -> None:
    """Invariant ``schedule``, over every schedule. Schedules are listed after the
    invocations: a last invocation the listing missed (created since) is read by id."""
    schedules = await store.list_schedules()
    report.schedules = len(schedules)
    duplicated = _check_fire_keys(records, report)
    # The fire-time invocations the scheduler may submit again (its last; any after
    # checked_until, left by a crash at after-fire) must be found by their idempotency key.
    resubmitted: dict[str, tuple[str, InvocationRecord]] = {}  # id -> (schedule id, record)
    for s in schedules:
        _check_schedule(s, store.partitions, report)
        if s.last_invocation_id is None or s.last_fire_at is None:
            continue
        rec = records.get(s.last_invocation_id)
        if rec is None:
            rec = await store.get_invocation(s.last_invocation_id)
        if rec is not None and _check_last_fire(s, s.last_fire_at, rec, report):
            resubmitted[rec.id] = (s.id, rec)
    by_id = {s.id: s for s in schedules}
    for rec in records.values():
        fire = _fire_of(rec)
        owner = by_id.get(fire[0]) if fire is not None else None
        if (
            fire is not None
            and owner is not None
            and fire[1] > owner.checked_until
            and (rec.service, rec.handler, rec.key) == (owner.service, owner.handler, owner.key)
        ):
            resubmitted[rec.id] = (owner.id, rec)
    for schedule_id, rec in sorted(resubmitted.values(), key=lambda sr: (sr[1].seq, sr[1].id)):
        if rec.idempotency_key is None or rec.idempotency_key in duplicated:
            continue
        if rec.expires_at is not None and rec.expires_at <= now:
            continue  # a store may read it as gone already
        found = await store.find_idempotent(rec.service, rec.handler, rec.key, rec.idempotency_key)
        if found is None or found.id != rec.id:
            report.add(
                "schedule",
                schedule_id,
                f"its invocation {rec.id} is not found by its idempotency key "
                f"{rec.idempotency_key!r} (found {found.id if found else 'nothing'}): a "
                "fire of that time again would create another",
            )


def _fire_of(rec: InvocationRecord) -> tuple[str, int] | None:
    """(schedule id, fire time) of an invocation with a ``schedule:`` idempotency key."""
    idem = rec.idempotency_key
    if idem is None or not idem.startswith("schedule:"):
        return None
    schedule_id, _, at = idem.removeprefix("schedule:").rpartition(":")
    return (schedule_id, int(at)) if at.isdigit() else None


def _check_schedule(s: ScheduleRecord, partitions: int, report: CheckReport) -> None:
    """Invariant ``schedule``: one schedule's own fields."""

    def bad(message: str) -> None:
        report.add("schedule", s.id, message)

    try:
        cron = cron_of(s.cron, s.timezone)
    except InvalidRequestError as exc:
        bad(str(exc))
        cron = None
    if s.overlap not in OVERLAP_POLICIES:
        bad(f"overlap {s.overlap!r} is not one of {', '.join(OVERLAP_POLICIES)}")
    if not s.service or not s.handler or "/" in s.handler:
        bad(f"target {s.service}/{s.handler} is not Service/handler")
    try:
        json_input(s.input, "input")  # as the scheduler takes it in: every fire submits it
    except JsonInputError as exc:
        bad(f"its input is not JSON the scheduler takes in ({exc}): {s.input[:80]!r}")
    expected = partition_of("schedule", None, s.id, partitions)
    if s.partition != expected:
        bad(f"in partition {s.partition}, but its id hashes to {expected} of {partitions}")
    if min(s.fires, s.skipped, s.missed) < 0 or s.version < 1:
        bad(f"fires {s.fires}, skipped {s.skipped}, missed {s.missed}, version {s.version}")
    if s.checked_until < s.created_at:
        bad(f"checked_until {s.checked_until} is before created_at {s.created_at}")
    fired = (s.last_fire_at is not None, s.last_invocation_id is not None, s.fires > 0)
    if len(set(fired)) > 1:
        bad(
            f"last_fire_at {s.last_fire_at}, last_invocation_id {s.last_invocation_id} and "
            f"fires {s.fires} disagree (each fire sets all three)"
        )
    if s.fires <= 0 and (s.skipped or s.missed):
        bad(f"never fired, yet {s.skipped} skipped and {s.missed} missed")
    if s.skipped and s.overlap != "skip":
        bad(f"{s.skipped} skipped with overlap {s.overlap!r}")
    if s.last_fire_at is not None:
        if not s.created_at < s.last_fire_at <= s.checked_until:
            bad(
                f"last_fire_at {s.last_fire_at} is not after created_at {s.created_at} and "
                f"at or before checked_until {s.checked_until}"
            )
        elif cron is not None and cron.latest_at_or_before(s.last_fire_at) != s.last_fire_at:
            bad(f"last_fire_at {s.last_fire_at} is not a fire time of {s.cron!r}")


def _check_last_fire(
    s: ScheduleRecord, fire_ms: int, rec: InvocationRecord, report: CheckReport
) -> bool:
    """Invariant ``schedule``: the last invocation recorded is that fire's (True if so)."""
    want = (s.service, s.handler, s.key, idempotency_key(s.id, fire_ms))
    got = (rec.service, rec.handler, rec.key, rec.idempotency_key)
    if got != want:
        report.add(
            "schedule",
            s.id,
            f"its last invocation {rec.id} is {_target(*got)}, not {_target(*want)}",
        )
    return got == want


def _check_fire_keys(records: dict[str, InvocationRecord], report: CheckReport) -> set[str]:
    """Invariant ``schedule``: one invocation per target and ``schedule:`` idempotency key.
    Returns the keys held twice."""
    held: dict[tuple[str, str, str | None, str], list[str]] = defaultdict(list)
    for rec in records.values():
        if rec.idempotency_key is not None and rec.idempotency_key.startswith("schedule:"):
            held[(rec.service, rec.handler, rec.key, rec.idempotency_key)].append(rec.id)
    duplicated: set[str] = set()
    for (service, handler, key, idem), ids in sorted(held.items(), key=lambda kv: kv[0][3]):
        if len(ids) > 1:
            duplicated.add(idem)
            schedule_id = idem.removeprefix("schedule:").rpartition(":")[0]
            report.add(
                "schedule",
                schedule_id,
                f"{len(ids)} invocations of {_target(service, handler, key, idem)}: "
                f"{', '.join(sorted(ids))}",
            )
    return duplicated


def _target(service: str, handler: str, key: str | None, idem: str | None) -> str:
    where = f"{service}/{handler}" + ("" if key is None else f" key {key!r}")
    return f"{where} with idempotency key {idem!r}"
