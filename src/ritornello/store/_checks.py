"""Checks every backend runs the same way: on a commit unit before writing anything, on a
compare-and-set of a schedule or a limit, on the number of partitions, and on a fence or a
lease against the stored lease."""

from __future__ import annotations

from ritornello.store.errors import ConflictError, FencedError
from ritornello.store.records import (
    OVERLAP_POLICIES,
    CommitUnit,
    LeaseRecord,
    LimitRecord,
    ScheduleRecord,
)


def check_unit(unit: CommitUnit) -> None:
    """Raise ValueError if ``unit`` is malformed (a caller bug, not a conflict)."""
    for write in unit.invocations:
        expect = write.expect_version
        if expect is not None and write.record.version != expect + 1:
            raise ValueError(
                f"invocation {write.record.id}: record.version {write.record.version} must be "
                f"expect_version + 1 = {expect + 1}"
            )
    for service, key, name, value in unit.state:
        if name is None and value is not None:
            raise ValueError(f"state of {service}/{key}: a value needs a name")
    if unit.fresh:
        written = [(inv_id, index) for inv_id, index, _ in unit.completions]
        for inv_id, index in unit.fresh:
            if written.count((inv_id, index)) != 1:
                raise ValueError(
                    f"fresh completion {inv_id}[{index}] must be one of the unit's completions, "
                    "exactly once"
                )
    for permit in unit.permits_grant:
        if permit.granted_at is None:
            raise ValueError(
                f"grant of permit {permit.limit!r} {permit.invocation_id}[{permit.index}]: "
                "granted_at must be set"
            )


def check_schedule(schedule: ScheduleRecord, expect_version: int | None) -> None:
    """Raise ValueError if ``put_schedule(schedule, expect_version)`` is malformed."""
    expected = 1 if expect_version is None else expect_version + 1
    if schedule.version != expected:
        raise ValueError(
            f"schedule {schedule.id}: version {schedule.version} must be {expected} "
            f"(expect_version {expect_version} + 1, or 1 for an insert)"
        )
    if schedule.overlap not in OVERLAP_POLICIES:
        raise ValueError(f"schedule {schedule.id}: overlap must be one of {OVERLAP_POLICIES}")


def check_limit(limit: LimitRecord, expect_version: int | None) -> None:
    """Raise ValueError if ``put_limit(limit, expect_version)`` is malformed."""
    expected = 1 if expect_version is None else expect_version + 1
    if limit.version != expected:
        raise ValueError(
            f"limit {limit.name!r}: version {limit.version} must be {expected} "
            f"(expect_version {expect_version} + 1, or 1 for an insert)"
        )


def check_version(what: str, stored: int | None, expect_version: int | None) -> None:
    """Raise the ConflictError of a compare-and-set of ``what`` (a schedule, a limit) whose
    stored version is ``stored`` (None: missing): an insert (``expect_version`` None) needs it
    missing, an update needs it equal to ``expect_version``."""
    if expect_version is None:
        if stored is not None:
            raise ConflictError(f"{what} already exists")
    elif stored is None:
        raise ConflictError(f"{what} does not exist")
    elif stored != expect_version:
        raise ConflictError(f"{what} is at version {stored}, not {expect_version}")


def check_partitions(partitions: int) -> int:
    """``partitions`` if it is a valid number of partitions (an int >= 1), else ValueError."""
    if isinstance(partitions, bool) or not isinstance(partitions, int) or partitions < 1:
        raise ValueError(f"partitions must be an integer >= 1, not {partitions!r}")
    return partitions


def holds(stored: LeaseRecord | None, lease: LeaseRecord) -> bool:
    """Whether ``stored`` (the lease as the store has it) is still held by ``lease``'s owner at
    ``lease``'s epoch. Versions are not compared: a renewal may have landed unreported."""
    return (
        stored is not None
        and stored.owner is not None
        and stored.owner == lease.owner
        and stored.epoch == lease.epoch
    )


def check_fence(partition: int, epoch: int, stored: LeaseRecord | None) -> None:
    """Raise FencedError unless ``stored`` (the lease of ``partition``) is held at ``epoch``."""
    if stored is None or stored.owner is None or stored.epoch != epoch:
        raise FencedError(
            f"fenced: partition {partition} {_describe(stored)}, not held at epoch {epoch}",
            partition,
        )


def lost(lease: LeaseRecord, stored: LeaseRecord | None) -> FencedError:
    """The error of a renewal of ``lease`` that found ``stored`` instead."""
    return FencedError(
        f"lease of partition {lease.partition} (epoch {lease.epoch}) is lost: it "
        f"{_describe(stored)}",
        lease.partition,
    )


def moved(expect: LeaseRecord | None, stored: LeaseRecord | None) -> bool:
    """Whether a claim expecting ``expect`` finds the lease moved (``stored`` is another
    version, or exists while ``expect`` is None, or vice versa)."""
    if stored is None or expect is None:
        return stored is not expect
    return stored.version != expect.version


def _describe(stored: LeaseRecord | None) -> str:
    if stored is None:
        return "was never claimed"
    if stored.owner is None:
        return f"was released at epoch {stored.epoch}"
    return f"is held by {stored.owner} at epoch {stored.epoch}"
