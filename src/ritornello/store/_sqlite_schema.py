"""The SQLite schema (version 5), its migrations, the statements run against it, and row <->
record mapping (those of limits and permits are in ``_sqlite_limits.py``).

Every statement is a module constant, so sqlite3's per-connection statement cache prepares
each one once. Payloads are JSON text written and read back verbatim: nothing here parses them.

Versions: 1 had no partitions, leases, members or inbox; 2 added them; 3 added the
``schedules`` table and the invocations' ``history`` column; 4 added the ``limits`` and
``permits`` tables. ``MIGRATIONS[v]`` takes
a database from version v to v + 1 in place; ``DDL`` creates the current version directly and
must give the same tables and indexes as version 1 migrated (tests/store/test_sqlite.py checks
it), which is why new columns come last and carry the defaults ``ALTER TABLE`` needs.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import Any

from ritornello.store._sqlite_limits import LIMITS_DDL
from ritornello.store.errors import SchemaError
from ritornello.store.records import InvocationRecord, ScheduleRecord

SCHEMA_VERSION = 5

# In InvocationRecord field order, so a row maps back with InvocationRecord(*row).
INVOCATION_COLUMNS = (
    "id",
    "service",
    "handler",
    "key",
    "handler_kind",
    "status",
    "deployment_id",
    "seq",
    "created_at",
    "modified_at",
    "attempt",
    "journal_len",
    "waiting",
    "caller_id",
    "caller_index",
    "idempotency_key",
    "result",
    "last_error",
    "next_at",
    "version",
    "partition",
    "expires_at",
    "history",
)
_WAITING = INVOCATION_COLUMNS.index("waiting")

# `key` is NULL for services (no object key). SQLite unique indexes treat NULLs as distinct,
# so the idempotency index normalises NULL to X'' (an empty BLOB: equal to no TEXT value, so
# key None and key "" stay distinct, as in MemoryStore); find_idempotent queries the same
# expression, which lets the planner use the index.
DDL = """
CREATE TABLE meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE invocations (
    id TEXT PRIMARY KEY NOT NULL,
    service TEXT NOT NULL,
    handler TEXT NOT NULL,
    key TEXT,
    handler_kind TEXT NOT NULL,
    status TEXT NOT NULL,
    deployment_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    modified_at INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    journal_len INTEGER NOT NULL,
    waiting TEXT NOT NULL,          -- comma-separated entry indexes, '' for none
    caller_id TEXT,
    caller_index INTEGER,
    idempotency_key TEXT,
    result TEXT,
    last_error TEXT,
    next_at INTEGER,
    version INTEGER NOT NULL,
    partition INTEGER NOT NULL DEFAULT 0,
    expires_at INTEGER,
    history TEXT                    -- JSON list of failed attempts, NULL for none
);
CREATE INDEX invocations_seq ON invocations (seq);
CREATE INDEX invocations_status ON invocations (status, seq);
CREATE INDEX invocations_object ON invocations (service, key, seq);
CREATE INDEX invocations_expiry ON invocations (status, expires_at);
CREATE UNIQUE INDEX invocations_idempotency
    ON invocations (service, handler, ifnull(key, X''), idempotency_key)
    WHERE idempotency_key IS NOT NULL;

CREATE TABLE journal (
    invocation_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    entry TEXT NOT NULL,
    PRIMARY KEY (invocation_id, idx)
) WITHOUT ROWID;

CREATE TABLE completions (
    invocation_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    completion TEXT NOT NULL,
    PRIMARY KEY (invocation_id, idx)
) WITHOUT ROWID;

CREATE TABLE state (
    service TEXT NOT NULL,
    key TEXT NOT NULL,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (service, key, name)
) WITHOUT ROWID;

CREATE TABLE timers (
    invocation_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    idx INTEGER NOT NULL,
    fire_at INTEGER NOT NULL,
    partition INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (invocation_id, kind, idx)
) WITHOUT ROWID;
CREATE INDEX timers_fire_at ON timers (fire_at, invocation_id, kind, idx);

CREATE TABLE deployments (
    id TEXT PRIMARY KEY NOT NULL,
    uri TEXT NOT NULL,
    services TEXT NOT NULL,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;
"""

# What version 2 added besides columns: created by DDL and by the 1 -> 2 migration alike.
LEADERSHIP_DDL = """
CREATE INDEX invocations_partition ON invocations (partition, status, seq);
CREATE INDEX timers_partition ON timers (partition, fire_at, invocation_id, kind, idx);

CREATE TABLE leases (
    partition INTEGER PRIMARY KEY NOT NULL,
    owner TEXT,                     -- NULL: released
    epoch INTEGER NOT NULL,
    version INTEGER NOT NULL,
    renewed_at INTEGER NOT NULL
);

CREATE TABLE members (
    node TEXT PRIMARY KEY NOT NULL,
    address TEXT NOT NULL,
    heartbeat_at INTEGER NOT NULL,
    version INTEGER NOT NULL
) WITHOUT ROWID;

-- msg_id: AUTOINCREMENT never reuses an id, even once every message is acknowledged, so a late
-- ack_inbox of an old id cannot delete a newer message. (partition, msg_id) is the read order.
-- (No semicolons in comments here: the script is split on them.)
CREATE TABLE inbox (
    msg_id INTEGER PRIMARY KEY AUTOINCREMENT,
    partition INTEGER NOT NULL,
    invocation_id TEXT NOT NULL
);
CREATE UNIQUE INDEX inbox_partition ON inbox (partition, msg_id);
"""
DDL += LEADERSHIP_DDL

# In ScheduleRecord field order, so a row maps back with schedule_record(row).
SCHEDULE_COLUMNS = (
    "id",
    "cron",
    "service",
    "handler",
    "key",
    "input",
    "overlap",
    "timezone",
    "paused",
    "created_at",
    "checked_until",
    "partition",
    "last_fire_at",
    "last_invocation_id",
    "fires",
    "skipped",
    "missed",
    "version",
)

# What version 3 added besides the history column: created by DDL and by the 2 -> 3 migration.
SCHEDULES_DDL = """
CREATE TABLE schedules (
    id TEXT PRIMARY KEY NOT NULL,
    cron TEXT NOT NULL,
    service TEXT NOT NULL,
    handler TEXT NOT NULL,
    key TEXT,
    input TEXT NOT NULL,
    overlap TEXT NOT NULL,
    timezone TEXT NOT NULL,
    paused INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    checked_until INTEGER NOT NULL,
    partition INTEGER NOT NULL,
    last_fire_at INTEGER,
    last_invocation_id TEXT,
    fires INTEGER NOT NULL,
    skipped INTEGER NOT NULL,
    missed INTEGER NOT NULL,
    version INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX schedules_created ON schedules (created_at, id);
"""
DDL += SCHEDULES_DDL
DDL += LIMITS_DDL

# MIGRATIONS[v]: the statements taking version v to v + 1 (the schema_version row is updated
# by migrate()). 1 -> 2: existing invocations and timers land in partition 0 of 1. 2 -> 3:
# existing invocations have no history (NULL), there are no schedules yet. 3 -> 4: no limits
# and no permits yet. 4 -> 5: retention purges by expiry (each service may keep its finished
# invocations for its own time), so the expiry index is on expires_at, and finished
# invocations without one (written before partitions) expire a day after they finished.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        "ALTER TABLE invocations ADD COLUMN partition INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE invocations ADD COLUMN expires_at INTEGER",
        "ALTER TABLE timers ADD COLUMN partition INTEGER NOT NULL DEFAULT 0",
        *LEADERSHIP_DDL.split(";"),
        "INSERT INTO meta (name, value) VALUES ('partitions', '1')",
    ),
    2: (
        "ALTER TABLE invocations ADD COLUMN history TEXT",
        *SCHEDULES_DDL.split(";"),
    ),
    3: tuple(LIMITS_DDL.split(";")),
    4: (
        "DROP INDEX invocations_expiry",
        "CREATE INDEX invocations_expiry ON invocations (status, expires_at)",
        "UPDATE invocations SET expires_at = modified_at + 86400000 "
        "WHERE expires_at IS NULL AND status IN ('completed', 'killed')",
    ),
}

_COLS = ", ".join(INVOCATION_COLUMNS)

# --- writes (writer thread) ---------------------------------------------------------------
INSERT_INVOCATION = (
    f"INSERT INTO invocations ({_COLS}) VALUES ({', '.join('?' * len(INVOCATION_COLUMNS))}) "
    "ON CONFLICT (id) DO NOTHING"
)
# Parameters: every column but id, then id and the expected version.
UPDATE_INVOCATION = (
    "UPDATE invocations SET "
    + ", ".join(f"{c} = ?" for c in INVOCATION_COLUMNS[1:])
    + " WHERE id = ? AND version = ?"
)
INSERT_ENTRY = "INSERT INTO journal (invocation_id, idx, entry) VALUES (?, ?, ?)"
INSERT_COMPLETION = (
    "INSERT OR IGNORE INTO completions (invocation_id, idx, completion) VALUES (?, ?, ?)"
)
REMOVE_COMPLETION = "DELETE FROM completions WHERE invocation_id = ? AND idx = ?"
# A completion that must be new (CommitUnit.fresh): an existing one fails the primary key.
INSERT_FRESH_COMPLETION = (
    "INSERT INTO completions (invocation_id, idx, completion) VALUES (?, ?, ?)"
)
SET_STATE = "INSERT OR REPLACE INTO state (service, key, name, value) VALUES (?, ?, ?, ?)"
CLEAR_STATE = "DELETE FROM state WHERE service = ? AND key = ? AND name = ?"
CLEAR_ALL_STATE = "DELETE FROM state WHERE service = ? AND key = ?"
ADD_TIMER = (
    "INSERT OR REPLACE INTO timers (invocation_id, kind, idx, fire_at, partition) "
    "VALUES (?, ?, ?, ?, ?)"
)
REMOVE_TIMER = "DELETE FROM timers WHERE invocation_id = ? AND kind = ? AND idx = ?"
PURGE = (
    "DELETE FROM invocations WHERE id = ?",
    "DELETE FROM journal WHERE invocation_id = ?",
    "DELETE FROM completions WHERE invocation_id = ?",
    "DELETE FROM timers WHERE invocation_id = ?",
)
PUT_DEPLOYMENT = (
    "INSERT OR REPLACE INTO deployments (id, uri, services, created_at) VALUES (?,?,?,?)"
)
DELETE_DEPLOYMENT = "DELETE FROM deployments WHERE id = ?"
PUT_LEASE = (
    "INSERT OR REPLACE INTO leases (partition, owner, epoch, version, renewed_at) "
    "VALUES (?, ?, ?, ?, ?)"
)
# Parameters: renewed_at, partition, owner, epoch (a renewal or release by the holder only).
RENEW_LEASE = (
    "UPDATE leases SET version = version + 1, renewed_at = ? "
    "WHERE partition = ? AND owner = ? AND epoch = ?"
)
RELEASE_LEASE = (
    "UPDATE leases SET owner = NULL, version = version + 1, renewed_at = ? "
    "WHERE partition = ? AND owner = ? AND epoch = ?"
)
HEARTBEAT = (
    "INSERT INTO members (node, address, heartbeat_at, version) VALUES (?, ?, ?, 1) "
    "ON CONFLICT (node) DO UPDATE SET address = excluded.address, "
    "heartbeat_at = excluded.heartbeat_at, version = version + 1"
)
REMOVE_MEMBER = "DELETE FROM members WHERE node = ?"
_SCOLS = ", ".join(SCHEDULE_COLUMNS)
INSERT_SCHEDULE = (
    f"INSERT INTO schedules ({_SCOLS}) VALUES ({', '.join('?' * len(SCHEDULE_COLUMNS))})"
)
# Parameters: every column but id, then id and the expected version.
UPDATE_SCHEDULE = (
    "UPDATE schedules SET "
    + ", ".join(f"{c} = ?" for c in SCHEDULE_COLUMNS[1:])
    + " WHERE id = ? AND version = ?"
)
DELETE_SCHEDULE = "DELETE FROM schedules WHERE id = ?"
SCHEDULE_VERSION = "SELECT version FROM schedules WHERE id = ?"
NOTIFY = "INSERT INTO inbox (partition, invocation_id) VALUES (?, ?)"
ACK_INBOX = "DELETE FROM inbox WHERE partition = ? AND msg_id = ?"

# --- reads (reader thread) ----------------------------------------------------------------
GET_INVOCATION = f"SELECT {_COLS} FROM invocations WHERE id = ?"
GET_ENTRIES = "SELECT entry FROM journal WHERE invocation_id = ? ORDER BY idx"
GET_COMPLETIONS = "SELECT completion FROM completions WHERE invocation_id = ? ORDER BY idx"
#: The journals of many invocations (``{}``: as many ``?`` as ids), each in index order.
GET_ENTRIES_OF = (
    "SELECT invocation_id, entry FROM journal WHERE invocation_id IN ({}) "
    "ORDER BY invocation_id, idx"
)
GET_COMPLETIONS_OF = (
    "SELECT invocation_id, completion FROM completions WHERE invocation_id IN ({}) "
    "ORDER BY invocation_id, idx"
)
GET_STATE = "SELECT name, value FROM state WHERE service = ? AND key = ? ORDER BY name"
LIST_EXPIRED = (
    f"SELECT {_COLS} FROM invocations WHERE status IN ('completed', 'killed') "
    "AND expires_at < ? ORDER BY expires_at LIMIT ?"
)
LIST_EXPIRED_IN_PARTITION = (
    f"SELECT {_COLS} FROM invocations WHERE status IN ('completed', 'killed') "
    "AND expires_at < ? AND partition = ? ORDER BY expires_at LIMIT ?"
)
FIND_IDEMPOTENT = (
    f"SELECT {_COLS} FROM invocations WHERE service = ? AND handler = ? "
    "AND ifnull(key, X'') = ? AND idempotency_key = ?"
)
# In TimerRecord field order.
LIST_TIMERS = (
    "SELECT fire_at, invocation_id, kind, idx, partition FROM timers "
    "ORDER BY fire_at, invocation_id, kind, idx"
)
LIST_TIMERS_IN_PARTITION = (
    "SELECT fire_at, invocation_id, kind, idx, partition FROM timers WHERE partition = ? "
    "ORDER BY fire_at, invocation_id, kind, idx"
)
MAX_SEQ = "SELECT ifnull(max(seq), 0) FROM invocations"
COUNT_STATUSES = "SELECT status, count(*) FROM invocations GROUP BY status"  # index: status
COUNT_TIMERS = "SELECT count(*) FROM timers"
LIST_DEPLOYMENTS = "SELECT id, uri, services, created_at FROM deployments ORDER BY created_at, id"
# In LeaseRecord field order.
GET_LEASE = "SELECT partition, owner, epoch, version, renewed_at FROM leases WHERE partition = ?"
LIST_LEASES = "SELECT partition, owner, epoch, version, renewed_at FROM leases ORDER BY partition"
LIST_MEMBERS = "SELECT node, address, heartbeat_at, version FROM members ORDER BY node"
READ_INBOX = "SELECT msg_id, invocation_id FROM inbox WHERE partition = ? ORDER BY msg_id LIMIT ?"
GET_SCHEDULE = f"SELECT {_SCOLS} FROM schedules WHERE id = ?"
LIST_SCHEDULES = f"SELECT {_SCOLS} FROM schedules ORDER BY created_at, id"
LIST_SCHEDULES_IN_PARTITION = (
    f"SELECT {_SCOLS} FROM schedules WHERE partition = ? ORDER BY created_at, id"
)
GET_PARTITIONS = "SELECT value FROM meta WHERE name = 'partitions'"


def list_invocations_sql(
    n_statuses: int,
    service: bool,
    key: bool,
    partition: bool,
    after: bool = False,
    newest_first: bool = False,
) -> str:
    """The query for list_invocations; parameters: after_seq, [after's seq, seq, id],
    *statuses, [service], [key], [partition], limit. The keyset condition is spelled with
    ``seq`` alone first (``seq <= ?``), so the planner ranges over an index by seq, and the
    order's ``id`` tie-break sorts only the rows of one seq."""
    where = ["seq > ?"]
    if after:
        where.append(
            "seq <= ? AND (seq < ? OR id < ?)"
            if newest_first
            else "seq >= ? AND (seq > ? OR id > ?)"
        )
    if n_statuses:
        where.append(f"status IN ({', '.join('?' * n_statuses)})")
    if service:
        where.append("service = ?")
    if key:
        where.append("key = ?")
    if partition:
        where.append("partition = ?")
    order = "seq DESC, id DESC" if newest_first else "seq, id"
    return f"SELECT {_COLS} FROM invocations WHERE {' AND '.join(where)} ORDER BY {order} LIMIT ?"


def invocation_row(r: InvocationRecord) -> tuple[object, ...]:
    """``r`` as a row, in INVOCATION_COLUMNS order."""
    return (
        r.id,
        r.service,
        r.handler,
        r.key,
        r.handler_kind,
        r.status,
        r.deployment_id,
        r.seq,
        r.created_at,
        r.modified_at,
        r.attempt,
        r.journal_len,
        ",".join(map(str, r.waiting)),
        r.caller_id,
        r.caller_index,
        r.idempotency_key,
        r.result,
        r.last_error,
        r.next_at,
        r.version,
        r.partition,
        r.expires_at,
        r.history,
    )


def invocation_record(row: tuple[object, ...]) -> InvocationRecord:
    """The record of a row selected with INVOCATION_COLUMNS."""
    values: list[Any] = list(row)
    waiting = values[_WAITING]
    values[_WAITING] = tuple(map(int, waiting.split(","))) if waiting else ()
    return InvocationRecord(*values)


def schedule_row(r: ScheduleRecord) -> tuple[object, ...]:
    """``r`` as a row, in SCHEDULE_COLUMNS order."""
    return (
        r.id,
        r.cron,
        r.service,
        r.handler,
        r.key,
        r.input,
        r.overlap,
        r.timezone,
        int(r.paused),
        r.created_at,
        r.checked_until,
        r.partition,
        r.last_fire_at,
        r.last_invocation_id,
        r.fires,
        r.skipped,
        r.missed,
        r.version,
    )


def schedule_record(row: tuple[object, ...]) -> ScheduleRecord:
    """The record of a row selected with SCHEDULE_COLUMNS."""
    values: list[Any] = list(row)
    values[SCHEDULE_COLUMNS.index("paused")] = bool(values[SCHEDULE_COLUMNS.index("paused")])
    return ScheduleRecord(*values)


def create_or_check(conn: sqlite3.Connection, path: str, partitions: int) -> None:
    """Create the schema (with ``partitions``) in an empty database, migrate an older one to
    SCHEMA_VERSION, or check the version of a current one, in one ``BEGIN IMMEDIATE``
    transaction on the writer connection (so two processes racing to create or migrate it
    cannot both do so, and a failed migration leaves the database as it was)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = _version(conn, path, allow_empty=True)
        if version is None:
            _execute(conn, DDL.split(";"))
            conn.executemany(
                "INSERT INTO meta (name, value) VALUES (?, ?)",
                [("schema_version", str(SCHEMA_VERSION)), ("partitions", str(partitions))],
            )
        elif version < SCHEMA_VERSION:
            for old in range(version, SCHEMA_VERSION):
                _execute(conn, MIGRATIONS[old])
            conn.execute(
                "UPDATE meta SET value = ? WHERE name = 'schema_version'", (str(SCHEMA_VERSION),)
            )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _execute(conn: sqlite3.Connection, statements: Iterable[str]) -> None:
    for statement in statements:
        if statement.strip():
            conn.execute(statement)


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
    ).fetchone()
    return row is not None


def check(conn: sqlite3.Connection, path: str) -> None:
    """Check that the database has the current schema version (a reader cannot migrate)."""
    version = _version(conn, path, allow_empty=False)
    if version != SCHEMA_VERSION:
        raise SchemaError(
            f"{path} has schema version {version}; this Ritornello reads version "
            f"{SCHEMA_VERSION} (open it read-write once to migrate it)"
        )


def read_partitions(conn: sqlite3.Connection, path: str) -> int:
    """The number of partitions stored in the meta table."""
    row = conn.execute(GET_PARTITIONS).fetchone()
    try:
        partitions = int(row[0])
    except (TypeError, ValueError):
        partitions = 0
    if partitions < 1:
        raise SchemaError(f"{path} has no valid partitions in its meta table: {row}")
    return partitions


def _version(conn: sqlite3.Connection, path: str, *, allow_empty: bool) -> int | None:
    """The schema version (one this code can use or migrate); None if the database is empty
    (and ``allow_empty``)."""
    if not _has_table(conn, "meta"):
        tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if tables == 0 and allow_empty:
            return None
        if tables == 0:
            raise SchemaError(f"{path} has no Ritornello schema (run `ritornello store init`)")
        raise SchemaError(f"{path} is not a Ritornello database (it has no meta table)")
    row = conn.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()
    if row is None:
        raise SchemaError(f"{path} has no schema_version in its meta table")
    if row[0] != str(SCHEMA_VERSION) and not (row[0].isdigit() and int(row[0]) in MIGRATIONS):
        raise SchemaError(
            f"{path} has schema version {row[0]}; this Ritornello reads and writes version "
            f"{SCHEMA_VERSION} (and migrates versions "
            f"{', '.join(map(str, sorted(MIGRATIONS)))}) only (use a matching Ritornello)"
        )
    return int(row[0])
