"""The store conformance suite: every backend must pass every test here, unchanged."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from ritornello.store import (
    STATUSES,
    CommitUnit,
    ConflictError,
    DeploymentRecord,
    FencedError,
    InvocationWrite,
    LeaseRecord,
    MemberRecord,
    Store,
    StoreClosedError,
    StoreError,
    TimerRecord,
)

from .conftest import BACKENDS, inv, make_store

Run = Callable[[Awaitable[Any]], Any]


def bump(record: Any, **changes: Any) -> InvocationWrite:
    """An update of ``record`` to its next version."""
    new = dataclasses.replace(record, version=record.version + 1, **changes)
    return InvocationWrite(new, expect_version=record.version)


# --- lifecycle -------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_use_before_open_and_after_close(backend: str, tmp_path: Path, run: Run) -> None:
    store = make_store(backend, tmp_path)
    with pytest.raises(StoreError):
        run(store.get_invocation("x"))
    run(store.open())
    run(store.close())
    run(store.close())  # idempotent
    with pytest.raises(StoreClosedError):
        run(store.commit(CommitUnit(entries=[("x", 0, "{}")])))
    with pytest.raises(StoreClosedError):
        run(store.get_invocation("x"))
    with pytest.raises(StoreClosedError):
        run(store.put_deployment(DeploymentRecord("dp", "http://x", "[]", 1)))
    with pytest.raises(StoreClosedError):
        run(store.claim_lease(0, "node-a", None, 1))
    with pytest.raises(StoreClosedError):
        run(store.heartbeat("node-a", "x", 1))
    with pytest.raises(StoreClosedError):
        run(store.read_inbox(0))
    with pytest.raises(StoreClosedError):
        run(store.ack_inbox(0, []))


@pytest.mark.parametrize("backend", BACKENDS)
def test_async_with(backend: str, tmp_path: Path, run: Run) -> None:
    async def body() -> None:
        async with make_store(backend, tmp_path) as store:
            await store.commit(CommitUnit(invocations=[InvocationWrite(inv())]))
            assert await store.get_invocation("inv_1") == inv()
        with pytest.raises(StoreClosedError):
            await store.get_invocation("inv_1")

    run(body())


# --- invocations -----------------------------------------------------------------------------


def test_invocation_round_trip(store: Store, run: Run) -> None:
    full = inv(
        "inv_ü",
        key=None,
        attempt=3,
        journal_len=7,
        waiting=(2, 5, 11),
        caller_id="inv_parent",
        caller_index=4,
        idempotency_key="idem",
        result='{"value": "é"}',
        last_error="boom",
        next_at=1_700_000_005_000,
        version=1,
    )
    bare = inv("inv_2", key="", waiting=())
    run(store.commit(CommitUnit(invocations=[InvocationWrite(full), InvocationWrite(bare)])))
    assert run(store.get_invocation("inv_ü")) == full
    assert run(store.get_invocation("inv_2")) == bare
    assert run(store.get_invocation("missing")) is None


def test_insert_of_existing_id_is_ignored(store: Store, run: Run) -> None:
    first = inv(status="running")
    run(store.commit(CommitUnit(invocations=[InvocationWrite(first)])))
    again = CommitUnit(
        invocations=[InvocationWrite(inv(status="completed"))], entries=[("inv_1", 0, "{}")]
    )
    run(store.commit(again))  # no conflict: the first write stands, the rest of the unit applies
    assert run(store.get_invocation("inv_1")) == first
    assert run(store.get_journal("inv_1")) == (["{}"], [])


def test_conditional_update(store: Store, run: Run) -> None:
    v1 = inv()
    run(store.commit(CommitUnit(invocations=[InvocationWrite(v1)])))
    write = bump(v1, status="suspended", waiting=(3,), journal_len=4, modified_at=5)
    run(store.commit(CommitUnit(invocations=[write])))
    assert run(store.get_invocation("inv_1")) == write.record
    # stale: still expecting version 1
    stale = CommitUnit(
        invocations=[bump(v1, status="completed")],
        entries=[("inv_1", 1, "{}")],
        completions=[("inv_1", 1, "{}")],
        state=[("Counter", "alice", "n", "1")],
        timers_add=[TimerRecord(10, "inv_1", "sleep", 1)],
    )
    with pytest.raises(ConflictError):
        run(store.commit(stale))
    assert run(store.get_invocation("inv_1")) == write.record
    assert run(store.get_journal("inv_1")) == ([], [])
    assert run(store.get_state("Counter", "alice")) == {}
    assert run(store.list_timers()) == []


def test_update_of_missing_invocation_conflicts(store: Store, run: Run) -> None:
    unit = CommitUnit(invocations=[bump(inv())], entries=[("inv_1", 0, "{}")])
    with pytest.raises(ConflictError):
        run(store.commit(unit))
    assert run(store.get_invocation("inv_1")) is None
    assert run(store.get_journal("inv_1")) == ([], [])


def test_later_write_in_a_unit_sees_earlier_one(store: Store, run: Run) -> None:
    v1 = inv()
    v2 = bump(v1, status="completed")
    run(store.commit(CommitUnit(invocations=[InvocationWrite(v1), v2])))
    assert run(store.get_invocation("inv_1")) == v2.record


def test_malformed_units_raise_value_error(store: Store, run: Run) -> None:
    v1 = inv()
    run(store.commit(CommitUnit(invocations=[InvocationWrite(v1)])))
    wrong_version = InvocationWrite(dataclasses.replace(v1, version=5), expect_version=1)
    with pytest.raises(ValueError):
        run(store.commit(CommitUnit(invocations=[wrong_version])))
    with pytest.raises(ValueError):
        run(store.commit(CommitUnit(state=[("Counter", "alice", None, "1")])))
    assert run(store.get_invocation("inv_1")) == v1


# --- idempotency -----------------------------------------------------------------------------


@pytest.mark.parametrize("key", [None, "", "alice"])
def test_idempotency_key_is_unique_per_target(store: Store, run: Run, key: str | None) -> None:
    first = inv("inv_a", key=key, idempotency_key="ik", seq=1)
    run(store.commit(CommitUnit(invocations=[InvocationWrite(first)])))
    assert run(store.find_idempotent("Counter", "add", key, "ik")) == first
    assert run(store.find_idempotent("Counter", "add", key, "other")) is None
    assert run(store.find_idempotent("Counter", "sub", key, "ik")) is None
    other_key = "bob" if key is not None else ""
    assert run(store.find_idempotent("Counter", "add", other_key, "ik")) is None
    dup = CommitUnit(
        invocations=[InvocationWrite(inv("inv_b", key=key, idempotency_key="ik", seq=2))],
        entries=[("inv_b", 0, "{}")],
    )
    with pytest.raises(ConflictError):
        run(store.commit(dup))
    assert run(store.get_invocation("inv_b")) is None
    assert run(store.get_journal("inv_b")) == ([], [])
    # the same key on another target, or no key at all, is fine
    run(
        store.commit(
            CommitUnit(
                invocations=[
                    InvocationWrite(inv("inv_c", key=key, handler="sub", idempotency_key="ik")),
                    InvocationWrite(inv("inv_d", key=other_key, idempotency_key="ik")),
                    InvocationWrite(inv("inv_e", key=key)),
                    InvocationWrite(inv("inv_f", key=key)),
                ]
            )
        )
    )
    found = run(store.find_idempotent("Counter", "add", other_key, "ik"))
    assert found is not None and found.id == "inv_d"


def test_none_and_empty_key_are_distinct(store: Store, run: Run) -> None:
    a = inv("inv_a", key=None, idempotency_key="ik", service="Greeter")
    b = inv("inv_b", key="", idempotency_key="ik", service="Greeter")
    run(store.commit(CommitUnit(invocations=[InvocationWrite(a), InvocationWrite(b)])))
    assert run(store.find_idempotent("Greeter", "add", None, "ik")) == a
    assert run(store.find_idempotent("Greeter", "add", "", "ik")) == b


def test_update_onto_a_taken_idempotency_key_conflicts(store: Store, run: Run) -> None:
    a = inv("inv_a", idempotency_key="ik1")
    b = inv("inv_b", idempotency_key="ik2")
    run(store.commit(CommitUnit(invocations=[InvocationWrite(a), InvocationWrite(b)])))
    with pytest.raises(ConflictError):
        run(store.commit(CommitUnit(invocations=[bump(b, idempotency_key="ik1")])))
    # moving to a free key frees the old one
    run(store.commit(CommitUnit(invocations=[bump(b, idempotency_key="ik3")])))
    assert run(store.find_idempotent("Counter", "add", "alice", "ik2")) is None
    found = run(store.find_idempotent("Counter", "add", "alice", "ik3"))
    assert found is not None and found.id == "inv_b"


# --- journal and completions -----------------------------------------------------------------


def test_journal_is_append_only_and_ordered(store: Store, run: Run) -> None:
    run(store.commit(CommitUnit(entries=[("inv_1", 2, '"c"'), ("inv_1", 0, '"a"')])))
    run(store.commit(CommitUnit(entries=[("inv_1", 1, '"b"'), ("inv_2", 0, '"x"')])))
    assert run(store.get_journal("inv_1")) == (['"a"', '"b"', '"c"'], [])
    rewrite = CommitUnit(
        invocations=[InvocationWrite(inv("inv_3"))],
        entries=[("inv_1", 3, '"d"'), ("inv_1", 1, '"B"')],
        state=[("Counter", "alice", "n", "1")],
    )
    with pytest.raises(ConflictError):
        run(store.commit(rewrite))
    assert run(store.get_journal("inv_1")) == (['"a"', '"b"', '"c"'], [])
    assert run(store.get_invocation("inv_3")) is None
    assert run(store.get_state("Counter", "alice")) == {}
    assert run(store.get_journal("nobody")) == ([], [])


def test_journals_of_many_invocations_read_at_once(store: Store, run: Run) -> None:
    run(store.commit(CommitUnit(entries=[("inv_1", 1, '"b"'), ("inv_1", 0, '"a"')])))
    run(
        store.commit(
            CommitUnit(
                entries=[("inv_2", 0, '"x"')],
                completions=[("inv_2", 4, '{"index":4}'), ("inv_2", -1, '{"index":-1}')],
            )
        )
    )
    many = [f"inv_m{i}" for i in range(600)]  # more than one SQLite query's worth of ids
    written = many[::7]
    for start in range(0, len(written), 40):  # DynamoDB: at most 100 items a transaction
        run(
            store.commit(
                CommitUnit(entries=[(i, 0, f'"{i}"') for i in written[start : start + 40]])
            )
        )
    ids = ["inv_2", "nobody", "inv_1", "inv_2", *many]
    journals = run(store.get_journals(ids))
    assert list(journals) == list(dict.fromkeys(ids))  # one item per id, in the order given
    assert journals["inv_1"] == (['"a"', '"b"'], [])
    assert journals["inv_2"] == (['"x"'], ['{"index":-1}', '{"index":4}'])
    assert journals["nobody"] == ([], [])
    for i in many:
        assert journals[i] == run(store.get_journal(i))
    assert run(store.get_journals([])) == {}


def test_completions_first_writer_wins(store: Store, run: Run) -> None:
    run(store.commit(CommitUnit(completions=[("inv_1", 3, '{"index":3,"value":1}')])))
    run(
        store.commit(
            CommitUnit(
                completions=[
                    ("inv_1", 3, '{"index":3,"value":2}'),
                    ("inv_1", 1, '{"index":1,"value":"x"}'),
                    ("inv_1", 1, '{"index":1,"value":"y"}'),
                ],
                entries=[("inv_1", 0, "{}")],
            )
        )
    )
    entries, completions = run(store.get_journal("inv_1"))
    assert entries == ["{}"]
    assert completions == ['{"index":1,"value":"x"}', '{"index":3,"value":1}']


def test_a_fresh_completion_must_be_the_first(store: Store, run: Run) -> None:
    """``fresh``: an existing completion is a conflict, and the unit leaves no trace."""
    run(store.commit(CommitUnit(completions=[("inv_1", 3, '{"index":3,"value":1}')])))
    loser = CommitUnit(
        completions=[("inv_1", 3, '{"index":3,"value":2}'), ("inv_1", 5, '{"index":5}')],
        entries=[("inv_1", 0, "{}")],
        state=[("Counter", "alice", "n", "1")],
        fresh=[("inv_1", 3)],
    )
    with pytest.raises(ConflictError, match=r"inv_1\[3\] is already written"):
        run(store.commit(loser))
    assert run(store.get_journal("inv_1")) == ([], ['{"index":3,"value":1}'])
    assert run(store.get_state("Counter", "alice")) == {}
    # a fresh one that is new lands with the rest; non-fresh duplicates stay silent
    run(
        store.commit(
            CommitUnit(
                completions=[("inv_1", 3, '{"index":3,"value":9}'), ("inv_1", 4, '{"index":4}')],
                fresh=[("inv_1", 4)],
            )
        )
    )
    assert run(store.get_journal("inv_1")) == (
        [],
        ['{"index":3,"value":1}', '{"index":4}'],
    )


def test_of_many_fresh_completions_of_one_index_at_once_one_lands(store: Store, run: Run) -> None:
    """Twelve units racing for one fresh completion: one commits, eleven conflict."""

    async def one(i: int) -> str:
        unit = CommitUnit(completions=[("inv_1", 2, f'{{"index":2,"value":{i}}}')])
        unit.fresh.append(("inv_1", 2))
        try:
            await store.commit(unit)
        except ConflictError:
            return "conflict"
        return f"won {i}"

    async def race() -> list[str]:
        return list(await asyncio.gather(*(one(i) for i in range(12))))

    outcomes = run(race())
    (won,) = [o for o in outcomes if o.startswith("won")]
    assert outcomes.count("conflict") == 11, outcomes
    assert run(store.get_journal("inv_1")) == ([], [f'{{"index":2,"value":{won[4:]}}}'])


def test_a_fresh_pair_must_name_one_of_the_units_completions(store: Store, run: Run) -> None:
    unit = CommitUnit(completions=[("inv_1", 1, '{"index":1}')], fresh=[("inv_1", 7)])
    with pytest.raises(ValueError, match="must be one of the unit's completions"):
        run(store.commit(unit))
    doubled = CommitUnit(
        completions=[("inv_1", 1, '{"index":1}'), ("inv_1", 1, '{"index":1}')],
        fresh=[("inv_1", 1)],
    )
    with pytest.raises(ValueError, match="exactly once"):
        run(store.commit(doubled))
    assert run(store.get_journal("inv_1")) == ([], [])


# --- state -----------------------------------------------------------------------------------


def test_state_set_clear_and_clear_all(store: Store, run: Run) -> None:
    run(
        store.commit(
            CommitUnit(
                state=[
                    ("Counter", "alice", "count", "1"),
                    ("Counter", "alice", "name", '"Alice"'),
                    ("Counter", "bob", "count", "7"),
                    ("Other", "alice", "count", "9"),
                ]
            )
        )
    )
    assert run(store.get_state("Counter", "alice")) == {"count": "1", "name": '"Alice"'}
    run(
        store.commit(
            CommitUnit(
                state=[("Counter", "alice", "count", "2"), ("Counter", "alice", "name", None)]
            )
        )
    )
    assert run(store.get_state("Counter", "alice")) == {"count": "2"}
    # applied in list order: clear-all then set leaves only the set
    run(
        store.commit(
            CommitUnit(
                state=[
                    ("Counter", "alice", "a", "1"),
                    ("Counter", "alice", None, None),
                    ("Counter", "alice", "b", "2"),
                    ("Counter", "alice", "missing", None),
                ]
            )
        )
    )
    assert run(store.get_state("Counter", "alice")) == {"b": "2"}
    assert run(store.get_state("Counter", "bob")) == {"count": "7"}
    assert run(store.get_state("Other", "alice")) == {"count": "9"}
    assert run(store.get_state("Counter", "nobody")) == {}


# --- timers ----------------------------------------------------------------------------------


def test_timers_order_replace_and_remove(store: Store, run: Run) -> None:
    t1 = TimerRecord(300, "inv_1", "sleep", 2)
    t2 = TimerRecord(100, "inv_2", "retry", 0)
    t3 = TimerRecord(200, "inv_3", "start", 0)
    t4 = TimerRecord(100, "inv_1", "sleep", 5)
    run(store.commit(CommitUnit(timers_add=[t1, t2, t3, t4])))
    assert run(store.list_timers()) == [t4, t2, t3, t1]
    # same (invocation, kind, index): replaced with the new fire_at
    moved = TimerRecord(50, "inv_1", "sleep", 2)
    run(store.commit(CommitUnit(timers_add=[moved])))
    assert run(store.list_timers()) == [moved, t4, t2, t3]
    # removal ignores fire_at and missing timers
    gone = [TimerRecord(0, "inv_2", "retry", 0), TimerRecord(0, "inv_9", "sleep", 1)]
    run(store.commit(CommitUnit(timers_remove=gone)))
    assert run(store.list_timers()) == [moved, t4, t3]
    # remove then add the same timer in one unit: the new one stays (removes apply first)
    again = TimerRecord(400, "inv_3", "start", 0)
    run(store.commit(CommitUnit(timers_remove=[t3], timers_add=[again])))
    assert run(store.list_timers()) == [moved, t4, again]


# --- listing ---------------------------------------------------------------------------------


def _populate(store: Store, run: Run) -> None:
    records = [
        inv(f"inv_{i:02}", seq=i, status=status, service=service, key=key)
        for i, (status, service, key) in enumerate(
            [
                ("running", "Counter", "alice"),
                ("suspended", "Counter", "bob"),
                ("completed", "Greeter", None),
                ("pending", "Counter", "alice"),
                ("running", "Greeter", None),
                ("backing-off", "Counter", "alice"),
                ("completed", "Counter", "bob"),
                ("killed", "Greeter", None),
            ],
            start=1,
        )
    ]
    # written out of order: listing orders by seq
    run(store.commit(CommitUnit(invocations=[InvocationWrite(r) for r in reversed(records)])))


def _ids(records: list[Any]) -> list[str]:
    return [r.id for r in records]


def test_list_invocations_filters(store: Store, run: Run) -> None:
    _populate(store, run)
    assert _ids(run(store.list_invocations())) == [f"inv_{i:02}" for i in range(1, 9)]
    running = run(store.list_invocations(statuses=["running", "suspended"]))
    assert _ids(running) == ["inv_01", "inv_02", "inv_05"]
    assert _ids(run(store.list_invocations(statuses=[]))) == []
    assert _ids(run(store.list_invocations(service="Greeter"))) == ["inv_03", "inv_05", "inv_08"]
    alice = run(store.list_invocations(service="Counter", key="alice"))
    assert _ids(alice) == ["inv_01", "inv_04", "inv_06"]
    alice_active = run(
        store.list_invocations(service="Counter", key="alice", statuses=("pending", "running"))
    )
    assert _ids(alice_active) == ["inv_01", "inv_04"]
    assert _ids(run(store.list_invocations(key="bob"))) == ["inv_02", "inv_07"]
    assert run(store.list_invocations(service="Nobody")) == []
    assert run(store.list_invocations(limit=0)) == []


def test_list_invocations_cursor_paging(store: Store, run: Run) -> None:
    _populate(store, run)
    seen: list[str] = []
    cursor = -1
    while True:
        page = run(store.list_invocations(after_seq=cursor, limit=3))
        if not page:
            break
        assert len(page) <= 3
        seen.extend(_ids(page))
        cursor = page[-1].seq
    assert seen == [f"inv_{i:02}" for i in range(1, 9)]
    page = run(store.list_invocations(statuses=["completed", "killed"], after_seq=3, limit=1))
    assert _ids(page) == ["inv_07"]


def test_list_invocations_newest_first(store: Store, run: Run) -> None:
    _populate(store, run)
    newest = run(store.list_invocations(newest_first=True))
    assert _ids(newest) == [f"inv_{i:02}" for i in range(8, 0, -1)]
    done = run(store.list_invocations(statuses=["completed"], newest_first=True))
    assert _ids(done) == ["inv_07", "inv_03"]
    alice = run(store.list_invocations(service="Counter", key="alice", newest_first=True))
    assert _ids(alice) == ["inv_06", "inv_04", "inv_01"]
    assert _ids(run(store.list_invocations(newest_first=True, after_seq=5))) == [
        "inv_08",
        "inv_07",
        "inv_06",
    ]


def _walk(store: Store, run: Run, newest_first: bool, limit: int, **filters: Any) -> list[str]:
    """Page with the keyset cursor (the last record's (seq, id)) until a short page."""
    seen: list[str] = []
    after: tuple[int, str] | None = None
    while True:
        page = run(
            store.list_invocations(after=after, limit=limit, newest_first=newest_first, **filters)
        )
        seen.extend(_ids(page))
        if len(page) < limit:
            return seen
        after = (page[-1].seq, page[-1].id)


def test_keyset_paging_neither_skips_nor_repeats_where_seqs_repeat(store: Store, run: Run) -> None:
    # two processes may give out the same seq: the (seq, id) cursor still pages exactly
    records = [inv(f"inv_{i:02}", seq=i // 3, key=f"k{i}") for i in range(10)]
    run(store.commit(CommitUnit(invocations=[InvocationWrite(r) for r in records])))
    ascending = [r.id for r in records]
    for limit in (1, 2, 3, 4, 20):
        assert _walk(store, run, False, limit) == ascending
        assert _walk(store, run, True, limit) == ascending[::-1]
    assert _walk(store, run, True, 2, key="k4") == ["inv_04"]
    # after_seq still applies in both orders, even past the cursor
    assert _ids(run(store.list_invocations(after=(1, "inv_05"), after_seq=0))) == [
        "inv_06",
        "inv_07",
        "inv_08",
        "inv_09",
    ]
    below = run(store.list_invocations(after=(2, "inv_07"), after_seq=1, newest_first=True))
    assert _ids(below) == ["inv_06"]
    assert run(store.list_invocations(after=(1, "inv_05"), after_seq=2, newest_first=True)) == []


def test_newest_first_walk_ignores_invocations_that_arrive_during_it(
    store: Store, run: Run
) -> None:
    _populate(store, run)
    first = run(store.list_invocations(newest_first=True, limit=3))
    assert _ids(first) == ["inv_08", "inv_07", "inv_06"]
    late = inv("inv_99", seq=99, key="late")
    run(store.commit(CommitUnit(invocations=[InvocationWrite(late)])))
    rest = run(store.list_invocations(newest_first=True, after=(first[-1].seq, first[-1].id)))
    assert _ids(rest) == ["inv_05", "inv_04", "inv_03", "inv_02", "inv_01"]
    assert _ids(run(store.list_invocations(newest_first=True, limit=1))) == ["inv_99"]


def test_scan_gives_every_invocation_once_even_where_seqs_repeat(store: Store, run: Run) -> None:
    """Two processes may give out the same seq: a scan must neither skip nor repeat those
    sharing a seq across a page boundary, nor stop where one seq fills a page."""
    seqs = [1, 2, 2, 3, 3, 3, 3, 3, 4, 5, 5]
    records = [inv(f"inv_{n:02}", seq=seq) for n, seq in enumerate(seqs)]
    run(store.commit(CommitUnit(invocations=[InvocationWrite(r) for r in records])))

    async def scan(page: int) -> list[str]:
        return [rec.id async for rec in store.scan_invocations(page=page)]

    for page in (1, 2, 3, 4, 100):
        assert run(scan(page)) == [r.id for r in records], page


def test_count_invocations_and_timers(store: Store, run: Run) -> None:
    assert run(store.count_invocations()) == dict.fromkeys(STATUSES, 0)
    assert run(store.count_timers()) == 0
    _populate(store, run)
    counts = run(store.count_invocations())
    assert set(counts) == set(STATUSES)
    assert {s: n for s, n in counts.items() if n} == {
        "running": 2,
        "suspended": 1,
        "completed": 2,
        "pending": 1,
        "backing-off": 1,
        "killed": 1,
    }
    assert run(store.count_invocations(cap=1))["running"] == 1  # capped: "at least"
    timers = [TimerRecord(1000 + i, f"inv_{i:02}", "sleep", 1) for i in (1, 2)]
    run(store.commit(CommitUnit(timers_add=timers)))
    assert run(store.count_timers()) == 2


def test_max_seq(store: Store, run: Run) -> None:
    assert run(store.max_seq()) == 0
    _populate(store, run)
    assert run(store.max_seq()) == 8


# --- purge -----------------------------------------------------------------------------------


def test_purge_removes_an_invocation_and_what_hangs_off_it(store: Store, run: Run) -> None:
    target = inv("inv_1", idempotency_key="ik")
    keep = inv("inv_2", seq=2)
    run(
        store.commit(
            CommitUnit(
                invocations=[InvocationWrite(target), InvocationWrite(keep)],
                entries=[("inv_1", 0, "{}"), ("inv_1", 1, "{}"), ("inv_2", 0, "{}")],
                completions=[("inv_1", 1, "{}")],
                state=[("Counter", "alice", "n", "1")],
                timers_add=[TimerRecord(5, "inv_1", "sleep", 1), TimerRecord(6, "inv_2", "retry")],
            )
        )
    )
    run(store.commit(CommitUnit(purge=["inv_1", "inv_never"])))
    assert run(store.get_invocation("inv_1")) is None
    assert run(store.get_journal("inv_1")) == ([], [])
    assert run(store.list_timers()) == [TimerRecord(6, "inv_2", "retry")]
    assert run(store.find_idempotent("Counter", "add", "alice", "ik")) is None
    assert run(store.get_state("Counter", "alice")) == {"n": "1"}  # object state stays
    assert run(store.get_invocation("inv_2")) == keep
    # the idempotency key is free again
    run(store.commit(CommitUnit(invocations=[InvocationWrite(inv("inv_3", idempotency_key="ik"))])))


# --- deployments -----------------------------------------------------------------------------


def test_deployments_crud(store: Store, run: Run) -> None:
    assert run(store.list_deployments()) == []
    b = DeploymentRecord("dp_b", "http://b", '[{"name": "Greeter"}]', 2000)
    a = DeploymentRecord("dp_a", "arn:aws:lambda:eu-west-1:1:function:f", "[]", 1000)
    run(store.put_deployment(b))
    run(store.put_deployment(a))
    assert run(store.list_deployments()) == [a, b]
    b2 = dataclasses.replace(b, uri="http://b2")
    run(store.put_deployment(b2))
    assert run(store.list_deployments()) == [a, b2]
    assert run(store.delete_deployment("dp_a")) is True
    assert run(store.delete_deployment("dp_a")) is False
    assert run(store.list_deployments()) == [b2]


# --- concurrency -----------------------------------------------------------------------------


def test_a_conflicting_unit_does_not_affect_its_siblings(store: Store, run: Run) -> None:
    """200 concurrent commits, every 10th designed to conflict (a stale version, an entry
    already written, a taken idempotency key): exactly those fail, all others land whole."""
    base = inv("inv_base", idempotency_key="taken", seq=0)
    run(store.commit(CommitUnit(invocations=[InvocationWrite(base)], entries=[("base", 0, "{}")])))

    def unit(i: int) -> CommitUnit:
        own = f"inv_{i:03}"
        parts = CommitUnit(
            invocations=[InvocationWrite(inv(own, seq=i + 1, key=f"k{i}"))],
            entries=[(own, 0, f'"{i}"'), (own, 1, "{}")],
            completions=[(own, 1, f'"{i}"')],
            state=[("Counter", f"k{i}", "n", str(i))],
            timers_add=[TimerRecord(i, own, "sleep", 1)],
        )
        if i % 30 == 0:
            stale = dataclasses.replace(base, version=8)
            parts.invocations.append(InvocationWrite(stale, expect_version=7))
        elif i % 30 == 10:
            parts.entries.append(("base", 0, "{}"))
        elif i % 30 == 20:
            parts.invocations.append(
                InvocationWrite(inv(f"inv_dup{i}", idempotency_key="taken", seq=0))
            )
        return parts

    async def commit(i: int) -> bool:
        try:
            await store.commit(unit(i))
        except ConflictError:
            return False
        return True

    async def body() -> list[bool]:
        return await asyncio.gather(*(commit(i) for i in range(200)))

    outcomes = run(body())
    assert [i for i, ok in enumerate(outcomes) if not ok] == [i for i in range(200) if i % 10 == 0]
    for i, ok in enumerate(outcomes):
        own = f"inv_{i:03}"
        present = run(store.get_invocation(own)) is not None
        assert present is ok
        assert run(store.get_journal(own)) == (([f'"{i}"', "{}"], [f'"{i}"']) if ok else ([], []))
        assert run(store.get_state("Counter", f"k{i}")) == ({"n": str(i)} if ok else {})
    assert len(run(store.list_timers())) == 180
    assert run(store.get_invocation("inv_base")) == base
    assert run(store.get_journal("base")) == (["{}"], [])


def test_list_expired_finds_terminal_invocations_past_their_expiry(store: Store, run: Run) -> None:
    """By ``expires_at``, not by when they finished: a service may keep its own longer."""
    records = [
        inv("inv_a", seq=1, status="completed", expires_at=100, result='{"value":1}'),
        inv("inv_b", seq=2, status="killed", expires_at=50, result='{"value":2}'),
        inv("inv_c", seq=3, status="completed", expires_at=300, result='{"value":3}'),
        inv("inv_d", seq=4, status="running", modified_at=10),
        inv("inv_e", seq=5, status="paused", modified_at=10),
        # finished first, kept longest: listed last
        inv("inv_f", seq=6, status="completed", modified_at=1, expires_at=5000, result="{}"),
    ]
    run(store.commit(CommitUnit(invocations=[InvocationWrite(r) for r in records])))
    assert _ids(run(store.list_expired(200))) == ["inv_b", "inv_a"]
    assert _ids(run(store.list_expired(200, limit=1))) == ["inv_b"]
    assert run(store.list_expired(50)) == []
    assert _ids(run(store.list_expired(300))) == ["inv_b", "inv_a"]
    assert _ids(run(store.list_expired(10_000))) == ["inv_b", "inv_a", "inv_c", "inv_f"]


# --- partitions and expiry -------------------------------------------------------------------
# A store keeps whatever partition number a record carries: ``partitions`` only informs the
# orchestrator, so these tests use partitions 1..3 whatever the store was created with.


def test_partition_and_expires_at_round_trip(store: Store, run: Run) -> None:
    assert isinstance(store.partitions, int) and store.partitions >= 1
    record = inv(partition=3, status="completed", expires_at=1_700_000_900_000)
    timer = TimerRecord(10, "inv_1", "retry", 0, partition=3)
    run(store.commit(CommitUnit(invocations=[InvocationWrite(record)], timers_add=[timer])))
    assert run(store.get_invocation("inv_1")) == record
    assert run(store.list_timers()) == [timer]
    moved = bump(record, expires_at=None)
    run(store.commit(CommitUnit(invocations=[moved])))
    assert run(store.get_invocation("inv_1")) == moved.record
    # replacing a timer replaces its partition too
    again = TimerRecord(20, "inv_1", "retry", 0, partition=2)
    run(store.commit(CommitUnit(timers_add=[again])))
    assert run(store.list_timers()) == [again]


def test_list_invocations_by_partition(store: Store, run: Run) -> None:
    records = [
        inv(f"inv_{i}", seq=i, partition=i % 3, key=f"k{i}", status=status)
        for i, status in enumerate(
            ["running", "suspended", "completed", "pending", "killed", "running", "backing-off"]
        )
    ]
    run(store.commit(CommitUnit(invocations=[InvocationWrite(r) for r in reversed(records)])))
    assert _ids(run(store.list_invocations(partition=0))) == ["inv_0", "inv_3", "inv_6"]
    assert _ids(run(store.list_invocations(partition=1))) == ["inv_1", "inv_4"]
    assert _ids(run(store.list_invocations(partition=3))) == []
    active = ["pending", "scheduled", "running", "suspended", "backing-off", "paused"]
    assert _ids(run(store.list_invocations(partition=2, statuses=active))) == ["inv_5"]
    assert _ids(run(store.list_invocations(partition=0, statuses=active))) == [
        "inv_0",
        "inv_3",
        "inv_6",
    ]
    page = run(store.list_invocations(partition=0, after_seq=0, limit=1, service="Counter"))
    assert _ids(page) == ["inv_3"]
    assert _ids(run(store.list_invocations(partition=0, key="k6"))) == ["inv_6"]


def test_list_timers_by_partition(store: Store, run: Run) -> None:
    timers = [
        TimerRecord(30, "inv_a", "sleep", 1, partition=1),
        TimerRecord(10, "inv_b", "retry", 0, partition=2),
        TimerRecord(20, "inv_c", "start", 0, partition=1),
        TimerRecord(5, "inv_d", "sleep", 2),
    ]
    run(store.commit(CommitUnit(timers_add=timers)))
    assert run(store.list_timers(partition=1)) == [timers[2], timers[0]]
    assert run(store.list_timers(partition=2)) == [timers[1]]
    assert run(store.list_timers(partition=0)) == [timers[3]]
    assert run(store.list_timers(partition=3)) == []
    assert run(store.list_timers()) == [timers[3], timers[1], timers[2], timers[0]]


def test_list_expired_by_partition(store: Store, run: Run) -> None:
    records = [
        inv("inv_a", seq=1, status="completed", expires_at=100, partition=1),
        inv("inv_b", seq=2, status="killed", expires_at=50, partition=2),
        inv("inv_c", seq=3, status="completed", expires_at=30, partition=1),
        inv("inv_d", seq=4, status="running", modified_at=10, partition=1),
    ]
    run(store.commit(CommitUnit(invocations=[InvocationWrite(r) for r in records])))
    assert _ids(run(store.list_expired(200, partition=1))) == ["inv_c", "inv_a"]
    assert _ids(run(store.list_expired(200, partition=1, limit=1))) == ["inv_c"]
    assert _ids(run(store.list_expired(200, partition=2))) == ["inv_b"]
    assert run(store.list_expired(200, partition=0)) == []
    assert _ids(run(store.list_expired(200))) == ["inv_c", "inv_b", "inv_a"]


# --- leases ----------------------------------------------------------------------------------
# Timeline of one partition's lease as these tests drive it:
#   claim(None) by A -> (A, epoch 1, v1); renew -> v2; claim by B expecting v2 -> (B, epoch 2,
#   v3); A's renewal or fenced commit now fails with FencedError; B releases -> (None, 2, v4);
#   a claim expecting v4 -> epoch 3.


def test_claim_a_lease(store: Store, run: Run) -> None:
    assert run(store.list_leases()) == []
    a = run(store.claim_lease(0, "node-a", None, 1000))
    assert a == LeaseRecord(0, "node-a", 1, 1, 1000)
    assert run(store.list_leases()) == [a]
    # claiming as if it were never claimed, or with a stale view, conflicts
    with pytest.raises(ConflictError):
        run(store.claim_lease(0, "node-b", None, 1100))
    renewed = run(store.renew_lease(a, 1200))
    with pytest.raises(ConflictError):
        run(store.claim_lease(0, "node-b", a, 1300))
    assert run(store.list_leases()) == [renewed]
    # a claim with the current view takes over: next epoch
    b = run(store.claim_lease(0, "node-b", renewed, 1400))
    assert b == LeaseRecord(0, "node-b", 2, 3, 1400)
    other = run(store.claim_lease(2, "node-a", None, 1500))
    assert run(store.list_leases()) == [b, other]


def test_claim_a_released_lease(store: Store, run: Run) -> None:
    a = run(store.claim_lease(0, "node-a", None, 1000))
    run(store.release_lease(a, 1100))
    (released,) = run(store.list_leases())
    assert released == LeaseRecord(0, None, 1, 2, 1100)
    with pytest.raises(ConflictError):
        run(store.claim_lease(0, "node-a", a, 1200))  # stale: the release moved it
    again = run(store.claim_lease(0, "node-a", released, 1200))
    assert again == LeaseRecord(0, "node-a", 2, 3, 1200)


def test_renew_a_lease(store: Store, run: Run) -> None:
    a = run(store.claim_lease(0, "node-a", None, 1000))
    r1 = run(store.renew_lease(a, 1100))
    assert r1 == LeaseRecord(0, "node-a", 1, 2, 1100)
    # a renewal from the older version (one that landed but reported a failure) still works
    r2 = run(store.renew_lease(a, 1200))
    assert r2 == LeaseRecord(0, "node-a", 1, 3, 1200)
    assert run(store.list_leases()) == [r2]
    run(store.claim_lease(0, "node-b", r2, 1300))
    with pytest.raises(FencedError) as caught:
        run(store.renew_lease(r2, 1400))
    assert caught.value.partition == 0
    with pytest.raises(FencedError):
        run(store.renew_lease(LeaseRecord(5, "node-a", 1, 1, 0), 1400))  # never claimed


def test_release_a_lease(store: Store, run: Run) -> None:
    a = run(store.claim_lease(0, "node-a", None, 1000))
    run(store.release_lease(a, 1100))
    with pytest.raises(FencedError):
        run(store.renew_lease(a, 1200))
    run(store.release_lease(a, 1300))  # already released: nothing happens
    assert run(store.list_leases()) == [LeaseRecord(0, None, 1, 2, 1100)]
    # releasing a lease lost to another node does nothing
    (released,) = run(store.list_leases())
    b = run(store.claim_lease(0, "node-b", released, 1400))
    run(store.release_lease(a, 1500))
    run(store.release_lease(dataclasses.replace(b, owner="node-a"), 1500))
    assert run(store.list_leases()) == [b]
    run(store.release_lease(LeaseRecord(7, "node-a", 1, 1, 0), 1500))  # never claimed
    assert run(store.list_leases()) == [b]


# --- fences ----------------------------------------------------------------------------------


def _everything(own: str, partition: int, fences: list[tuple[int, int]]) -> CommitUnit:
    """A unit touching every part of the store, fenced by ``fences``."""
    return CommitUnit(
        invocations=[InvocationWrite(inv(own, key=own, partition=partition))],
        entries=[(own, 0, "{}")],
        completions=[(own, 1, "{}")],
        state=[("Counter", own, "n", "1")],
        timers_add=[TimerRecord(10, own, "sleep", 1, partition=partition)],
        notify=[(partition, own)],
        fences=fences,
    )


def _assert_nothing_of(store: Store, run: Run, own: str, partition: int) -> None:
    assert run(store.get_invocation(own)) is None
    assert run(store.get_journal(own)) == ([], [])
    assert run(store.get_state("Counter", own)) == {}
    assert [t for t in run(store.list_timers()) if t.invocation_id == own] == []
    assert [m for m in run(store.read_inbox(partition)) if m[1] == own] == []


def test_a_fence_at_the_current_epoch_commits(store: Store, run: Run) -> None:
    lease = run(store.claim_lease(0, "node-a", None, 1000))
    lease = run(store.renew_lease(lease, 1100))  # the version moves, the epoch does not
    run(store.commit(_everything("inv_1", 0, [(0, lease.epoch)])))
    assert run(store.get_invocation("inv_1")) == inv("inv_1", key="inv_1")
    assert run(store.get_journal("inv_1")) == (["{}"], ["{}"])
    assert [m[1] for m in run(store.read_inbox(0))] == ["inv_1"]


def test_a_stale_fence_writes_nothing(store: Store, run: Run) -> None:
    a = run(store.claim_lease(1, "node-a", None, 1000))
    other = run(store.claim_lease(2, "node-a", None, 1000))
    run(store.claim_lease(1, "node-b", a, 1100))
    run(store.commit(CommitUnit(invocations=[InvocationWrite(inv("inv_0", partition=1))])))
    unit = _everything("inv_1", 1, [(2, other.epoch), (1, a.epoch)])
    unit.invocations.insert(0, bump(inv("inv_0", partition=1), status="completed"))
    unit.purge.append("inv_0")
    with pytest.raises(FencedError) as caught:
        run(store.commit(unit))
    assert isinstance(caught.value, ConflictError)
    assert caught.value.partition == 1
    _assert_nothing_of(store, run, "inv_1", 1)
    assert run(store.get_invocation("inv_0")) == inv("inv_0", partition=1)  # not purged


def test_a_released_or_unclaimed_partition_fails_the_fence(store: Store, run: Run) -> None:
    lease = run(store.claim_lease(0, "node-a", None, 1000))
    run(store.release_lease(lease, 1100))
    with pytest.raises(FencedError) as caught:
        run(store.commit(_everything("inv_1", 0, [(0, lease.epoch)])))
    assert caught.value.partition == 0
    _assert_nothing_of(store, run, "inv_1", 0)
    with pytest.raises(FencedError) as caught:
        run(store.commit(_everything("inv_2", 3, [(3, 1)])))
    assert caught.value.partition == 3
    _assert_nothing_of(store, run, "inv_2", 3)
    with pytest.raises(FencedError):
        run(store.commit(_everything("inv_3", 3, [(3, 0)])))
    _assert_nothing_of(store, run, "inv_3", 3)


def test_fenced_units_do_not_affect_their_siblings(store: Store, run: Run) -> None:
    lease = run(store.claim_lease(0, "node-a", None, 1000))

    async def commit(i: int) -> bool:
        epoch = lease.epoch if i % 3 else lease.epoch + 1
        try:
            await store.commit(_everything(f"inv_{i:02}", 0, [(0, epoch)]))
        except FencedError:
            return False
        return True

    async def body() -> list[bool]:
        return await asyncio.gather(*(commit(i) for i in range(30)))

    outcomes = run(body())
    assert [i for i, ok in enumerate(outcomes) if not ok] == list(range(0, 30, 3))
    inbox = [m[1] for m in run(store.read_inbox(0))]
    assert sorted(inbox) == [f"inv_{i:02}" for i in range(30) if i % 3]
    for i in range(0, 30, 3):
        _assert_nothing_of(store, run, f"inv_{i:02}", 0)


# --- inbox -----------------------------------------------------------------------------------


def test_inbox_oldest_first_limit_and_ack(store: Store, run: Run) -> None:
    assert run(store.read_inbox(0)) == []
    run(store.commit(CommitUnit(notify=[(1, "inv_a"), (2, "inv_x"), (1, "inv_b")])))
    run(store.commit(CommitUnit(notify=[(1, "inv_c"), (1, "inv_a")])))  # not deduplicated
    messages = run(store.read_inbox(1))
    assert [m[1] for m in messages] == ["inv_a", "inv_b", "inv_c", "inv_a"]
    assert len({m[0] for m in messages}) == 4 and all(isinstance(m[0], str) for m in messages)
    assert run(store.read_inbox(1, limit=2)) == messages[:2]
    assert [m[1] for m in run(store.read_inbox(2))] == ["inv_x"]
    assert run(store.read_inbox(0)) == []
    # acknowledged messages go; unknown ids (and ids of another partition) are ignored
    x_id = run(store.read_inbox(2))[0][0]
    run(store.ack_inbox(1, [messages[0][0], messages[2][0], "no-such-id", x_id]))
    assert run(store.read_inbox(1)) == [messages[1], messages[3]]
    assert [m[1] for m in run(store.read_inbox(2))] == ["inv_x"]
    run(store.ack_inbox(1, []))
    run(store.ack_inbox(1, [messages[0][0]]))  # again: nothing happens
    # new messages come after the remaining ones, and never reuse an acknowledged id
    run(store.ack_inbox(1, [messages[1][0], messages[3][0]]))
    run(store.commit(CommitUnit(notify=[(1, "inv_d")])))
    (latest,) = run(store.read_inbox(1))
    assert latest[1] == "inv_d" and latest[0] not in {m[0] for m in messages}


def test_a_fenced_ack_deletes_only_while_the_lease_is_held(store: Store, run: Run) -> None:
    run(store.commit(CommitUnit(notify=[(1, "inv_a"), (1, "inv_b")])))
    ids = [m[0] for m in run(store.read_inbox(1))]
    with pytest.raises(FencedError):  # never claimed
        run(store.ack_inbox(1, ids[:1], 1))
    first = run(store.claim_lease(1, "a", None, 1))
    second = run(store.claim_lease(1, "b", first, 2))
    with pytest.raises(FencedError) as info:  # a's epoch is stale
        run(store.ack_inbox(1, ids, first.epoch))
    assert info.value.partition == 1
    assert [m[0] for m in run(store.read_inbox(1))] == ids  # nothing deleted
    run(store.ack_inbox(1, ids[:1], second.epoch))
    assert [m[0] for m in run(store.read_inbox(1))] == ids[1:]
    run(store.release_lease(second, 3))
    with pytest.raises(FencedError):  # released: held by nobody
        run(store.ack_inbox(1, ids[1:], second.epoch))
    assert [m[0] for m in run(store.read_inbox(1))] == ids[1:]


def test_a_conflicting_unit_leaves_no_message(store: Store, run: Run) -> None:
    run(store.commit(CommitUnit(entries=[("inv_1", 0, "{}")])))
    unit = CommitUnit(entries=[("inv_1", 0, "{}")], notify=[(0, "inv_1")])
    with pytest.raises(ConflictError):
        run(store.commit(unit))
    assert run(store.read_inbox(0)) == []


# --- members ---------------------------------------------------------------------------------


def test_heartbeat_list_and_remove_members(store: Store, run: Run) -> None:
    assert run(store.list_members()) == []
    run(store.heartbeat("node-b", "10.0.0.2:8080", 1000))
    run(store.heartbeat("node-a", "10.0.0.1:8080", 1100))
    assert run(store.list_members()) == [
        MemberRecord("node-a", "10.0.0.1:8080", 1100, 1),
        MemberRecord("node-b", "10.0.0.2:8080", 1000, 1),
    ]
    run(store.heartbeat("node-b", "10.0.0.3:8080", 2000))
    assert run(store.list_members())[1] == MemberRecord("node-b", "10.0.0.3:8080", 2000, 2)
    run(store.remove_member("node-a"))
    run(store.remove_member("node-z"))  # missing is fine
    assert run(store.list_members()) == [MemberRecord("node-b", "10.0.0.3:8080", 2000, 2)]
