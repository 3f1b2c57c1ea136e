"""Conformance suite, continued: named limits and the permits of their instances (flow control,
docs/limits.md). Every backend (memory, SQLite with its writer in a process or on a thread,
DynamoDB on moto) must pass every test here, unchanged."""

from __future__ import annotations

import dataclasses
import marshal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from ritornello.store import (
    CommitUnit,
    ConflictError,
    FencedError,
    InvocationWrite,
    LimitRecord,
    PermitRecord,
    Store,
    StoreClosedError,
    StoreError,
    TimerRecord,
)
from ritornello.store.records import permit_order, unit_from_tuple, unit_to_tuple

from .conftest import BACKENDS, inv, make_store

Run = Callable[[Awaitable[Any]], Any]

T0 = 1_700_000_000_000
#: Names DynamoDB must bound (past its key limits) and names with every kind of character.
LONG = "ü" * 1500
ODD = 'lim/ü\x00"[,]# ✓'


def limit(name: str = "emails", **fields: Any) -> LimitRecord:
    values: dict[str, Any] = {
        "concurrency": 5,
        "rate": 2.5,
        "per_ms": 1000,
        "burst": 3,
        "updated_at": T0,
    }
    values.update(fields)
    return LimitRecord(name=name, **values)


def next_version(r: LimitRecord, **changes: Any) -> LimitRecord:
    return dataclasses.replace(r, version=r.version + 1, **changes)


def permit(
    limit: str = "emails", invocation_id: str = "inv_1", index: int = 3, **fields: Any
) -> PermitRecord:
    values: dict[str, Any] = {"partition": 1, "priority": 0, "asked_at": T0}
    values.update(fields)
    return PermitRecord(limit, invocation_id, index, **values)


def granted(p: PermitRecord, at: int = T0 + 50) -> PermitRecord:
    return dataclasses.replace(p, granted_at=at)


def name_of(p: PermitRecord) -> tuple[str, str, int]:
    return (p.limit, p.invocation_id, p.index)


# --- limits ----------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_use_before_open_and_after_close(backend: str, tmp_path: Path, run: Run) -> None:
    store = make_store(backend, tmp_path)
    with pytest.raises(StoreError):
        run(store.list_permits())
    run(store.open())
    run(store.close())
    with pytest.raises(StoreClosedError):
        run(store.put_limit(limit()))
    with pytest.raises(StoreClosedError):
        run(store.list_limits())
    with pytest.raises(StoreClosedError):
        run(store.get_permit("emails", "inv_1", 0))
    with pytest.raises(StoreClosedError):
        run(store.list_permits(partition=0))


def test_limit_round_trip_insert_conflict_and_unicode_names(store: Store, run: Run) -> None:
    full = limit()
    unbounded = limit(ODD, concurrency=None, rate=None, per_ms=60_000, burst=0, updated_at=1)
    long = limit(LONG, concurrency=1, rate=None)
    for r in (full, unbounded, long):
        run(store.put_limit(r))
    assert run(store.get_limit("emails")) == full
    assert run(store.get_limit(ODD)) == unbounded
    assert run(store.get_limit(LONG)) == long
    assert run(store.get_limit("missing")) is None
    assert run(store.get_limit("lim/ü")) is None  # a prefix names nothing
    assert run(store.list_limits()) == sorted([full, unbounded, long], key=lambda r: r.name)
    with pytest.raises(ConflictError, match="exists"):
        run(store.put_limit(limit(concurrency=9)))
    assert run(store.get_limit("emails")) == full
    rate_only = limit("fractional", concurrency=None, rate=0.1, per_ms=3_600_000)
    run(store.put_limit(rate_only))
    assert run(store.get_limit("fractional")) == rate_only


def test_limit_compare_and_set(store: Store, run: Run) -> None:
    first = limit()
    run(store.put_limit(first))
    moved = next_version(first, concurrency=10, updated_at=T0 + 1)
    run(store.put_limit(moved, expect_version=1))
    assert run(store.get_limit("emails")) == moved
    with pytest.raises(ConflictError, match="version 2"):
        run(store.put_limit(next_version(first, rate=None), expect_version=1))
    assert run(store.get_limit("emails")) == moved
    with pytest.raises(ConflictError, match="does not exist"):
        run(store.put_limit(next_version(limit("gone")), expect_version=1))
    assert run(store.get_limit("gone")) is None
    with pytest.raises(ValueError, match="version"):
        run(store.put_limit(moved, expect_version=2))  # the version must be 3
    with pytest.raises(ValueError, match="version"):
        run(store.put_limit(limit("other", version=2)))  # an insert is version 1
    assert run(store.get_limit("other")) is None
    unbounded = next_version(moved, concurrency=None, rate=None)
    run(store.put_limit(unbounded, expect_version=2))
    assert run(store.get_limit("emails")) == unbounded


def test_delete_limit(store: Store, run: Run) -> None:
    run(store.put_limit(limit()))
    run(store.put_limit(limit(ODD)))
    assert run(store.delete_limit("emails")) is True
    assert run(store.get_limit("emails")) is None
    assert run(store.delete_limit("emails")) is False
    assert run(store.list_limits()) == [limit(ODD)]
    run(store.put_limit(limit()))  # a deleted name may be created again, at version 1
    assert run(store.get_limit("emails")) == limit()


# --- permits: ask, grant, release ----------------------------------------------------------


def test_an_ask_inserts_and_a_second_ask_keeps_the_first_row(store: Store, run: Run) -> None:
    first = permit()
    assert run(store.get_permit(*name_of(first))) is None
    run(store.commit(CommitUnit(permits_ask=[first])))
    assert run(store.get_permit(*name_of(first))) == first
    again = permit(priority=9, asked_at=T0 + 5, partition=2)
    run(store.commit(CommitUnit(permits_ask=[again], entries=[("inv_1", 0, "{}")])))
    assert run(store.get_permit(*name_of(first))) == first  # left exactly as it was
    assert run(store.get_journal("inv_1")) == (["{}"], [])  # and the rest of the unit applied
    run(store.commit(CommitUnit(permits_grant=[granted(first)])))
    run(store.commit(CommitUnit(permits_ask=[first])))  # a granted row stays granted
    assert run(store.get_permit(*name_of(first))) == granted(first)


def test_a_grant_replaces_a_waiting_row(store: Store, run: Run) -> None:
    waiting = permit(priority=2)
    run(store.commit(CommitUnit(permits_ask=[waiting])))
    holder = granted(dataclasses.replace(waiting, priority=5))  # the grant is written as given
    run(store.commit(CommitUnit(permits_grant=[holder])))
    assert run(store.get_permit(*name_of(waiting))) == holder
    assert run(store.list_permits(limit="emails")) == [holder]


@pytest.mark.parametrize("before", ["missing", "granted", "released in the unit"])
def test_a_grant_that_finds_no_waiting_row_conflicts_and_writes_nothing(
    store: Store, run: Run, before: str
) -> None:
    waiting = permit()
    if before != "missing":
        run(store.commit(CommitUnit(permits_ask=[waiting])))
    if before == "granted":
        run(store.commit(CommitUnit(permits_grant=[granted(waiting, T0 + 1)])))
    stored = run(store.get_permit(*name_of(waiting)))
    other = permit(invocation_id="inv_2")
    unit = CommitUnit(
        invocations=[InvocationWrite(inv("inv_2"))],
        entries=[("inv_2", 0, "{}")],
        completions_remove=[("inv_0", 1)],
        permits_ask=[other],
        permits_grant=[granted(waiting, T0 + 2)],
    )
    if before == "released in the unit":
        unit.permits_release = [name_of(waiting)]  # releases apply before grants
    run(store.commit(CommitUnit(completions=[("inv_0", 1, "null")])))
    with pytest.raises(ConflictError):
        run(store.commit(unit))
    assert run(store.get_invocation("inv_2")) is None
    assert run(store.get_journal("inv_2")) == ([], [])
    assert run(store.get_journal("inv_0")) == ([], ["null"])
    assert run(store.get_permit(*name_of(other))) is None
    assert run(store.get_permit(*name_of(waiting))) == stored


def test_a_grant_without_granted_at_is_a_value_error(store: Store, run: Run) -> None:
    run(store.commit(CommitUnit(permits_ask=[permit()])))
    with pytest.raises(ValueError, match="granted_at"):
        run(store.commit(CommitUnit(permits_grant=[permit()], entries=[("inv_1", 0, "{}")])))
    assert run(store.get_journal("inv_1")) == ([], [])


def test_an_ask_and_its_grant_in_one_unit(store: Store, run: Run) -> None:
    p = permit(ODD, "inv_ü", -1)
    run(store.commit(CommitUnit(permits_ask=[p], permits_grant=[granted(p)])))
    assert run(store.get_permit(ODD, "inv_ü", -1)) == granted(p)
    # a release, a new ask and its grant of the same name in one unit: release, ask, grant
    again = permit(ODD, "inv_ü", -1, priority=4, asked_at=T0 + 7)
    unit = CommitUnit(
        permits_ask=[again], permits_grant=[granted(again, T0 + 9)], permits_release=[name_of(p)]
    )
    run(store.commit(unit))
    assert run(store.get_permit(ODD, "inv_ü", -1)) == granted(again, T0 + 9)


def test_release_deletes_and_a_missing_one_is_fine(store: Store, run: Run) -> None:
    a, b = permit(index=1), permit(index=2)
    run(store.commit(CommitUnit(permits_ask=[a, b], permits_grant=[granted(a)])))
    run(store.commit(CommitUnit(permits_release=[name_of(a), ("emails", "inv_9", 1)])))
    assert run(store.get_permit(*name_of(a))) is None
    assert run(store.list_permits()) == [b]
    run(store.commit(CommitUnit(permits_release=[name_of(a)])))  # again: nothing to do
    # a released name may be asked again
    run(store.commit(CommitUnit(permits_ask=[a])))
    assert run(store.get_permit(*name_of(a))) == a


def test_names_of_any_unicode_and_length(store: Store, run: Run) -> None:
    rows = [
        permit(LONG, "inv_1", 0),
        permit(ODD, "inv_1", 0),
        permit(ODD, 'inv/"x"\x00', 2**40),
        permit(ODD, "é" * 700, -1),
        permit("emails", ODD, 0),
    ]
    run(store.commit(CommitUnit(permits_ask=rows)))
    for p in rows:
        assert run(store.get_permit(*name_of(p))) == p
    assert run(store.get_permit(ODD, "inv_1", 1)) is None
    assert run(store.get_permit("lim/ü", "inv_1", 0)) is None
    assert run(store.list_permits(limit=ODD)) == sorted(rows[1:4], key=permit_order)
    assert run(store.list_permits(limit=LONG)) == [rows[0]]
    assert run(store.list_permits(partition=1)) == sorted(rows, key=permit_order)


def test_purge_leaves_permits_alone(store: Store, run: Run) -> None:
    p = permit()
    run(store.commit(CommitUnit(invocations=[InvocationWrite(inv())], permits_ask=[p])))
    run(store.commit(CommitUnit(purge=["inv_1"])))
    assert run(store.get_invocation("inv_1")) is None
    assert run(store.get_permit(*name_of(p))) == p


# --- completions_remove --------------------------------------------------------------------------


def test_completions_remove(store: Store, run: Run) -> None:
    run(store.commit(CommitUnit(completions=[("inv_1", 1, '"a"'), ("inv_1", 2, '"b"')])))
    run(store.commit(CommitUnit(completions_remove=[("inv_1", 1), ("inv_1", 7), ("inv_9", 0)])))
    assert run(store.get_journal("inv_1")) == ([], ['"b"'])
    run(store.commit(CommitUnit(completions_remove=[("inv_1", 1)])))  # missing: fine
    # a removed completion may be written again (first writer wins again)
    run(store.commit(CommitUnit(completions=[("inv_1", 1, '"c"')])))
    assert run(store.get_journal("inv_1")) == ([], ['"c"', '"b"'])
    # written and removed in one unit: removed (completions apply first)
    unit = CommitUnit(completions=[("inv_1", 3, '"d"')], completions_remove=[("inv_1", 3)])
    run(store.commit(unit))
    assert run(store.get_journal("inv_1")) == ([], ['"c"', '"b"'])
    # removed and replaced: a unit that removes one and writes another
    unit = CommitUnit(completions=[("inv_1", 4, '"e"')], completions_remove=[("inv_1", 2)])
    run(store.commit(unit))
    assert run(store.get_journal("inv_1")) == ([], ['"c"', '"e"'])


# --- listing ---------------------------------------------------------------------------------


def test_list_permits_by_partition_and_limit_in_service_order(store: Store, run: Run) -> None:
    # limit "a" (partition 1): two holders, waiters of priorities 0 and 5 at several times
    a_hold_late = permit("a", "inv_h2", 0, asked_at=T0 + 9, granted_at=T0 + 20)
    a_hold = permit("a", "inv_h1", 0, asked_at=T0 + 1, granted_at=T0 + 30)
    a_old = permit("a", "inv_w1", 0, asked_at=T0 + 2)
    a_new = permit("a", "inv_w2", 0, asked_at=T0 + 8)
    a_urgent = permit("a", "inv_w3", 0, priority=5, asked_at=T0 + 9)
    a_tie_1 = permit("a", "inv_w4", 1, asked_at=T0 + 8)
    a_tie_0 = permit("a", "inv_w4", 0, asked_at=T0 + 8)
    a_negative = permit("a", "inv_w5", 0, priority=-3, asked_at=T0)
    b = permit("b", "inv_w1", 1, partition=2)
    c = permit("c", "inv_x", 0, partition=1, granted_at=T0)
    rows = [a_hold_late, a_hold, a_old, a_new, a_urgent, a_tie_1, a_tie_0, a_negative, b, c]
    waiting = [dataclasses.replace(p, granted_at=None) for p in rows]
    run(store.commit(CommitUnit(permits_ask=waiting[:5])))
    run(store.commit(CommitUnit(permits_ask=waiting[5:])))
    grants = [p for p in rows if p.granted_at is not None]
    run(store.commit(CommitUnit(permits_grant=grants)))
    in_a = [a_hold, a_hold_late, a_urgent, a_old, a_new, a_tie_0, a_tie_1, a_negative]
    assert run(store.list_permits(limit="a")) == in_a
    assert run(store.list_permits(partition=1)) == [*in_a, c]
    assert run(store.list_permits(partition=2)) == [b]
    assert run(store.list_permits()) == [*in_a, b, c]
    assert run(store.list_permits(partition=1, limit="b")) == []
    assert run(store.list_permits(partition=2, limit="b")) == [b]
    assert run(store.list_permits(partition=3)) == []
    assert run(store.list_permits(limit="nothing")) == []
    run(store.commit(CommitUnit(permits_release=[name_of(p) for p in in_a])))
    assert run(store.list_permits(partition=1)) == [c]
    assert run(store.list_permits(limit="a")) == []
    run(store.commit(CommitUnit(permits_ask=[a_old])))  # the instance comes back
    assert run(store.list_permits(partition=1)) == [a_old, c]


# --- atomicity and fences ----------------------------------------------------------------------


def test_a_unit_of_an_entry_a_completion_an_ask_and_a_release_is_atomic(
    store: Store, run: Run
) -> None:
    held = permit("a", "inv_1", 2, granted_at=T0)
    run(store.commit(CommitUnit(permits_ask=[dataclasses.replace(held, granted_at=None)])))
    run(store.commit(CommitUnit(permits_grant=[held], entries=[("inv_1", 0, "{}")])))
    asked = permit("b", "inv_1", 5)

    def unit(entry: int) -> CommitUnit:
        return CommitUnit(
            entries=[("inv_1", entry, '"next"')],
            completions=[("inv_1", 2, '"released"')],
            permits_ask=[asked],
            permits_release=[name_of(held)],
        )

    with pytest.raises(ConflictError):  # entry 0 is written: the whole unit fails
        run(store.commit(unit(0)))
    assert run(store.get_journal("inv_1")) == (["{}"], [])
    assert run(store.get_permit(*name_of(held))) == held
    assert run(store.get_permit(*name_of(asked))) is None
    run(store.commit(unit(1)))
    assert run(store.get_journal("inv_1")) == (["{}", '"next"'], ['"released"'])
    assert run(store.get_permit(*name_of(held))) is None
    assert run(store.list_permits()) == [asked]


def test_a_unit_with_permits_fenced_at_a_wrong_epoch_writes_nothing(store: Store, run: Run) -> None:
    lease = run(store.claim_lease(1, "node-a", None, 1000))
    waiting = permit()
    run(store.commit(CommitUnit(permits_ask=[waiting], fences=[(1, lease.epoch)])))
    run(store.commit(CommitUnit(completions=[("inv_1", 1, '"c"')])))
    asked = permit(invocation_id="inv_2")
    unit = CommitUnit(
        entries=[("inv_1", 0, "{}")],
        completions_remove=[("inv_1", 1)],
        timers_add=[TimerRecord(T0, "inv_1", "sleep", 1, partition=1)],
        permits_ask=[asked],
        permits_grant=[granted(waiting)],
        fences=[(1, lease.epoch + 1)],
    )
    with pytest.raises(FencedError) as caught:
        run(store.commit(unit))
    assert caught.value.partition == 1
    assert run(store.get_journal("inv_1")) == ([], ['"c"'])
    assert run(store.list_timers()) == []
    assert run(store.list_permits()) == [waiting]
    release = CommitUnit(permits_release=[name_of(waiting)], fences=[(1, lease.epoch + 1)])
    with pytest.raises(FencedError):
        run(store.commit(release))
    assert run(store.get_permit(*name_of(waiting))) == waiting
    unit.fences = [(1, lease.epoch)]
    run(store.commit(unit))  # at the right epoch it applies whole
    assert run(store.get_journal("inv_1")) == (["{}"], [])
    assert run(store.list_permits(partition=1)) == [granted(waiting), asked]


# --- the writer process's wire form (pure) -----------------------------------------------------


def test_a_unit_with_permits_round_trips_as_tuples() -> None:
    unit = CommitUnit(
        entries=[("inv_1", 0, "{}")],
        completions_remove=[("inv_1", 4), ("inv_ü", -1)],
        permits_ask=[permit(ODD, "inv_1", -1), permit(priority=-2)],
        permits_grant=[granted(permit(index=7), T0 + 3)],
        permits_release=[("a", "inv_1", 2), (LONG, "inv_\x00", 0)],
        fences=[(1, 3)],
    )
    wire = marshal.loads(marshal.dumps(unit_to_tuple(unit)))
    assert unit_from_tuple(wire) == unit
    assert unit_from_tuple(marshal.loads(marshal.dumps(unit_to_tuple(CommitUnit())))) == (
        CommitUnit()
    )
