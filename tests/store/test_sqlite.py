"""What only the SQLite store has: a file, a schema version, a process lock, group commit."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from ritornello.store import (
    CommitUnit,
    ConflictError,
    InvocationRecord,
    InvocationWrite,
    SchemaError,
    StoreClosedError,
    StoreError,
    TimerRecord,
    _sqlite_schema,
    open_store,
    sqlite,
)
from ritornello.store.memory import MemoryStore
from ritornello.store.sqlite import SqliteStore

from .conftest import inv

Run = Callable[[Awaitable[Any]], Any]


def unit(i: int) -> CommitUnit:
    own = f"inv_{i:04}"
    return CommitUnit(
        invocations=[InvocationWrite(inv(own, seq=i))],
        entries=[(own, 0, f'{{"kind":"input","value":{i}}}')],
        state=[("Counter", own, "n", str(i))],
    )


def create(path: Path, run: Run) -> None:
    """Create an empty store at ``path``."""
    store = SqliteStore(path)
    run(store.open())
    run(store.close())


def test_directory_is_created_and_data_persists(tmp_path: Path, run: Run) -> None:
    path = tmp_path / "a" / "b" / "r.db"

    async def write() -> None:
        async with SqliteStore(path) as store:
            await store.commit(unit(1))
            await store.commit(CommitUnit(timers_add=[TimerRecord(9, "inv_0001", "sleep", 2)]))

    async def read() -> None:
        async with SqliteStore(path) as store:
            assert await store.get_invocation("inv_0001") == inv("inv_0001", seq=1)
            assert await store.get_journal("inv_0001") == (['{"kind":"input","value":1}'], [])
            assert await store.list_timers() == [TimerRecord(9, "inv_0001", "sleep", 2)]
            assert await store.max_seq() == 1

    run(write())
    run(read())
    mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_schema_version_mismatch(tmp_path: Path, run: Run) -> None:
    path = tmp_path / "r.db"
    create(path, run)
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = '2' WHERE name = 'schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(SchemaError, match=r"schema version 2.*version 1"):
        run(SqliteStore(path).open())
    with pytest.raises(SchemaError):
        run(SqliteStore(path, readonly=True).open())


def test_foreign_database_is_refused(tmp_path: Path, run: Run) -> None:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE stuff (x)")
    conn.commit()
    conn.close()
    with pytest.raises(SchemaError, match="not a Ritornello database"):
        run(SqliteStore(path).open())


def test_second_opener_fails_fast(tmp_path: Path, run: Run) -> None:
    path = tmp_path / "r.db"

    async def body() -> None:
        first = SqliteStore(path)
        await first.open()
        with pytest.raises(StoreError, match=r"in use by another process \(pid \d+\)"):
            await SqliteStore(path).open()
        # a read-only opener takes no lock and sees the writer's commits
        async with SqliteStore(path, readonly=True) as reader:
            await first.commit(unit(1))
            assert (await reader.get_invocation("inv_0001")) is not None
            with pytest.raises(StoreError, match="read-only"):
                await reader.commit(unit(2))
        await first.close()
        async with SqliteStore(path) as second:  # the lock went with close()
            assert await second.max_seq() == 1

    run(body())


def test_readonly_needs_an_existing_database(tmp_path: Path, run: Run) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        run(SqliteStore(tmp_path / "nothing.db", readonly=True).open())


def test_group_commit_batches(tmp_path: Path, run: Run) -> None:
    async def body() -> int:
        async with SqliteStore(tmp_path / "r.db") as store:
            before = store.transactions
            await asyncio.gather(*(store.commit(unit(i)) for i in range(200)))
            assert await store.max_seq() == 199
            return store.transactions - before

    transactions = run(body())
    assert 1 <= transactions <= 20, transactions


def test_close_finishes_pending_commits(tmp_path: Path, run: Run) -> None:
    path = tmp_path / "r.db"

    async def body() -> None:
        store = SqliteStore(path)
        await store.open()
        tasks = [asyncio.ensure_future(store.commit(unit(i))) for i in range(100)]
        await asyncio.sleep(0)  # every task has queued its unit
        await store.close()
        await asyncio.gather(*tasks)  # all of them committed, none failed
        with pytest.raises(StoreClosedError):
            await store.commit(unit(100))
        async with SqliteStore(path) as again:
            assert len(await again.list_invocations()) == 100

    run(body())


def test_io_error_fails_the_whole_batch(
    tmp_path: Path, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A SQLite error that is not a unit's own conflict fails every unit of its batch with
    StoreError, and none of that batch is written."""
    real = sqlite._apply_unit

    def apply(cur: sqlite3.Cursor, u: CommitUnit) -> None:
        real(cur, u)
        if u.invocations and u.invocations[0].record.id == "inv_0025":
            raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(sqlite, "_apply_unit", apply)

    async def body() -> None:
        async with SqliteStore(tmp_path / "r.db") as store:

            async def commit(i: int) -> str:
                try:
                    await store.commit(unit(i))
                except ConflictError:
                    return "conflict"
                except StoreError:
                    return "error"
                return "ok"

            outcomes = await asyncio.gather(*(commit(i) for i in range(50)))
            assert outcomes[25] == "error"
            assert "conflict" not in outcomes
            for i, outcome in enumerate(outcomes):
                present = await store.get_invocation(f"inv_{i:04}") is not None
                state = await store.get_state("Counter", f"inv_{i:04}")
                assert present is (outcome == "ok") is bool(state), (i, outcome)
            await store.commit(unit(99))  # the writer lives on

    run(body())


def test_malformed_value_fails_only_its_unit(tmp_path: Path, run: Run) -> None:
    async def body() -> None:
        async with SqliteStore(tmp_path / "r.db") as store:
            bad = CommitUnit(entries=[("inv_x", 0, object())])  # type: ignore[list-item]
            results = await asyncio.gather(
                store.commit(unit(1)),
                store.commit(bad),
                store.commit(unit(2)),
                return_exceptions=True,
            )
            assert results[0] is None and results[2] is None
            assert type(results[1]) is StoreError
            assert await store.get_journal("inv_x") == ([], [])

    run(body())


def test_schema_matches_records() -> None:
    names = tuple(f.name for f in dataclasses.fields(InvocationRecord))
    assert names == _sqlite_schema.INVOCATION_COLUMNS


def test_idempotency_lookup_uses_the_index(tmp_path: Path, run: Run) -> None:
    path = tmp_path / "r.db"
    create(path, run)
    conn = sqlite3.connect(path)
    plan = conn.execute(
        "EXPLAIN QUERY PLAN " + _sqlite_schema.FIND_IDEMPOTENT, ("S", "h", b"", "k")
    ).fetchall()
    conn.close()
    assert "invocations_idempotency" in str(plan)


def test_open_store_urls(tmp_path: Path) -> None:
    assert isinstance(open_store("memory://"), MemoryStore)
    store = open_store(f"sqlite:///{tmp_path}/r.db?synchronous=normal")
    assert isinstance(store, SqliteStore)
    assert (store.path, store.synchronous, store.readonly) == (
        str(tmp_path / "r.db"),
        "NORMAL",
        False,
    )
    store = open_store("sqlite:///rel/r.db?readonly=1")
    assert isinstance(store, SqliteStore) and store.path == "rel/r.db" and store.readonly
    with pytest.raises(ValueError):
        open_store("sqlite:///r.db?synchronous=OFF")
    with pytest.raises(ValueError):
        open_store("postgres://x")
    with pytest.raises(ValueError):
        SqliteStore("r.db", synchronous="OFF")  # type: ignore[arg-type]


def test_a_file_that_is_not_sqlite_fails_cleanly(tmp_path: Path, run: Run) -> None:
    path = tmp_path / "r.db"
    path.write_bytes(b"not sqlite at all" * 100)
    for _ in range(2):  # the failed open released the lock and its threads
        with pytest.raises(StoreError, match="cannot open the database"):
            run(SqliteStore(path).open())
