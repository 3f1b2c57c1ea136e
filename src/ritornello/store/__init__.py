"""Durable storage: the ``Store`` interface and its backends (memory, SQLite, DynamoDB)."""

from ritornello.store._base import Store
from ritornello.store.errors import (
    ConflictError,
    FencedError,
    SchemaError,
    StoreClosedError,
    StoreError,
    UnavailableError,
)
from ritornello.store.records import (
    FINAL_STATUSES,
    HISTORY_LIMIT,
    LIVE_STATUSES,
    OVERLAP_POLICIES,
    STATUSES,
    CommitUnit,
    DeploymentRecord,
    InvocationRecord,
    InvocationWrite,
    LeaseRecord,
    LimitRecord,
    MemberRecord,
    PermitRecord,
    ScheduleRecord,
    ServiceSettingsRecord,
    Status,
    TimerRecord,
    with_changes,
    with_failure,
)

__all__ = [
    "FINAL_STATUSES",
    "HISTORY_LIMIT",
    "LIVE_STATUSES",
    "OVERLAP_POLICIES",
    "STATUSES",
    "CommitUnit",
    "ConflictError",
    "DeploymentRecord",
    "FencedError",
    "InvocationRecord",
    "InvocationWrite",
    "LeaseRecord",
    "LimitRecord",
    "MemberRecord",
    "PermitRecord",
    "ScheduleRecord",
    "SchemaError",
    "ServiceSettingsRecord",
    "Status",
    "Store",
    "StoreClosedError",
    "StoreError",
    "TimerRecord",
    "UnavailableError",
    "open_store",
    "with_changes",
    "with_failure",
]


def open_store(url: str) -> Store:
    """A store for ``url``: ``memory://``, ``sqlite:///path.db`` (relative) or
    ``sqlite:////abs/path.db``, optionally with ``?synchronous=NORMAL`` (default ``FULL``) and
    ``&readonly=1``. Both take ``?partitions=N`` (N >= 1, default 1; SQLite uses it only when it
    creates the database). Raises ValueError for anything else. The store still has to be
    opened."""
    if url.startswith("memory:"):
        from urllib.parse import parse_qs

        from ritornello.store.memory import MemoryStore

        options = {name: values[-1] for name, values in parse_qs(url.partition("?")[2]).items()}
        partitions = _partitions(url, options.pop("partitions", "1"))
        if options:
            raise ValueError(f"bad store URL {url!r} (options: partitions=N)")
        return MemoryStore(partitions)
    if url.startswith("sqlite:///"):
        from urllib.parse import parse_qs

        from ritornello.store.sqlite import SqliteStore

        path, _, query = url[len("sqlite:///") :].partition("?")
        options = {name: values[-1] for name, values in parse_qs(query).items()}
        synchronous = options.pop("synchronous", "FULL").upper()
        readonly = options.pop("readonly", "0").lower() in ("1", "true", "yes")
        partitions = _partitions(url, options.pop("partitions", "1"))
        writer = options.pop("writer", "process").lower()
        if (
            options
            or synchronous not in ("FULL", "NORMAL")
            or writer not in ("thread", "process")
            or not path
        ):
            raise ValueError(
                f"bad store URL {url!r} (options: synchronous=FULL|NORMAL, readonly=0|1, "
                "partitions=N, writer=thread|process)"
            )
        return SqliteStore(
            path,
            synchronous="NORMAL" if synchronous == "NORMAL" else "FULL",
            readonly=readonly,
            partitions=partitions,
            writer="process" if writer == "process" else "thread",
        )
    if url.startswith("dynamodb://"):
        from ritornello.store.dynamodb import DynamoStore

        return DynamoStore.from_url(url)
    raise ValueError(
        f"unsupported store URL {url!r} (expected sqlite:///PATH, dynamodb://TABLE or memory://)"
    )


def _partitions(url: str, value: str) -> int:
    """The ``partitions`` option of ``url``: an integer >= 1, else ValueError."""
    if not (value.isascii() and value.isdigit()) or int(value) < 1:
        raise ValueError(f"bad store URL {url!r}: partitions must be an integer >= 1")
    return int(value)
