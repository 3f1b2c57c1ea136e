"""The ``Store`` interface. Two real implementations (SQLite, and DynamoDB later) and an
in-memory one, all checked by one conformance suite (tests/store/).

Every method is a coroutine; implementations backed by blocking libraries run them on their own
threads so the event loop never blocks.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from types import TracebackType
from typing import Self

from ritornello.store._records import (
    CommitUnit,
    DeploymentRecord,
    InvocationRecord,
    TimerRecord,
)


class Store(ABC):
    """Durable home of invocations, journals, completions, state, timers and deployments.

    ``async with store:`` opens it and closes it.
    """

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @abstractmethod
    async def open(self) -> None:
        """Create or check the schema. Raises ``SchemaError`` on an incompatible version.

        Every other method needs an open store: before ``open`` they raise ``StoreError``,
        after ``close`` ``StoreClosedError``."""

    @abstractmethod
    async def close(self) -> None:
        """Finish pending commits and release resources. Later calls raise StoreClosedError."""

    @abstractmethod
    async def commit(self, unit: CommitUnit) -> None:
        """Apply ``unit`` atomically and durably; on return it survives a crash.

        Raises ``ConflictError`` (nothing of the unit written) or ``ValueError`` (a malformed
        unit, see ``CommitUnit``). Cancelling the caller does not cancel the write: a cancelled
        commit may still be applied."""

    @abstractmethod
    async def get_invocation(self, invocation_id: str) -> InvocationRecord | None:
        """One invocation, or None."""

    @abstractmethod
    async def get_journal(self, invocation_id: str) -> tuple[list[str], list[str]]:
        """(entries in index order, completions in index order), as JSON texts."""

    @abstractmethod
    async def get_state(self, service: str, key: str) -> dict[str, str]:
        """An object's state: name -> JSON text."""

    @abstractmethod
    async def list_invocations(
        self,
        *,
        statuses: Sequence[str] | None = None,
        service: str | None = None,
        key: str | None = None,
        after_seq: int = -1,
        limit: int = 1000,
    ) -> list[InvocationRecord]:
        """Invocations ordered by ``seq``, filtered, starting after ``after_seq`` (a cursor)."""

    @abstractmethod
    async def find_idempotent(
        self, service: str, handler: str, key: str | None, idempotency_key: str
    ) -> InvocationRecord | None:
        """The invocation created with this idempotency key for this target, if any."""

    @abstractmethod
    async def list_expired(self, before_ms: int, limit: int = 500) -> list[InvocationRecord]:
        """Terminal (completed or killed) invocations last modified before ``before_ms``,
        oldest first: what retention purges."""

    @abstractmethod
    async def list_timers(self) -> list[TimerRecord]:
        """Every timer, ordered by ``fire_at``."""

    @abstractmethod
    async def max_seq(self) -> int:
        """The highest ``seq`` of any invocation, or 0."""

    @abstractmethod
    async def put_deployment(self, deployment: DeploymentRecord) -> None:
        """Insert or replace a deployment."""

    @abstractmethod
    async def list_deployments(self) -> list[DeploymentRecord]:
        """Every deployment, oldest first."""

    @abstractmethod
    async def delete_deployment(self, deployment_id: str) -> bool:
        """Remove a deployment; False if it did not exist."""
