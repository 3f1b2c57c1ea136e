"""``SqliteStore``: the embedded default store (docs/store.md).

WAL journal, ``synchronous=FULL`` by default; one writer doing group commit (many commit units,
one transaction, one fsync; a unit that fails its condition sends its batch round again with
each unit in its own savepoint: ``_sqlite_thread.py``), in a child process by default
(``_sqlite_process.py``) or on a thread, and one reader thread; each owns its connection. An
exclusive ``flock`` on ``PATH.lock`` (PATH resolved: symlinks followed) keeps a second
orchestrator off the same file, whichever path it takes to it.

Invariants:

- ``commit()`` returns only after the COMMIT holding its unit returned: an acknowledged unit
  survives a process crash (and, with FULL, a power loss).
- A unit is all or nothing: on a failed condition its writes are undone (the batch runs again,
  that unit in a savepoint that is rolled back); an I/O error fails its whole batch.
- The reader sees every unit whose ``commit()`` returned (WAL readers see the last COMMIT).
- Fences are checked inside the unit, against the leases as the transaction sees
  them (lease writes go through the same writer thread, so a claim queued before the unit in the
  same batch is seen): a failed fence rolls back that unit only.
- ``partitions`` is written to the meta table when the database is created and read from it
  on every open: the constructor's value only applies to a new database.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

from ritornello.store import _sqlite_schema as sql
from ritornello.store._base import Store
from ritornello.store._checks import (
    check_fence,
    check_partitions,
    check_schedule,
    check_unit,
    holds,
    lost,
    moved,
)
from ritornello.store._service_settings import sqlite_list, sqlite_put
from ritornello.store._sqlite_limits import SqliteLimits, apply_permits
from ritornello.store._sqlite_process import WriterProcess
from ritornello.store._sqlite_thread import ConnectionThread, JobFn
from ritornello.store.errors import ConflictError, StoreClosedError, StoreError
from ritornello.store.records import (
    STATUSES,
    CommitUnit,
    DeploymentRecord,
    InvocationRecord,
    LeaseRecord,
    MemberRecord,
    ScheduleRecord,
    ServiceSettingsRecord,
    TimerRecord,
)

_T = TypeVar("_T")

Synchronous = Literal["FULL", "NORMAL"]
#: Where the writer connection runs: a thread of this process, or a child process
#: (``_sqlite_process.py``: no GIL shared with the event loop; what `ritornello serve` uses).
Writer = Literal["thread", "process"]

WAL_AUTOCHECKPOINT_PAGES = 4000


class SqliteStore(SqliteLimits, Store):
    """A SQLite database file at ``path``; its directory is created on ``open``.

    ``synchronous="NORMAL"`` skips the fsync per commit: a process crash loses nothing, a
    power loss may lose the last commits. ``readonly=True`` opens an existing database for
    reading only (no lock, no writer: an admin process beside a running orchestrator).
    ``partitions`` is used only if ``open`` creates the database; once open, the attribute is
    the number stored in it. ``writer="process"`` (the default) runs the writer connection in
    a child process (``_sqlite_process.py``: it needs no share of this process's GIL); with
    ``"thread"`` it runs on a thread of this process, as the reader always does.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: Synchronous = "FULL",
        readonly: bool = False,
        busy_timeout_ms: int = 5000,
        batch_limit: int = 512,
        partitions: int = 1,
        writer: Writer = "process",
    ) -> None:
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError(f"synchronous must be 'FULL' or 'NORMAL', not {synchronous!r}")
        if writer not in ("thread", "process"):
            raise ValueError(f"writer must be 'thread' or 'process', not {writer!r}")
        self.writer = writer
        self.partitions = check_partitions(partitions)
        self.exclusive = not readonly  # the writer holds the process lock while open
        self.path = os.fspath(path)
        self.synchronous = synchronous
        self.readonly = readonly
        self._busy_timeout_ms = int(busy_timeout_ms)
        self._batch_limit = batch_limit
        self._writer: ConnectionThread | WriterProcess | None = None
        self._reader: ConnectionThread | None = None
        self._lock_fd: int | None = None
        self._opened = False
        self._closed = False

    @property
    def writer_failed(self) -> asyncio.Future[StoreError] | None:
        """Once open with the writer process: settles with the error if that process dies
        without being asked to stop (every commit fails from then on; ``serve`` exits so its
        restart recovers). None with the writer thread, or before ``open``."""
        return self._writer.failed if isinstance(self._writer, WriterProcess) else None

    @property
    def transactions(self) -> int:
        """Write transactions committed so far: one per group-commit batch."""
        return 0 if self._writer is None else self._writer.batches

    # --- lifecycle ----------------------------------------------------------------------

    async def open(self) -> None:
        if self._closed:
            raise StoreClosedError(f"{self.path}: the store is closed")
        if self._opened:
            raise StoreError(f"{self.path}: the store is already open")
        try:
            if not self.readonly:
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
                self._lock_fd = _lock(self.path)
                if self.writer == "process":
                    self._writer = WriterProcess(
                        "ritornello-sqlite-writer",
                        connect_writer,
                        (self.path, self.synchronous, self._busy_timeout_ms, self.partitions),
                        unit_fn=_apply_unit,
                        batch_limit=self._batch_limit,
                    )
                else:
                    self._writer = ConnectionThread(
                        "ritornello-sqlite-writer",
                        self._connect_writer,
                        transactional=True,
                        batch_limit=self._batch_limit,
                    )
                await self._writer.start()
            self._reader = ConnectionThread(
                "ritornello-sqlite-reader",
                self._connect_reader,
                transactional=False,
                batch_limit=self._batch_limit,
            )
            await self._reader.start()
        except BaseException:
            await self._shutdown()
            raise
        self._opened = True

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._shutdown()

    async def _shutdown(self) -> None:
        threads = [t for t in (self._writer, self._reader) if t is not None]
        await asyncio.gather(*(t.stop() for t in threads))
        for t in threads:
            t.join()  # the thread settled its stop future as its last act: this is immediate
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    def _connect(self, uri: str | None) -> sqlite3.Connection:
        return connect(
            self.path if uri is None else uri, self._busy_timeout_ms, uri=uri is not None
        )

    def _connect_writer(self) -> sqlite3.Connection:
        return connect_writer(self.path, self.synchronous, self._busy_timeout_ms, self.partitions)

    def _connect_reader(self) -> sqlite3.Connection:
        if self.readonly:
            if not os.path.exists(self.path):
                raise StoreError(f"{self.path} does not exist")
            conn = self._connect(Path(self.path).resolve().as_uri() + "?mode=ro")
        else:
            conn = self._connect(None)
        try:
            conn.execute("PRAGMA query_only = 1")
            sql.check(conn, self.path)
            # open() awaits this thread's start, so the attribute is set before open returns
            self.partitions = sql.read_partitions(conn, self.path)
        except BaseException:
            conn.close()
            raise
        return conn

    # --- plumbing -----------------------------------------------------------------------

    def _thread(self, writing: bool) -> ConnectionThread | WriterProcess:
        if self._closed:
            raise StoreClosedError(f"{self.path}: the store is closed")
        if not self._opened:
            raise StoreError(f"{self.path}: the store is not open")
        thread = self._writer if writing else self._reader
        if thread is None:
            raise StoreError(f"{self.path}: the store is open read-only")
        return thread

    async def _run(self, writing: bool, fn: JobFn, arg: Any) -> Any:
        thread = self._thread(writing)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        thread.submit(fn, arg, future)
        return await future

    # --- writes -------------------------------------------------------------------------

    async def commit(self, unit: CommitUnit) -> None:
        thread = self._thread(True)
        check_unit(unit)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        thread.submit(_apply_unit, unit, future)
        await future

    async def put_deployment(self, deployment: DeploymentRecord) -> None:
        row = (deployment.id, deployment.uri, deployment.services, deployment.created_at)
        await self._run(True, _execute, (sql.PUT_DEPLOYMENT, row))

    async def put_service_settings(self, record: ServiceSettingsRecord) -> None:
        await self._run(True, sqlite_put, record)

    async def delete_deployment(self, deployment_id: str) -> bool:
        count: int = await self._run(True, _execute, (sql.DELETE_DEPLOYMENT, (deployment_id,)))
        return count > 0

    async def put_schedule(
        self, schedule: ScheduleRecord, expect_version: int | None = None
    ) -> None:
        thread = self._thread(True)
        check_schedule(schedule, expect_version)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        thread.submit(_put_schedule, (schedule, expect_version), future)
        await future

    async def delete_schedule(self, schedule_id: str, expect_version: int | None = None) -> bool:
        found: bool = await self._run(True, _delete_schedule, (schedule_id, expect_version))
        return found

    async def claim_lease(
        self, partition: int, owner: str, expect: LeaseRecord | None, now_ms: int
    ) -> LeaseRecord:
        result: LeaseRecord = await self._run(
            True, _claim_lease, (partition, owner, expect, now_ms)
        )
        return result

    async def renew_lease(self, lease: LeaseRecord, now_ms: int) -> LeaseRecord:
        result: LeaseRecord = await self._run(True, _renew_lease, (lease, now_ms))
        return result

    async def release_lease(self, lease: LeaseRecord, now_ms: int) -> None:
        params = (now_ms, lease.partition, lease.owner, lease.epoch)
        await self._run(True, _execute, (sql.RELEASE_LEASE, params))

    async def heartbeat(self, node: str, address: str, now_ms: int) -> None:
        await self._run(True, _execute, (sql.HEARTBEAT, (node, address, now_ms)))

    async def remove_member(self, node: str) -> None:
        await self._run(True, _execute, (sql.REMOVE_MEMBER, (node,)))

    async def ack_inbox(
        self, partition: int, message_ids: Sequence[str], epoch: int | None = None
    ) -> None:
        # Ids are the text of 64-bit integers; anything else names no message.
        params = [
            (partition, int(m)) for m in message_ids if m.isascii() and m.isdigit() and len(m) < 19
        ]
        if params or epoch is not None:
            await self._run(True, _ack_inbox, (partition, epoch, params))
        else:
            self._thread(True)

    # --- reads --------------------------------------------------------------------------

    async def get_invocation(self, invocation_id: str) -> InvocationRecord | None:
        result: InvocationRecord | None = await self._run(False, _read_invocation, invocation_id)
        return result

    async def get_journal(self, invocation_id: str) -> tuple[list[str], list[str]]:
        result: tuple[list[str], list[str]] = await self._run(False, _read_journal, invocation_id)
        return result

    async def get_journals(
        self, invocation_ids: Sequence[str]
    ) -> dict[str, tuple[list[str], list[str]]]:
        """All in one read transaction, a few hundred ids per query."""
        ids = list(dict.fromkeys(invocation_ids))
        if not ids:
            self._thread(False)  # raises on a store that is not open
            return {}
        result: dict[str, tuple[list[str], list[str]]] = await self._run(False, _read_journals, ids)
        return result

    async def get_state(self, service: str, key: str) -> dict[str, str]:
        result: dict[str, str] = await self._run(False, _read_state, (service, key))
        return result

    async def list_invocations(
        self,
        *,
        statuses: Sequence[str] | None = None,
        service: str | None = None,
        key: str | None = None,
        after_seq: int = -1,
        limit: int = 1000,
        partition: int | None = None,
        after: tuple[int, str] | None = None,
        newest_first: bool = False,
    ) -> list[InvocationRecord]:
        if statuses is not None and not statuses:
            self._thread(False)
            return []
        params: list[object] = [after_seq]
        if after is not None:
            params.extend((after[0], after[0], after[1]))
        if statuses:
            params.extend(statuses)
        if service is not None:
            params.append(service)
        if key is not None:
            params.append(key)
        if partition is not None:
            params.append(partition)
        params.append(max(limit, 0))
        query = sql.list_invocations_sql(
            len(statuses) if statuses else 0,
            service is not None,
            key is not None,
            partition is not None,
            after is not None,
            newest_first,
        )
        result: list[InvocationRecord] = await self._run(False, _read_invocations, (query, params))
        return result

    async def list_expired(
        self, before_ms: int, limit: int = 500, partition: int | None = None
    ) -> list[InvocationRecord]:
        query: tuple[str, tuple[int, ...]]
        if partition is None:
            query = (sql.LIST_EXPIRED, (before_ms, max(limit, 0)))
        else:
            query = (sql.LIST_EXPIRED_IN_PARTITION, (before_ms, partition, max(limit, 0)))
        result: list[InvocationRecord] = await self._run(False, _read_invocations, query)
        return result

    async def find_idempotent(
        self, service: str, handler: str, key: str | None, idempotency_key: str
    ) -> InvocationRecord | None:
        params = (service, handler, b"" if key is None else key, idempotency_key)
        result: list[InvocationRecord] = await self._run(
            False, _read_invocations, (sql.FIND_IDEMPOTENT, params)
        )
        return result[0] if result else None

    async def list_timers(self, partition: int | None = None) -> list[TimerRecord]:
        result: list[TimerRecord] = await self._run(False, _read_timers, partition)
        return result

    async def max_seq(self) -> int:
        result: int = await self._run(False, _read_max_seq, None)
        return result

    async def count_invocations(self, cap: int = 100_000) -> dict[str, int]:
        found: dict[str, int] = await self._run(False, _count_statuses, None)
        return {status: min(found.get(status, 0), cap) for status in STATUSES}

    async def count_timers(self) -> int:
        result: int = await self._run(False, _count_timers, None)
        return result

    async def list_service_settings(self) -> list[ServiceSettingsRecord]:
        result: list[ServiceSettingsRecord] = await self._run(False, sqlite_list, None)
        return result

    async def list_deployments(self) -> list[DeploymentRecord]:
        result: list[DeploymentRecord] = await self._run(False, _read_deployments, None)
        return result

    async def get_schedule(self, schedule_id: str) -> ScheduleRecord | None:
        found: list[ScheduleRecord] = await self._run(
            False, _read_schedules, (sql.GET_SCHEDULE, (schedule_id,))
        )
        return found[0] if found else None

    async def list_schedules(self, partition: int | None = None) -> list[ScheduleRecord]:
        query: tuple[str, tuple[int, ...]] = (
            (sql.LIST_SCHEDULES, ())
            if partition is None
            else (sql.LIST_SCHEDULES_IN_PARTITION, (partition,))
        )
        found: list[ScheduleRecord] = await self._run(False, _read_schedules, query)
        return found

    async def list_leases(self) -> list[LeaseRecord]:
        result: list[LeaseRecord] = await self._run(
            False, _read_all, (LeaseRecord, sql.LIST_LEASES)
        )
        return result

    async def list_members(self) -> list[MemberRecord]:
        result: list[MemberRecord] = await self._run(
            False, _read_all, (MemberRecord, sql.LIST_MEMBERS)
        )
        return result

    async def read_inbox(self, partition: int, limit: int = 1000) -> list[tuple[str, str]]:
        result: list[tuple[str, str]] = await self._run(
            False, _read_inbox, (partition, max(limit, 0))
        )
        return result


def connect(target: str, busy_timeout_ms: int, *, uri: bool = False) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit) with the busy timeout set."""
    conn = sqlite3.connect(target, uri=uri, isolation_level=None, cached_statements=256)
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    return conn


def connect_writer(
    path: str, synchronous: str, busy_timeout_ms: int, partitions: int
) -> sqlite3.Connection:
    """The writer's connection: WAL, ``synchronous``, the schema created or checked. Runs on
    the writer thread, or in the writer process (``_sqlite_process.py``)."""
    conn = connect(path, busy_timeout_ms)
    try:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":
            raise StoreError(f"{path}: cannot use WAL mode (got {mode!r})")
        synchronous = str(synchronous).upper()  # settable until open()
        if synchronous not in ("FULL", "NORMAL"):
            raise StoreError(f"synchronous must be FULL or NORMAL, not {synchronous!r}")
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        # Checkpoint every ~16 MB of WAL rather than SQLite's 4 MB: with random invocation
        # ids a batch dirties pages all over the B-trees, and checkpointing them 4x less
        # often cut the commit cost by a fifth to a third (docs/store.md). The file is cut
        # back to 64 MB after a checkpoint that a long read held up.
        conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES}")
        conn.execute(f"PRAGMA journal_size_limit = {64 << 20}")
        sql.create_or_check(conn, path, partitions)
    except BaseException:
        conn.close()
        raise
    return conn


def _lock(path: str) -> int:
    """Take the exclusive process lock of the database at ``path``; return its descriptor.

    The lock file sits beside the resolved file (every symlink followed, in the file's name
    and in its directories), as SQLite's own ``-wal`` and ``-shm`` files do: two paths to
    one database take one lock. (A hard link is another name for the same file that no
    path resolution reveals; SQLite does not support those either.)"""
    real = os.path.realpath(path)
    fd = os.open(real + ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        shown = path if real == os.path.abspath(path) else f"{path} (the file {real})"
        raise StoreError(
            f"{shown} is in use by another process (pid {holder}); "
            f"stop it, or open the store read-only"
        ) from None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


# --- jobs (run on the store's threads) ------------------------------------------------------


def _apply_unit(cur: sqlite3.Cursor, unit: CommitUnit) -> None:
    """Write ``unit`` in the writer's open transaction (order: see CommitUnit); fences first, so
    a fenced unit writes nothing even before its writes are rolled back. A function of the
    unit and the database only: the writer may run it twice (``_sqlite_thread.py``)."""
    for partition, epoch in unit.fences:
        row = cur.execute(sql.GET_LEASE, (partition,)).fetchone()
        if row is None or row[1] is None or row[2] != epoch:  # (partition, owner, epoch, ...)
            check_fence(partition, epoch, None if row is None else LeaseRecord(*row))
    for invocation_id in unit.purge:
        for statement in sql.PURGE:
            cur.execute(statement, (invocation_id,))
    for write in unit.invocations:
        record = write.record
        row = sql.invocation_row(record)
        try:
            if write.expect_version is None:
                cur.execute(sql.INSERT_INVOCATION, row)
                continue
            cur.execute(sql.UPDATE_INVOCATION, (*row[1:], record.id, write.expect_version))
        except sqlite3.IntegrityError as e:
            if not _is_unique(e):
                raise
            raise ConflictError(
                f"invocation {record.id}: idempotency key {record.idempotency_key!r} of "
                f"{record.service}/{record.handler} is held by another invocation"
            ) from None
        if cur.rowcount != 1:
            found = cur.execute("SELECT version FROM invocations WHERE id = ?", (record.id,))
            version = found.fetchone()
            if version is None:
                raise ConflictError(f"invocation {record.id} does not exist")
            raise ConflictError(
                f"invocation {record.id} is at version {version[0]}, not {write.expect_version}"
            )
    if unit.entries:
        try:
            cur.executemany(sql.INSERT_ENTRY, unit.entries)
        except sqlite3.IntegrityError as e:
            if not _is_unique(e):
                raise
            raise ConflictError(
                "journal entries are append-only: one of "
                + ", ".join(f"{i}[{n}]" for i, n, _ in unit.entries)
                + " is already written"
            ) from None
    if unit.fresh:
        _insert_completions(cur, unit)
    elif unit.completions:
        cur.executemany(sql.INSERT_COMPLETION, unit.completions)
    if unit.completions_remove:
        cur.executemany(sql.REMOVE_COMPLETION, unit.completions_remove)
    if unit.state:
        sets: list[tuple[str, str, str | None, str | None]] = []
        for change in unit.state:
            if change[3] is not None:
                sets.append(change)
                continue
            if sets:
                cur.executemany(sql.SET_STATE, sets)
                sets = []
            if change[2] is None:
                cur.execute(sql.CLEAR_ALL_STATE, change[:2])
            else:
                cur.execute(sql.CLEAR_STATE, change[:3])
        if sets:
            cur.executemany(sql.SET_STATE, sets)
    if unit.timers_remove:
        cur.executemany(
            sql.REMOVE_TIMER, [(t.invocation_id, t.kind, t.index) for t in unit.timers_remove]
        )
    if unit.timers_add:
        cur.executemany(
            sql.ADD_TIMER,
            [(t.invocation_id, t.kind, t.index, t.fire_at, t.partition) for t in unit.timers_add],
        )
    if unit.permits_release or unit.permits_ask or unit.permits_grant:
        apply_permits(cur, unit)
    if unit.notify:
        cur.executemany(sql.NOTIFY, unit.notify)  # in list order: increasing message ids


def _insert_completions(cur: sqlite3.Cursor, unit: CommitUnit) -> None:
    """The completions of a unit that names some ``fresh``: those inserted plainly, so that the
    primary key refuses one already written (a conflict) in the same statement that writes
    it; the others first-writer-wins, as always. In list order."""
    fresh = {(i, n) for i, n in unit.fresh}
    for completion in unit.completions:
        if (completion[0], completion[1]) not in fresh:
            cur.execute(sql.INSERT_COMPLETION, completion)
            continue
        try:
            cur.execute(sql.INSERT_FRESH_COMPLETION, completion)
        except sqlite3.IntegrityError as e:
            if not _is_unique(e):
                raise
            raise ConflictError(
                f"completion {completion[0]}[{completion[1]}] is already written"
            ) from None


def _get_lease(cur: sqlite3.Cursor, partition: int) -> LeaseRecord | None:
    row = cur.execute(sql.GET_LEASE, (partition,)).fetchone()
    return None if row is None else LeaseRecord(*row)


def _claim_lease(cur: sqlite3.Cursor, arg: tuple[int, str, LeaseRecord | None, int]) -> LeaseRecord:
    partition, owner, expect, now_ms = arg
    current = _get_lease(cur, partition)
    if moved(expect, current):
        raise ConflictError(f"lease of partition {partition} moved: it is {current}")
    epoch, version = (1, 1) if current is None else (current.epoch + 1, current.version + 1)
    lease = LeaseRecord(partition, owner, epoch, version, now_ms)
    cur.execute(sql.PUT_LEASE, (partition, owner, epoch, version, now_ms))
    return lease


def _renew_lease(cur: sqlite3.Cursor, arg: tuple[LeaseRecord, int]) -> LeaseRecord:
    lease, now_ms = arg
    cur.execute(sql.RENEW_LEASE, (now_ms, lease.partition, lease.owner, lease.epoch))
    current = _get_lease(cur, lease.partition)  # the UPDATE matched iff we still hold it
    if current is None or not holds(current, lease):
        raise lost(lease, current)
    return current


def _put_schedule(cur: sqlite3.Cursor, arg: tuple[ScheduleRecord, int | None]) -> None:
    schedule, expect_version = arg
    row = sql.schedule_row(schedule)
    if expect_version is None:
        try:
            cur.execute(sql.INSERT_SCHEDULE, row)
        except sqlite3.IntegrityError as e:
            if not _is_unique(e):
                raise
            raise ConflictError(f"schedule {schedule.id} already exists") from None
        return
    cur.execute(sql.UPDATE_SCHEDULE, (*row[1:], schedule.id, expect_version))
    if cur.rowcount != 1:
        _schedule_moved(cur, schedule.id, expect_version)


def _delete_schedule(cur: sqlite3.Cursor, arg: tuple[str, int | None]) -> bool:
    schedule_id, expect_version = arg
    if expect_version is None:
        return bool(cur.execute(sql.DELETE_SCHEDULE, (schedule_id,)).rowcount)
    found = cur.execute(sql.SCHEDULE_VERSION, (schedule_id,)).fetchone()
    if found is None:
        return False
    if found[0] != expect_version:
        _schedule_moved(cur, schedule_id, expect_version)
    cur.execute(sql.DELETE_SCHEDULE, (schedule_id,))
    return True


def _schedule_moved(cur: sqlite3.Cursor, schedule_id: str, expect_version: int) -> None:
    """Raise the ConflictError of a compare-and-set on a schedule that did not match."""
    found = cur.execute(sql.SCHEDULE_VERSION, (schedule_id,)).fetchone()
    if found is None:
        raise ConflictError(f"schedule {schedule_id} does not exist")
    raise ConflictError(f"schedule {schedule_id} is at version {found[0]}, not {expect_version}")


def _read_schedules(
    cur: sqlite3.Cursor, arg: tuple[str, tuple[object, ...]]
) -> list[ScheduleRecord]:
    return [sql.schedule_record(row) for row in cur.execute(*arg)]


def _is_unique(e: sqlite3.IntegrityError) -> bool:
    return e.sqlite_errorname in ("SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY")


def _execute(cur: sqlite3.Cursor, arg: tuple[str, tuple[object, ...]]) -> int:
    return cur.execute(*arg).rowcount


def _execute_many(cur: sqlite3.Cursor, arg: tuple[str, list[tuple[object, ...]]]) -> None:
    cur.executemany(*arg)


def _ack_inbox(cur: sqlite3.Cursor, arg: tuple[int, int | None, list[tuple[int, int]]]) -> None:
    partition, epoch, params = arg
    if epoch is not None:
        check_fence(partition, epoch, _get_lease(cur, partition))
    cur.executemany(sql.ACK_INBOX, params)


def _read_invocation(cur: sqlite3.Cursor, invocation_id: str) -> InvocationRecord | None:
    row = cur.execute(sql.GET_INVOCATION, (invocation_id,)).fetchone()
    return None if row is None else sql.invocation_record(row)


def _read_invocations(
    cur: sqlite3.Cursor, arg: tuple[str, Sequence[object]]
) -> list[InvocationRecord]:
    return [sql.invocation_record(row) for row in cur.execute(*arg)]


def _read_journal(cur: sqlite3.Cursor, invocation_id: str) -> tuple[list[str], list[str]]:
    # One read transaction: a commit landing between the two queries cannot be seen by half.
    cur.execute("BEGIN")
    try:
        entries = [row[0] for row in cur.execute(sql.GET_ENTRIES, (invocation_id,))]
        completions = [row[0] for row in cur.execute(sql.GET_COMPLETIONS, (invocation_id,))]
    finally:
        cur.execute("COMMIT")
    return entries, completions


#: Ids per query of ``_read_journals`` (SQLite allows 32,766 host parameters; 999 before 3.32).
_JOURNALS_PER_QUERY = 500


def _read_journals(cur: sqlite3.Cursor, ids: list[str]) -> dict[str, tuple[list[str], list[str]]]:
    found: dict[str, tuple[list[str], list[str]]] = {i: ([], []) for i in ids}
    cur.execute("BEGIN")  # one read transaction, as ``_read_journal``
    try:
        for start in range(0, len(ids), _JOURNALS_PER_QUERY):
            chunk = ids[start : start + _JOURNALS_PER_QUERY]
            marks = ",".join("?" * len(chunk))
            for inv_id, entry in cur.execute(sql.GET_ENTRIES_OF.format(marks), chunk):
                found[inv_id][0].append(entry)
            for inv_id, completion in cur.execute(sql.GET_COMPLETIONS_OF.format(marks), chunk):
                found[inv_id][1].append(completion)
    finally:
        cur.execute("COMMIT")
    return found


def _read_state(cur: sqlite3.Cursor, arg: tuple[str, str]) -> dict[str, str]:
    return dict(cur.execute(sql.GET_STATE, arg).fetchall())


def _read_timers(cur: sqlite3.Cursor, partition: int | None) -> list[TimerRecord]:
    if partition is None:
        rows = cur.execute(sql.LIST_TIMERS)
    else:
        rows = cur.execute(sql.LIST_TIMERS_IN_PARTITION, (partition,))
    return [TimerRecord(*row) for row in rows]


def _count_statuses(cur: sqlite3.Cursor, _: None) -> dict[str, int]:
    return dict(cur.execute(sql.COUNT_STATUSES).fetchall())


def _count_timers(cur: sqlite3.Cursor, _: None) -> int:
    value: int = cur.execute(sql.COUNT_TIMERS).fetchone()[0]
    return value


def _read_max_seq(cur: sqlite3.Cursor, _: None) -> int:
    value: int = cur.execute(sql.MAX_SEQ).fetchone()[0]
    return value


def _read_deployments(cur: sqlite3.Cursor, _: None) -> list[DeploymentRecord]:
    return [DeploymentRecord(*row) for row in cur.execute(sql.LIST_DEPLOYMENTS)]


def _read_all(cur: sqlite3.Cursor, arg: tuple[Callable[..., _T], str]) -> list[_T]:
    make, query = arg
    return [make(*row) for row in cur.execute(query)]


def _read_inbox(cur: sqlite3.Cursor, arg: tuple[int, int]) -> list[tuple[str, str]]:
    return [
        (str(msg_id), invocation_id) for msg_id, invocation_id in cur.execute(sql.READ_INBOX, arg)
    ]
