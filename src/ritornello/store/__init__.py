"""Durable storage: the ``Store`` interface and its backends (memory, SQLite)."""

from ritornello.store._base import Store
from ritornello.store._records import (
    STATUSES,
    TERMINAL_STATUSES,
    CommitUnit,
    DeploymentRecord,
    InvocationRecord,
    InvocationWrite,
    TimerRecord,
)
from ritornello.store.errors import ConflictError, SchemaError, StoreClosedError, StoreError

__all__ = [
    "STATUSES",
    "TERMINAL_STATUSES",
    "CommitUnit",
    "ConflictError",
    "DeploymentRecord",
    "InvocationRecord",
    "InvocationWrite",
    "SchemaError",
    "Store",
    "StoreClosedError",
    "StoreError",
    "TimerRecord",
    "open_store",
]


def open_store(url: str) -> Store:
    """A store for ``url``: ``memory://``, ``sqlite:///path.db`` (relative) or
    ``sqlite:////abs/path.db``. Raises ValueError for anything else."""
    if url.startswith("memory:"):
        from ritornello.store.memory import MemoryStore

        return MemoryStore()
    if url.startswith("sqlite:///"):
        from ritornello.store.sqlite import SqliteStore

        return SqliteStore(url[len("sqlite:///") :])
    raise ValueError(f"unsupported store URL {url!r} (expected sqlite:///PATH or memory://)")
