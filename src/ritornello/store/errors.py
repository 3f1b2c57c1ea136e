"""Store errors.

::

    StoreError                 anything the store cannot do
    ├── ConflictError          a condition of a commit failed; nothing of that unit was written
    │   └── FencedError        a fence (partition, epoch) failed: another leader took over
    ├── UnavailableError       throttled or unreachable for now; a commit may or may not have landed
    ├── SchemaError            the database was written by an incompatible schema version
    └── StoreClosedError       the store was closed or is closing

Every backend raises exactly these, so the orchestrator handles them once.
"""

from __future__ import annotations


class StoreError(Exception):
    """Base class of store failures."""


class ConflictError(StoreError):
    """A commit's condition failed (an entry position already written, a stale version)."""


class FencedError(ConflictError):
    """A fenced write found its partition's lease at another epoch (or released): the writer
    is no longer the leader of that partition and must step down from it."""

    def __init__(self, message: str, partition: int | None = None) -> None:
        super().__init__(message)
        self.partition = partition

    def __reduce__(self) -> tuple[type[FencedError], tuple[str, int | None]]:
        return (type(self), (str(self), self.partition))  # crosses the writer process's pipe


class UnavailableError(StoreError):
    """The store could not be reached or refused the request for now (throttling, internal
    errors, an exhausted retry budget). A commit that raised it may or may not have landed."""


class SchemaError(StoreError):
    """The database schema version is not one this code can use."""


class StoreClosedError(StoreError):
    """The store was closed."""
