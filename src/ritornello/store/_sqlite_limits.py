"""Limits and permits in SQLite: their tables (schema version 4), statements and row mapping,
the jobs that run on the writer and the reader, and the store's methods (``SqliteLimits``, a
mixin of ``SqliteStore``).

Permits change only inside a commit unit (``apply_permits``, called by the writer's
``_apply_unit`` in the unit's order): a release deletes, an ask is ``INSERT ... ON CONFLICT DO
NOTHING`` (an existing row stays as it is), a grant is an ``UPDATE`` of the waiting row (``WHERE
... AND granted_at IS NULL``) that must change exactly one row, else ``ConflictError`` and the
writer rolls the whole unit back. Jobs are module-level functions: the writer process receives
them by reference.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from ritornello.store._checks import check_limit, check_version
from ritornello.store._sqlite_thread import JobFn
from ritornello.store.errors import ConflictError
from ritornello.store.records import CommitUnit, LimitRecord, PermitRecord

# What version 4 added: created by DDL and by the 3 -> 4 migration alike. `limit` is an SQL
# keyword, hence limit_name. (No semicolons in comments here: the script is split on them.)
LIMITS_DDL = """
CREATE TABLE limits (
    name TEXT PRIMARY KEY NOT NULL,
    concurrency INTEGER,
    rate REAL,
    per_ms INTEGER NOT NULL,
    burst INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    version INTEGER NOT NULL,
    per_key INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

CREATE TABLE permits (
    limit_name TEXT NOT NULL,
    invocation_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    partition INTEGER NOT NULL,
    priority INTEGER NOT NULL,
    asked_at INTEGER NOT NULL,
    granted_at INTEGER,             -- NULL: waiting
    PRIMARY KEY (limit_name, invocation_id, idx)
) WITHOUT ROWID;
CREATE INDEX permits_partition ON permits (partition, limit_name);
"""

# In LimitRecord and PermitRecord field order: a row maps back with LimitRecord(*row).
_LIMIT_COLUMNS = "name, concurrency, rate, per_ms, burst, updated_at, version, per_key"
_PERMIT_COLUMNS = "limit_name, invocation_id, idx, partition, priority, asked_at, granted_at"
_PERMIT_ORDER = (
    "ORDER BY limit_name, granted_at IS NULL, priority DESC, asked_at, invocation_id, idx"
)

INSERT_LIMIT = (
    f"INSERT INTO limits ({_LIMIT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (name) DO NOTHING"
)
# Parameters: every column but name, then name and the expected version.
UPDATE_LIMIT = (
    "UPDATE limits SET concurrency = ?, rate = ?, per_ms = ?, burst = ?, updated_at = ?, "
    "version = ?, per_key = ? WHERE name = ? AND version = ?"
)
DELETE_LIMIT = "DELETE FROM limits WHERE name = ?"
LIMIT_VERSION = "SELECT version FROM limits WHERE name = ?"
GET_LIMIT = f"SELECT {_LIMIT_COLUMNS} FROM limits WHERE name = ?"
LIST_LIMITS = f"SELECT {_LIMIT_COLUMNS} FROM limits ORDER BY name"

RELEASE_PERMIT = "DELETE FROM permits WHERE limit_name = ? AND invocation_id = ? AND idx = ?"
ASK_PERMIT = (
    f"INSERT INTO permits ({_PERMIT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (limit_name, invocation_id, idx) DO NOTHING"
)
# Parameters: partition, priority, asked_at, granted_at, then the name (limit, id, index).
GRANT_PERMIT = (
    "UPDATE permits SET partition = ?, priority = ?, asked_at = ?, granted_at = ? "
    "WHERE limit_name = ? AND invocation_id = ? AND idx = ? AND granted_at IS NULL"
)
GET_PERMIT = (
    f"SELECT {_PERMIT_COLUMNS} FROM permits WHERE limit_name = ? AND invocation_id = ? AND idx = ?"
)


def list_permits_sql(partition: bool, limit: bool) -> str:
    """The query of ``list_permits``; parameters: [partition], [limit]."""
    where = [w for w, on in (("partition = ?", partition), ("limit_name = ?", limit)) if on]
    condition = f"WHERE {' AND '.join(where)} " if where else ""
    return f"SELECT {_PERMIT_COLUMNS} FROM permits {condition}{_PERMIT_ORDER}"


def _permit_row(p: PermitRecord) -> tuple[object, ...]:
    return (p.limit, p.invocation_id, p.index, p.partition, p.priority, p.asked_at, p.granted_at)


def _limit_record(row: Any) -> LimitRecord:
    """A ``limits`` row (``_LIMIT_COLUMNS``) as a record (SQLite keeps per_key as 0 or 1)."""
    name, concurrency, rate, per_ms, burst, updated_at, version, per_key = row
    return LimitRecord(
        name, concurrency, rate, per_ms, burst, updated_at, version, per_key=bool(per_key)
    )


def _limit_row(r: LimitRecord) -> tuple[object, ...]:
    return (
        r.name,
        r.concurrency,
        r.rate,
        r.per_ms,
        r.burst,
        r.updated_at,
        r.version,
        int(r.per_key),
    )


# --- writer jobs ------------------------------------------------------------------------------


def apply_permits(cur: sqlite3.Cursor, unit: CommitUnit) -> None:
    """The permits of ``unit``, in its order: releases, asks, grants (in the writer's open
    transaction, after the unit's timers)."""
    if unit.permits_release:
        cur.executemany(RELEASE_PERMIT, unit.permits_release)
    if unit.permits_ask:
        cur.executemany(ASK_PERMIT, [_permit_row(p) for p in unit.permits_ask])
    for p in unit.permits_grant:
        name = (p.limit, p.invocation_id, p.index)
        cur.execute(GRANT_PERMIT, (p.partition, p.priority, p.asked_at, p.granted_at, *name))
        if cur.rowcount != 1:
            found = cur.execute(GET_PERMIT, name).fetchone()
            state = "does not exist" if found is None else "is already granted"
            raise ConflictError(f"permit {p.limit!r} {p.invocation_id}[{p.index}] {state}")


def _put_limit(cur: sqlite3.Cursor, arg: tuple[LimitRecord, int | None]) -> None:
    limit, expect_version = arg
    row = _limit_row(limit)
    if expect_version is None:
        cur.execute(INSERT_LIMIT, row)
    else:
        cur.execute(UPDATE_LIMIT, (*row[1:], limit.name, expect_version))
    if cur.rowcount != 1:
        found = cur.execute(LIMIT_VERSION, (limit.name,)).fetchone()
        check_version(f"limit {limit.name!r}", None if found is None else found[0], expect_version)
        raise ConflictError(f"limit {limit.name!r} was not written")  # the check raises first


def _delete_limit(cur: sqlite3.Cursor, name: str) -> bool:
    return bool(cur.execute(DELETE_LIMIT, (name,)).rowcount)


# --- reader jobs ------------------------------------------------------------------------------


def _read_limits(cur: sqlite3.Cursor, arg: tuple[str, tuple[object, ...]]) -> list[LimitRecord]:
    return [_limit_record(row) for row in cur.execute(*arg)]


def _read_permits(cur: sqlite3.Cursor, arg: tuple[str, tuple[object, ...]]) -> list[PermitRecord]:
    return [PermitRecord(*row) for row in cur.execute(*arg)]


class SqliteLimits:
    """The limit and permit methods of ``SqliteStore``, which provides ``_run``."""

    async def _run(self, writing: bool, fn: JobFn, arg: Any) -> Any:
        raise NotImplementedError  # SqliteStore's: run ``fn(cursor, arg)`` on a connection

    async def put_limit(self, limit: LimitRecord, expect_version: int | None = None) -> None:
        check_limit(limit, expect_version)
        await self._run(True, _put_limit, (limit, expect_version))

    async def get_limit(self, name: str) -> LimitRecord | None:
        found: list[LimitRecord] = await self._run(False, _read_limits, (GET_LIMIT, (name,)))
        return found[0] if found else None

    async def list_limits(self) -> list[LimitRecord]:
        found: list[LimitRecord] = await self._run(False, _read_limits, (LIST_LIMITS, ()))
        return found

    async def delete_limit(self, name: str) -> bool:
        found: bool = await self._run(True, _delete_limit, name)
        return found

    async def get_permit(self, limit: str, invocation_id: str, index: int) -> PermitRecord | None:
        found: list[PermitRecord] = await self._run(
            False, _read_permits, (GET_PERMIT, (limit, invocation_id, index))
        )
        return found[0] if found else None

    async def list_permits(
        self, *, partition: int | None = None, limit: str | None = None
    ) -> list[PermitRecord]:
        query = list_permits_sql(partition is not None, limit is not None)
        params = tuple(v for v in (partition, limit) if v is not None)
        found: list[PermitRecord] = await self._run(False, _read_permits, (query, params))
        return found
