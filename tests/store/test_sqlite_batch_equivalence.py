"""Group commit is invisible: a sequence of commit units (and the lease claims and inbox acks
queued between them) run as ONE writer batch gives exactly what committing them one at a time,
in order, gives: the same outcome for every job (None, a value, or the same exception type)
and the same database, row for row, in every table (inbox message ids and sqlite_sequence
included).

Store A runs the sequence as one batch. With the writer thread, the thread is held by a
blocking job while every job is queued, then released, so all of them are taken in one batch;
with the writer process (the default), every job is submitted in one loop iteration, so they
reach the child as one frame (checked either way: exactly one transaction holds them). Store B
awaits each job before queueing the next. Both start from the same seed (``_seed``). The
generator (``plans``) aims at what a batched writer could get wrong: chains of updates of one
invocation across units (right and wrong expected versions), inserts of existing ids and
colliding idempotency keys, insert-then-update in later units, duplicate journal entries and
completions across units, state sets and clears on overlapping names, timers added, removed and
re-added across units, notifies, fences at right and wrong epochs with lease claims queued
between units, purges, and units that fail after writing.
"""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from ritornello.store import (
    CommitUnit,
    InvocationWrite,
    LeaseRecord,
    TimerRecord,
)
from ritornello.store._sqlite_thread import ConnectionThread
from ritornello.store.sqlite import SqliteStore, Writer
from tests.store.conftest import inv

IDS = ["inv_a", "inv_b", "inv_c", "inv_d"]  # inv_a and inv_b exist after _seed
SERVICES = ["Counter", "Greeter"]
KEYS: list[str | None] = [None, "alice"]
IDEMPOTENCY = [None, None, None, "k1", "k2"]
STATUSES = ["running", "suspended", "completed"]
STATE_KEYS = ["alice", "bob"]
STATE_NAMES = ["count", "name"]
TEXTS = ['"x"', "1", '{"é": 2}', "null"]
TIMER_NAMES = [(i, kind, n) for i in IDS[:3] for kind in ("sleep", "retry") for n in (0, 1)]
NOW = 1_700_000_000_000

# The leases after _seed: partition -> (owner, epoch); partition 2 was never claimed,
# partition 3 is released at epoch 1.
LEASES: dict[int, tuple[str | None, int]] = {0: ("node-a", 1), 1: ("node-b", 2), 3: (None, 1)}
PARTITIONS = [0, 1, 2, 3]

# A job of a plan: ("unit", CommitUnit), ("claim", (partition, owner, expect)),
# ("ack", (partition, message ids, epoch)).
Job = tuple[str, Any]


async def _seed(store: SqliteStore) -> None:
    """Two invocations, journal entries, a completion, object state, timers, an inbox message
    and leases (0 held at epoch 1, 1 held at epoch 2, 3 released at epoch 1)."""
    await store.claim_lease(0, "node-a", None, NOW)
    first = await store.claim_lease(1, "node-a", None, NOW)
    await store.claim_lease(1, "node-b", first, NOW + 1)
    third = await store.claim_lease(3, "node-a", None, NOW)
    await store.release_lease(third, NOW + 2)
    await store.commit(
        CommitUnit(
            invocations=[
                InvocationWrite(inv("inv_a", idempotency_key="k1", seq=1)),
                InvocationWrite(inv("inv_b", service="Greeter", key=None, seq=2, partition=1)),
            ],
            entries=[("inv_a", 0, '"in"'), ("inv_b", 0, '"in"'), ("inv_a", 1, '"call"')],
            completions=[("inv_a", 1, '"done"')],
            state=[("Counter", "alice", "count", "1"), ("Counter", "alice", "name", '"x"')],
            timers_add=[TimerRecord(5, "inv_a", "sleep", 1), TimerRecord(7, "inv_b", "retry", 0)],
            notify=[(1, "inv_b")],
        )
    )


@st.composite
def plans(draw: st.DrawFn) -> list[Job]:
    """A sequence of jobs, mostly units. A rough model (every job assumed to succeed) steers
    expected versions, fences and re-used names towards the interesting values."""
    versions = {"inv_a": 1, "inv_b": 1}  # the version each id would have if all succeeded
    leases = dict(LEASES)
    lease_versions = {0: 1, 1: 2, 3: 2}
    written = [("inv_a", 0), ("inv_b", 0), ("inv_a", 1)]  # journal positions
    jobs: list[Job] = []
    for _ in range(draw(st.integers(1, 10))):
        kind = draw(st.sampled_from(["unit"] * 8 + ["claim", "ack"]))
        if kind == "claim":
            partition = draw(st.sampled_from(PARTITIONS))
            stale = draw(st.booleans()) and draw(st.booleans())
            seen = None
            if partition in leases and not stale:
                holder, epoch = leases[partition]
                seen = LeaseRecord(partition, holder, epoch, lease_versions[partition], 0)
            owner = draw(st.sampled_from(["node-a", "node-b"]))
            jobs.append(("claim", (partition, owner, seen)))
            if not stale:
                leases[partition] = (owner, leases.get(partition, (None, 0))[1] + 1)
                lease_versions[partition] = lease_versions.get(partition, 0) + 1
            continue
        if kind == "ack":
            partition = draw(st.sampled_from(PARTITIONS))
            messages = draw(st.lists(st.sampled_from(["1", "2", "3", "4"]), min_size=1, max_size=2))
            at_epoch = draw(st.none() | st.sampled_from([leases.get(partition, (None, 0))[1], 0]))
            jobs.append(("ack", (partition, messages, at_epoch)))
            continue

        unit = CommitUnit()
        for _ in range(draw(st.sampled_from([0, 0, 0, 1, 1, 2]))):
            partition = draw(st.sampled_from([0, 0, 1, 1, 2, 3]))
            right = leases.get(partition, (None, 0))[1]
            unit.fences.append((partition, draw(st.sampled_from([right] * 4 + [right + 1, 0]))))
        if draw(st.sampled_from([False] * 14 + [True])):
            unit.purge.append(id := draw(st.sampled_from(IDS)))
            versions.pop(id, None)
        for _ in range(draw(st.sampled_from([0, 1, 1, 1, 2]))):
            how = draw(st.sampled_from(["insert", "update", "update", "update", "stale"]))
            if how == "update" and versions:
                id = draw(st.sampled_from(sorted(versions)))
                expect: int | None = versions[id]
            else:
                id = draw(st.sampled_from(IDS))
                expect = None if how == "insert" else draw(st.integers(0, 4))
            record = inv(
                id,
                service=draw(st.sampled_from(SERVICES)),
                key=draw(st.sampled_from(KEYS)),
                status=draw(st.sampled_from(STATUSES)),
                seq=draw(st.integers(0, 9)),
                modified_at=NOW + draw(st.integers(0, 9)),
                journal_len=draw(st.integers(1, 4)),
                waiting=tuple(draw(st.lists(st.integers(0, 5), max_size=2))),
                idempotency_key=draw(st.sampled_from(IDEMPOTENCY)),
                result=draw(st.none() | st.sampled_from(TEXTS)),
                next_at=draw(st.none() | st.integers(0, 9)),
                partition=draw(st.sampled_from(PARTITIONS)),
                version=1 if expect is None else expect + 1,
            )
            unit.invocations.append(InvocationWrite(record, expect))
            if expect is None:
                versions.setdefault(id, 1)
            else:
                versions[id] = expect + 1
        for _ in range(draw(st.sampled_from([0, 0, 1, 2]))):
            id = draw(st.sampled_from(IDS))
            at = (id, 1 + max((n for i, n in written if i == id), default=-1))
            if draw(st.sampled_from([False] * 4 + [True])):
                at = draw(st.sampled_from(written))  # a duplicate: a conflict
            unit.entries.append((*at, draw(st.sampled_from(TEXTS))))
            written.append(at)
        for _ in range(draw(st.sampled_from([0, 0, 1, 2]))):
            at = (draw(st.sampled_from(IDS[:3])), draw(st.integers(0, 2)))
            unit.completions.append((*at, draw(st.sampled_from(TEXTS))))
        for _ in range(draw(st.sampled_from([0, 0, 1, 2, 3]))):
            service = draw(st.sampled_from(SERVICES))
            key = draw(st.sampled_from(STATE_KEYS))
            name = draw(st.sampled_from([None, *STATE_NAMES, *STATE_NAMES]))
            value = None if name is None else draw(st.none() | st.sampled_from(TEXTS))
            unit.state.append((service, key, name, value))
        for timers in (unit.timers_remove, unit.timers_add):
            for _ in range(draw(st.sampled_from([0, 0, 1, 2]))):
                id, timer_kind, index = draw(st.sampled_from(TIMER_NAMES))
                fire_at = draw(st.integers(0, 9))
                partition = draw(st.sampled_from([0, 1]))
                timers.append(TimerRecord(fire_at, id, timer_kind, index, partition))
        for _ in range(draw(st.sampled_from([0, 0, 1, 2]))):
            unit.notify.append((draw(st.sampled_from([0, 1])), draw(st.sampled_from(IDS))))
        jobs.append(("unit", unit))
    return jobs


def _start(store: SqliteStore, job: Job) -> Awaitable[Any]:
    kind, arg = job
    if kind == "unit":
        return store.commit(arg)
    if kind == "claim":
        partition, owner, expect = arg
        return store.claim_lease(partition, owner, expect, NOW + 100)
    partition, messages, epoch = arg
    return store.ack_inbox(partition, messages, epoch)


def _outcome(result: Any) -> Any:
    """What a job's caller learns: its value, or its exception's type (and fenced partition)."""
    if isinstance(result, BaseException):
        return (type(result).__name__, getattr(result, "partition", None))
    return result


async def _one_batch(store: SqliteStore, jobs: list[Job]) -> list[Any]:
    """Run ``jobs`` in one writer batch."""
    if store.writer == "process":  # all submitted in this iteration: one frame, one batch
        before = store.transactions
        tasks = [asyncio.ensure_future(_start(store, job)) for job in jobs]
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert store.transactions - before == 1, store.transactions - before
        return [_outcome(r) for r in results]
    # the thread: hold the writer, queue them all, release it
    writer = store._thread(True)
    assert isinstance(writer, ConnectionThread)
    started, release = threading.Event(), threading.Event()

    def hold(cur: sqlite3.Cursor, _: None) -> None:
        started.set()
        assert release.wait(30)

    held: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    writer.submit(hold, None, held)
    assert await asyncio.to_thread(started.wait, 30)
    before = store.transactions
    try:
        tasks = [asyncio.ensure_future(_start(store, job)) for job in jobs]
        for _ in range(10):  # each job is queued at its task's first step
            if writer._queue.qsize() >= len(jobs):
                break
            await asyncio.sleep(0)
        assert writer._queue.qsize() == len(jobs)
    finally:
        release.set()
    await held
    results = await asyncio.gather(*tasks, return_exceptions=True)
    # the held batch committed, then ONE transaction held every job
    assert store.transactions - before == 2, store.transactions - before
    return [_outcome(r) for r in results]


async def _one_by_one(store: SqliteStore, jobs: list[Job]) -> list[Any]:
    outcomes = []
    for job in jobs:
        try:
            outcomes.append(_outcome(await _start(store, job)))
        except Exception as e:
            outcomes.append(_outcome(e))
    return outcomes


def _dump(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table (sqlite_sequence too), in a canonical order."""
    conn = sqlite3.connect(path)
    try:
        tables = [
            row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        ]
        dump = {}
        for table in sorted(tables):
            width = len(conn.execute(f'SELECT * FROM "{table}" LIMIT 0').description)
            order = ", ".join(str(i) for i in range(1, width + 1))
            dump[table] = conn.execute(f'SELECT * FROM "{table}" ORDER BY {order}').fetchall()
        return dump
    finally:
        conn.close()


async def _compare(
    jobs: list[Job], directory: Path, writer: Writer = "thread"
) -> tuple[list[Any], dict[str, list[tuple[Any, ...]]]]:
    """Run ``jobs`` batched in one store and one by one in another; assert both agree and
    return the outcomes and the dump."""
    outcomes: dict[str, list[Any]] = {}
    runs: dict[str, Callable[[SqliteStore, list[Job]], Awaitable[list[Any]]]] = {
        "batched": _one_batch,
        "serial": _one_by_one,
    }
    for name, run in runs.items():
        store = SqliteStore(directory / name / "r.db", partitions=4, writer=writer)
        await store.open()
        try:
            await _seed(store)
            outcomes[name] = await run(store, jobs)
        finally:
            await store.close()
    assert outcomes["batched"] == outcomes["serial"]
    batched, serial = _dump(directory / "batched" / "r.db"), _dump(directory / "serial" / "r.db")
    for table in serial:
        assert batched[table] == serial[table], table
    assert batched.keys() == serial.keys()
    return outcomes["serial"], serial


def _examples(n: int) -> settings:
    """``n`` examples and no shrinking (each example opens two SQLite files; a failure prints
    the whole plan)."""
    return settings(
        max_examples=n,
        deadline=None,
        database=None,
        phases=(Phase.explicit, Phase.reuse, Phase.generate),
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


@_examples(150)
@given(plans())
def test_one_batch_equals_one_by_one(jobs: list[Job]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        asyncio.run(_compare(jobs, Path(directory)))


# The writer process runs the same batch code; what it adds is the wire (units as tuples,
# other jobs pickled, outcomes and errors sent back in order). Fewer examples: each one
# starts two writer processes.
@_examples(30)
@given(plans())
def test_one_batch_equals_one_by_one_in_the_writer_process(jobs: list[Job]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        asyncio.run(_compare(jobs, Path(directory), "process"))


@pytest.mark.parametrize("writer", ["thread", "process"])
def test_chained_updates_and_timers_in_one_batch(tmp_path: Path, writer: Writer) -> None:
    """The trickiest hand-built batch: two updates of one invocation (the second expecting the
    version the first wrote), a stale third; a timer added in unit 1 and removed in unit 2,
    re-added by two failing units and at another time by unit 5; a timer added in unit 1 and
    removed in unit 5; an insert that fails with its unit (a duplicate journal entry written
    after it) and succeeds with other fields in a later unit, which updates it too; a state
    cleared by a failing unit; a fence that only passes once a claim queued before it in the
    same batch moved the epoch; an idempotency key still held after the updates."""
    timer = TimerRecord(50, "inv_c", "sleep", 2)
    other = TimerRecord(60, "inv_c", "retry", 0)
    jobs: list[Job] = [
        (
            "unit",
            CommitUnit(
                invocations=[
                    InvocationWrite(
                        inv("inv_a", idempotency_key="k1", status="suspended", version=2), 1
                    )
                ],
                timers_add=[timer, other],
                state=[("Counter", "alice", "count", "2")],
                notify=[(0, "inv_a")],
            ),
        ),
        (
            "unit",
            CommitUnit(
                invocations=[InvocationWrite(inv("inv_a", idempotency_key="k1", version=3), 2)],
                entries=[("inv_a", 2, '"sleep"')],
                timers_remove=[timer],
            ),
        ),
        (
            "unit",
            CommitUnit(
                invocations=[InvocationWrite(inv("inv_a", status="completed", version=3), 2)],
                timers_add=[TimerRecord(70, "inv_c", "sleep", 2)],
                notify=[(0, "inv_stale")],
            ),
        ),
        (
            "unit",
            CommitUnit(
                invocations=[InvocationWrite(inv("inv_c", key="bob", seq=3))],
                entries=[("inv_c", 0, '"in"'), ("inv_a", 2, '"again"')],
                timers_add=[TimerRecord(80, "inv_c", "sleep", 2)],
                state=[("Counter", "alice", None, None)],
                notify=[(1, "inv_c")],
            ),
        ),
        (
            "unit",
            CommitUnit(
                invocations=[
                    InvocationWrite(inv("inv_c", key="carol", seq=4)),
                    InvocationWrite(
                        inv("inv_c", key="carol", seq=4, status="suspended", version=2), 1
                    ),
                ],
                entries=[("inv_c", 0, '"in"')],
                timers_remove=[timer, other],
                timers_add=[TimerRecord(90, "inv_c", "sleep", 2, 1)],
                state=[("Counter", "alice", "name", '"y"'), ("Counter", "alice", "count", None)],
                notify=[(1, "inv_c")],
            ),
        ),
        ("unit", CommitUnit(fences=[(0, 2)], notify=[(0, "inv_fenced")])),
        ("claim", (0, "node-b", LeaseRecord(0, "node-a", 1, 1, 0))),
        ("unit", CommitUnit(fences=[(0, 2)], notify=[(0, "inv_fenced_ok")])),
        (
            "unit",
            CommitUnit(
                invocations=[InvocationWrite(inv("inv_d", idempotency_key="k1", seq=5))],
            ),
        ),
    ]
    outcomes, dump = asyncio.run(_compare(jobs, tmp_path, writer))
    conflict, fenced = ("ConflictError", None), ("FencedError", 0)
    assert outcomes == [
        None,
        None,
        conflict,  # inv_a is at version 3 now
        conflict,  # inv_a[2] is written: inv_c stays absent, the state stays
        None,
        fenced,
        LeaseRecord(0, "node-b", 2, 2, NOW + 100),
        None,
        conflict,  # k1 of Counter/add/alice is held by inv_a
    ]
    assert [(r[0], r[3], r[5], r[19]) for r in dump["invocations"]] == [
        ("inv_a", "alice", "running", 3),
        ("inv_b", None, "running", 1),
        ("inv_c", "carol", "suspended", 2),
    ]
    assert dump["timers"] == [
        ("inv_a", "sleep", 1, 5, 0),
        ("inv_b", "retry", 0, 7, 0),
        ("inv_c", "sleep", 2, 90, 1),
    ]
    assert dump["state"] == [("Counter", "alice", "name", '"y"')]
    assert [row[2] for row in dump["inbox"]] == ["inv_b", "inv_a", "inv_c", "inv_fenced_ok"]
    assert dump["sqlite_sequence"] == [("inbox", 4)]
