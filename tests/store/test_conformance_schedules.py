"""Conformance suite, continued: cron schedules and the invocations' retry history. Every
backend (memory, SQLite, DynamoDB on moto) must pass every test here, unchanged."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from ritornello.store import (
    HISTORY_LIMIT,
    CommitUnit,
    ConflictError,
    InvocationWrite,
    ScheduleRecord,
    Store,
    with_failure,
)

from .conftest import inv

Run = Callable[[Awaitable[Any]], Any]


def schedule(id: str = "sch_1", **fields: Any) -> ScheduleRecord:
    values: dict[str, Any] = {
        "cron": "*/5 * * * *",
        "service": "Greeter",
        "handler": "greet",
        "key": None,
        "input": '"world"',
        "overlap": "skip",
        "timezone": "UTC",
        "paused": False,
        "created_at": 1_700_000_000_000,
        "checked_until": 1_700_000_000_000,
    }
    values.update(fields)
    return ScheduleRecord(id=id, **values)


def next_version(s: ScheduleRecord, **changes: Any) -> ScheduleRecord:
    return dataclasses.replace(s, version=s.version + 1, **changes)


# --- retry history ---------------------------------------------------------------------------


def test_history_round_trips(store: Store, run: Run) -> None:
    history = with_failure(None, 1, 1_700_000_001_000, "transport: connection refused ü")
    first = inv("inv_h", idempotency_key="k", history=history, last_error="boom")
    bare = inv("inv_b", key="bob")
    run(store.commit(CommitUnit(invocations=[InvocationWrite(first), InvocationWrite(bare)])))
    assert run(store.get_invocation("inv_h")) == first
    assert run(store.get_invocation("inv_b")).history is None
    longer = with_failure(history, 2, 1_700_000_002_000, "protocol: bad answer")
    second = dataclasses.replace(first, history=longer, attempt=3, version=2)
    run(store.commit(CommitUnit(invocations=[InvocationWrite(second, expect_version=1)])))
    assert run(store.get_invocation("inv_h")) == second
    assert run(store.find_idempotent("Counter", "add", "alice", "k")) == second
    listed = run(store.list_invocations(statuses=["running"], partition=0))
    assert [r.history for r in listed if r.id == "inv_h"] == [longer]
    assert json.loads(longer) == [
        {"attempt": 1, "at": 1_700_000_001_000, "error": "transport: connection refused ü"},
        {"attempt": 2, "at": 1_700_000_002_000, "error": "protocol: bad answer"},
    ]


# --- schedules -------------------------------------------------------------------------------


def test_schedule_round_trip_and_insert_conflict(store: Store, run: Run) -> None:
    full = schedule(
        "sch_ü",
        key="",
        input='{"n": "é"}',
        overlap="allow",
        timezone="Europe/Paris",
        paused=True,
        partition=3,
        last_fire_at=1_700_000_300_000,
        last_invocation_id="inv_x",
        fires=4,
        skipped=2,
        missed=7,
    )
    bare = schedule("sch_2", key=None)
    run(store.put_schedule(full))
    run(store.put_schedule(bare))
    assert run(store.get_schedule("sch_ü")) == full
    assert run(store.get_schedule("sch_2")) == bare
    assert run(store.get_schedule("missing")) is None
    with pytest.raises(ConflictError, match="exists"):
        run(store.put_schedule(schedule("sch_2", cron="* * * * *")))
    assert run(store.get_schedule("sch_2")) == bare


def test_schedule_compare_and_set(store: Store, run: Run) -> None:
    first = schedule()
    run(store.put_schedule(first))
    moved = next_version(first, checked_until=1_700_000_300_000, fires=1)
    run(store.put_schedule(moved, expect_version=1))
    assert run(store.get_schedule("sch_1")) == moved
    stale = next_version(first, paused=True)
    with pytest.raises(ConflictError, match="version 2"):
        run(store.put_schedule(stale, expect_version=1))
    assert run(store.get_schedule("sch_1")) == moved
    with pytest.raises(ConflictError, match="does not exist"):
        run(store.put_schedule(next_version(schedule("sch_gone")), expect_version=1))
    assert run(store.get_schedule("sch_gone")) is None
    with pytest.raises(ValueError, match="version"):
        run(store.put_schedule(moved, expect_version=2))  # version must be 3
    with pytest.raises(ValueError, match="version"):
        run(store.put_schedule(schedule("sch_3", version=2)))  # an insert is version 1
    with pytest.raises(ValueError, match="overlap"):
        run(store.put_schedule(schedule("sch_3", overlap="queue")))
    assert run(store.get_schedule("sch_3")) is None


def test_list_schedules_orders_and_filters(store: Store, run: Run) -> None:
    late = schedule("sch_a", created_at=3, partition=1)
    early = schedule("sch_z", created_at=1, partition=0)
    tie = schedule("sch_b", created_at=3, partition=1)
    for s in (late, early, tie):
        run(store.put_schedule(s))
    assert run(store.list_schedules()) == [early, late, tie]
    assert run(store.list_schedules(partition=1)) == [late, tie]
    assert run(store.list_schedules(partition=0)) == [early]
    assert run(store.list_schedules(partition=2)) == []


def test_delete_schedule(store: Store, run: Run) -> None:
    first = schedule()
    run(store.put_schedule(first))
    run(store.put_schedule(next_version(first, paused=True), expect_version=1))
    with pytest.raises(ConflictError):
        run(store.delete_schedule("sch_1", expect_version=1))
    assert run(store.get_schedule("sch_1")) is not None
    assert run(store.delete_schedule("sch_1", expect_version=2)) is True
    assert run(store.get_schedule("sch_1")) is None
    assert run(store.delete_schedule("sch_1")) is False
    assert run(store.delete_schedule("sch_1", expect_version=2)) is False
    run(store.put_schedule(schedule("sch_2")))
    assert run(store.delete_schedule("sch_2")) is True
    assert run(store.list_schedules()) == []
    run(store.put_schedule(first))  # a deleted id may be created again
    assert run(store.get_schedule("sch_1")) == first


# --- the history helper (pure) ------------------------------------------------------------


def test_with_failure_keeps_the_last_attempts_oldest_first() -> None:
    history: str | None = None
    for n in range(1, HISTORY_LIMIT + 6):
        history = with_failure(history, n, 1000 + n, f"error {n}" + "x" * 3000)
    assert history is not None
    failures = json.loads(history)
    assert [f["attempt"] for f in failures] == list(range(6, HISTORY_LIMIT + 6))
    assert failures[0]["at"] == 1006
    assert all(len(f["error"]) == 1000 for f in failures)
    assert json.loads(with_failure("not json", 1, 5, "e")) == [
        {"attempt": 1, "at": 5, "error": "e"}
    ]
