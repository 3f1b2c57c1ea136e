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
    LimitRecord,
    PermitRecord,
    ScheduleRecord,
    SchemaError,
    StoreClosedError,
    StoreError,
    TimerRecord,
    _sqlite_schema,
    _sqlite_thread,
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
    conn.execute("UPDATE meta SET value = '99' WHERE name = 'schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(SchemaError, match=r"schema version 99.*version 5"):
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


def test_a_second_opener_through_a_symlink_fails_fast(tmp_path: Path, run: Run) -> None:
    """The lock is the resolved file's: a symlink to the file, or to its directory, is the
    same database (SQLite follows the link and shares its write-ahead log)."""
    real = tmp_path / "data" / "r.db"
    (tmp_path / "data").mkdir()
    (tmp_path / "link.db").symlink_to(real)
    (tmp_path / "linkdir").symlink_to(tmp_path / "data")

    async def body() -> None:
        async with SqliteStore(real):
            for other in (tmp_path / "link.db", tmp_path / "linkdir" / "r.db"):
                with pytest.raises(StoreError, match=r"in use by another process") as info:
                    await SqliteStore(other).open()
                assert str(real.resolve()) in str(info.value), info.value  # names the file
        async with SqliteStore(tmp_path / "link.db"):  # and the other way round
            with pytest.raises(StoreError, match=r"in use by another process"):
                await SqliteStore(real).open()

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
        async with SqliteStore(tmp_path / "r.db", writer="thread") as store:

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


def test_a_conflict_fails_only_its_unit_and_leaves_no_trace(
    tmp_path: Path, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batches run without savepoints first; a unit that conflicts after writing (its
    invocation is inserted, then its journal entry exists already) sends its batch round again
    with savepoints: it alone fails, none of its writes remain, the others are committed."""
    rounds: list[int] = []
    isolated = _sqlite_thread._run_jobs_isolated

    def counting(cur: sqlite3.Cursor, batch: list[Any]) -> Any:
        rounds.append(len(batch))
        return isolated(cur, batch)

    monkeypatch.setattr(_sqlite_thread, "_run_jobs_isolated", counting)

    async def body() -> None:
        async with SqliteStore(tmp_path / "r.db", writer="thread") as store:
            await store.commit(unit(0))
            bad = CommitUnit(
                invocations=[InvocationWrite(inv("inv_bad", seq=999))],
                entries=[("inv_0000", 0, '{"kind":"input","value":"again"}')],
            )
            units = [unit(i) for i in range(1, 50)]
            units.insert(25, bad)
            results = await asyncio.gather(*map(store.commit, units), return_exceptions=True)
            assert type(results[25]) is ConflictError
            assert [r for n, r in enumerate(results) if n != 25] == [None] * 49
            assert await store.get_invocation("inv_bad") is None
            assert await store.get_journal("inv_0000") == (['{"kind":"input","value":0}'], [])
            for i in range(1, 50):
                assert await store.get_state("Counter", f"inv_{i:04}") == {"n": str(i)}
        assert rounds and max(rounds) > 1  # it shared a batch, which ran again

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
    columns = "fire_at, invocation_id, kind, idx, partition"
    assert len(dataclasses.fields(TimerRecord)) == len(columns.split(", "))
    assert _sqlite_schema.LIST_TIMERS.startswith(f"SELECT {columns} FROM")


def test_idempotency_lookup_uses_the_index(tmp_path: Path, run: Run) -> None:
    path = tmp_path / "r.db"
    create(path, run)
    conn = sqlite3.connect(path)
    plan = conn.execute(
        "EXPLAIN QUERY PLAN " + _sqlite_schema.FIND_IDEMPOTENT, ("S", "h", b"", "k")
    ).fetchall()
    conn.close()
    assert "invocations_idempotency" in str(plan)


def test_partition_reads_use_their_indexes(tmp_path: Path, run: Run) -> None:
    path = tmp_path / "r.db"
    create(path, run)
    conn = sqlite3.connect(path)
    recovery = _sqlite_schema.list_invocations_sql(2, False, False, True)
    queries = [
        (recovery, (-1, "running", "suspended", 3, 1000), "invocations_partition"),
        (_sqlite_schema.LIST_TIMERS_IN_PARTITION, (3,), "timers_partition"),
        (_sqlite_schema.READ_INBOX, (3, 1000), "inbox_partition"),
    ]
    for query, params, index in queries:
        plan = conn.execute("EXPLAIN QUERY PLAN " + query, params).fetchall()
        assert index in str(plan), (query, plan)
    conn.close()


def test_partitions_are_fixed_when_the_database_is_created(tmp_path: Path, run: Run) -> None:
    path = tmp_path / "r.db"

    async def body() -> None:
        store = SqliteStore(path, partitions=4)
        assert store.partitions == 4
        async with store:
            assert store.partitions == 4
        async with SqliteStore(path) as again:  # the stored value wins over the default
            assert again.partitions == 4
        async with SqliteStore(path, partitions=16) as again:
            assert again.partitions == 4
        async with SqliteStore(path, readonly=True) as reader:
            assert reader.partitions == 4

    run(body())


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
    memory = open_store("memory://?partitions=3")
    assert isinstance(memory, MemoryStore) and memory.partitions == 3
    store = open_store(f"sqlite:///{tmp_path}/r.db?partitions=8&synchronous=NORMAL")
    assert isinstance(store, SqliteStore) and store.partitions == 8
    for bad in ("0", "-1", "two", "1.5", "%C2%B2"):
        with pytest.raises(ValueError, match="partitions"):
            open_store(f"memory://?partitions={bad}")
        with pytest.raises(ValueError, match="partitions"):
            open_store(f"sqlite:///r.db?partitions={bad}")
    with pytest.raises(ValueError):
        open_store("memory://?colour=blue")
    with pytest.raises(ValueError):
        SqliteStore("r.db", partitions=0)
    with pytest.raises(ValueError):
        MemoryStore(partitions=0)
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


# --- migration -------------------------------------------------------------------------------

# Schema version 1, verbatim (src/ritornello/store/_sqlite_schema.py before partitions).
VERSION_1_DDL = """
CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE invocations (
    id TEXT PRIMARY KEY NOT NULL, service TEXT NOT NULL, handler TEXT NOT NULL, key TEXT,
    handler_kind TEXT NOT NULL, status TEXT NOT NULL, deployment_id TEXT NOT NULL,
    seq INTEGER NOT NULL, created_at INTEGER NOT NULL, modified_at INTEGER NOT NULL,
    attempt INTEGER NOT NULL, journal_len INTEGER NOT NULL, waiting TEXT NOT NULL,
    caller_id TEXT, caller_index INTEGER, idempotency_key TEXT, result TEXT, last_error TEXT,
    next_at INTEGER, version INTEGER NOT NULL
);
CREATE INDEX invocations_seq ON invocations (seq);
CREATE INDEX invocations_status ON invocations (status, seq);
CREATE INDEX invocations_object ON invocations (service, key, seq);
CREATE INDEX invocations_expiry ON invocations (status, modified_at);
CREATE UNIQUE INDEX invocations_idempotency
    ON invocations (service, handler, ifnull(key, X''), idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE TABLE journal (
    invocation_id TEXT NOT NULL, idx INTEGER NOT NULL, entry TEXT NOT NULL,
    PRIMARY KEY (invocation_id, idx)
) WITHOUT ROWID;
CREATE TABLE completions (
    invocation_id TEXT NOT NULL, idx INTEGER NOT NULL, completion TEXT NOT NULL,
    PRIMARY KEY (invocation_id, idx)
) WITHOUT ROWID;
CREATE TABLE state (
    service TEXT NOT NULL, key TEXT NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (service, key, name)
) WITHOUT ROWID;
CREATE TABLE timers (
    invocation_id TEXT NOT NULL, kind TEXT NOT NULL, idx INTEGER NOT NULL,
    fire_at INTEGER NOT NULL, PRIMARY KEY (invocation_id, kind, idx)
) WITHOUT ROWID;
CREATE INDEX timers_fire_at ON timers (fire_at, invocation_id, kind, idx);
CREATE TABLE deployments (
    id TEXT PRIMARY KEY NOT NULL, uri TEXT NOT NULL, services TEXT NOT NULL,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO meta (name, value) VALUES ('schema_version', '1');
INSERT INTO invocations VALUES ('inv_old', 'Counter', 'add', 'alice', 'exclusive', 'suspended',
    'dp_1', 7, 1000, 2000, 2, 3, '1,2', NULL, NULL, 'ik', NULL, NULL, NULL, 5);
INSERT INTO journal VALUES ('inv_old', 0, '{}');
INSERT INTO completions VALUES ('inv_old', 1, '"done"');
INSERT INTO state VALUES ('Counter', 'alice', 'n', '3');
INSERT INTO timers VALUES ('inv_old', 'sleep', 2, 9000);
INSERT INTO deployments VALUES ('dp_1', 'http://x', '[]', 500);
"""


def _create_version_1(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.executescript(VERSION_1_DDL)
    conn.close()


def _schema(path: Path) -> dict[str, Any]:
    """Tables with their columns, and indexes with their columns and conditions."""
    conn = sqlite3.connect(path)
    found: dict[str, Any] = {}
    for kind, name, table, text in conn.execute(
        "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
    ):
        if kind == "table":
            found[name] = conn.execute(f"PRAGMA table_xinfo({name})").fetchall()
        elif kind == "index":
            found[name] = (table, conn.execute(f"PRAGMA index_xinfo({name})").fetchall())
            found[name, "where"] = text.partition(" WHERE ")[2]
    found["meta", "rows"] = sorted(conn.execute("SELECT name, value FROM meta"))
    conn.close()
    return found


def test_a_version_1_database_is_migrated_in_place(tmp_path: Path, run: Run) -> None:
    old = tmp_path / "old.db"
    _create_version_1(old)
    with pytest.raises(SchemaError, match="read-write"):  # a reader cannot migrate
        run(SqliteStore(old, readonly=True).open())

    async def body() -> None:
        async with SqliteStore(old, partitions=8) as store:
            assert store.partitions == 1  # the database existed: it was not partitioned
            expected = InvocationRecord(
                "inv_old", "Counter", "add", "alice", "exclusive", "suspended", "dp_1", 7,
                1000, 2000, attempt=2, journal_len=3, waiting=(1, 2), idempotency_key="ik",
                version=5, partition=0, expires_at=None,
            )  # fmt: skip
            assert await store.get_invocation("inv_old") == expected
            assert await store.find_idempotent("Counter", "add", "alice", "ik") == expected
            assert await store.get_journal("inv_old") == (["{}"], ['"done"'])
            assert await store.get_state("Counter", "alice") == {"n": "3"}
            assert await store.list_timers(partition=0) == [
                TimerRecord(9000, "inv_old", "sleep", 2, partition=0)
            ]
            assert len(await store.list_deployments()) == 1
            # everything version 2 added works
            lease = await store.claim_lease(0, "node-a", None, 1)
            done = dataclasses.replace(expected, status="completed", version=6, expires_at=9)
            await store.commit(
                CommitUnit(
                    invocations=[InvocationWrite(done, expect_version=5)],
                    fences=[(0, lease.epoch)],
                    notify=[(0, "inv_old")],
                )
            )
            assert await store.get_invocation("inv_old") == done
            assert [m[1] for m in await store.read_inbox(0)] == ["inv_old"]
        async with SqliteStore(old) as again:  # opening a migrated database changes nothing
            assert (await again.get_invocation("inv_old")) == done

    run(body())
    fresh = tmp_path / "fresh.db"
    create(fresh, run)
    assert _schema(old) == _schema(fresh)  # migrated = created at the current version


def test_a_failed_migration_leaves_version_1(
    tmp_path: Path, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "old.db"
    _create_version_1(path)
    broken = (*_sqlite_schema.MIGRATIONS[1], "THIS IS NOT SQL")
    monkeypatch.setitem(_sqlite_schema.MIGRATIONS, 1, broken)
    with pytest.raises(StoreError):
        run(SqliteStore(path, writer="thread").open())
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT value FROM meta").fetchall() == [("1",)]
    assert "partition" not in str(conn.execute("PRAGMA table_info(invocations)").fetchall())
    conn.close()
    monkeypatch.undo()

    async def reopen() -> int:
        async with SqliteStore(path, writer="thread") as store:
            return store.partitions

    assert run(reopen()) == 1


def test_a_version_2_database_is_migrated_in_place(tmp_path: Path, run: Run) -> None:
    """2 -> 3 adds the schedules table and the invocations' history column (NULL for the
    invocations that were there)."""
    old = tmp_path / "v2.db"
    _create_version_1(old)
    conn = sqlite3.connect(old)
    for statement in _sqlite_schema.MIGRATIONS[1]:  # to version 2, as a version-2 build did
        if statement.strip():
            conn.execute(statement)
    conn.execute("UPDATE meta SET value = '2' WHERE name = 'schema_version'")
    conn.execute("UPDATE invocations SET partition = 0, expires_at = 77")
    conn.commit()
    assert "history" not in str(conn.execute("PRAGMA table_info(invocations)").fetchall())
    conn.close()

    async def body() -> None:
        async with SqliteStore(old) as store:
            found = await store.get_invocation("inv_old")
            assert found is not None
            assert (found.history, found.expires_at, found.version) == (None, 77, 5)
            assert await store.list_schedules() == []
            new = ScheduleRecord(
                "sch_1", "* * * * *", "Greeter", "greet", None, "null", "skip", "UTC", False,
                1, 1,
            )  # fmt: skip
            await store.put_schedule(new)
            assert await store.get_schedule("sch_1") == new
            history = '[{"attempt":1,"at":2,"error":"e"}]'
            changed = dataclasses.replace(found, history=history, version=6)
            await store.commit(CommitUnit(invocations=[InvocationWrite(changed, 5)]))
            assert await store.get_invocation("inv_old") == changed

    run(body())
    conn = sqlite3.connect(old)
    assert conn.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchall() == [
        ("5",)
    ]
    conn.close()
    fresh = tmp_path / "fresh.db"
    create(fresh, run)
    assert _schema(old) == _schema(fresh)  # migrated = created at the current version


def test_a_version_3_database_is_migrated_in_place(tmp_path: Path, run: Run) -> None:
    """3 -> 4 adds the limits and permits tables, empty; the rest is left as it was."""
    old = tmp_path / "v3.db"
    _create_version_1(old)
    conn = sqlite3.connect(old)
    for version in (1, 2):  # to version 3, as a version-3 build did
        for statement in _sqlite_schema.MIGRATIONS[version]:
            if statement.strip():
                conn.execute(statement)
    conn.execute("UPDATE meta SET value = '3' WHERE name = 'schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(SchemaError, match="read-write"):  # a reader cannot migrate
        run(SqliteStore(old, readonly=True).open())

    async def body() -> None:
        async with SqliteStore(old) as store:
            assert await store.get_journal("inv_old") == (["{}"], ['"done"'])
            assert await store.list_limits() == []
            assert await store.list_permits() == []
            limit = LimitRecord("emails", 5, None, 1000, 0, 1)
            await store.put_limit(limit)
            asked = PermitRecord("emails", "inv_old", 2, 0, 0, 1)
            await store.commit(CommitUnit(permits_ask=[asked], completions_remove=[("inv_old", 1)]))
            assert await store.get_limit("emails") == limit
            assert await store.list_permits(partition=0) == [asked]
            assert await store.get_journal("inv_old") == (["{}"], [])

    run(body())
    fresh = tmp_path / "fresh.db"
    create(fresh, run)
    assert _schema(old) == _schema(fresh)  # migrated = created at the current version


def test_a_version_4_database_is_migrated_in_place(tmp_path: Path, run: Run) -> None:
    """4 -> 5 moves the expiry index to expires_at; a finished invocation without an expiry
    (written before partitions) expires a day after it finished, and is then listed."""
    old = tmp_path / "v4.db"
    _create_version_1(old)
    conn = sqlite3.connect(old)
    for version in (1, 2, 3):  # to version 4, as a version-4 build did
        for statement in _sqlite_schema.MIGRATIONS[version]:
            if statement.strip():
                conn.execute(statement)
    conn.execute("UPDATE invocations SET status = 'completed', result = '{}'")
    conn.execute("UPDATE meta SET value = '4' WHERE name = 'schema_version'")
    conn.commit()
    conn.close()

    async def body() -> None:
        async with SqliteStore(old) as store:
            found = await store.get_invocation("inv_old")
            assert found is not None and found.expires_at == found.modified_at + 86_400_000
            assert await store.list_expired(found.expires_at) == []
            assert [r.id for r in await store.list_expired(found.expires_at + 1)] == ["inv_old"]

    run(body())
    fresh = tmp_path / "fresh.db"
    create(fresh, run)
    assert _schema(old) == _schema(fresh)  # migrated = created at the current version
