"""Store errors.

::

    StoreError                 anything the store cannot do
    ├── ConflictError          a condition of a commit failed; nothing of that unit was written
    ├── SchemaError            the database was written by an incompatible schema version
    └── StoreClosedError       the store was closed or is closing

Every backend raises exactly these, so the orchestrator handles them once.
"""


class StoreError(Exception):
    """Base class of store failures."""


class ConflictError(StoreError):
    """A commit's condition failed (an entry position already written, a stale version)."""


class SchemaError(StoreError):
    """The database schema version is not one this code can use."""


class StoreClosedError(StoreError):
    """The store was closed."""
