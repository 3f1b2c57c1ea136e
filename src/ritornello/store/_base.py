"""The ``Store`` interface. Two real implementations (SQLite, and DynamoDB later) and an
in-memory one, all checked by one conformance suite (tests/store/).

Every method is a coroutine; implementations backed by blocking libraries run them on their own
threads so the event loop never blocks.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from types import TracebackType
from typing import Self

from ritornello.store.records import (
    STATUSES,
    CommitUnit,
    DeploymentRecord,
    InvocationRecord,
    LeaseRecord,
    LimitRecord,
    MemberRecord,
    PermitRecord,
    ScheduleRecord,
    ServiceSettingsRecord,
    TimerRecord,
)


class Store(ABC):
    """Durable home of invocations, journals, completions, state, timers, deployments,
    schedules, limits and permits, and of the partition leases and inboxes several
    orchestrators coordinate through.

    ``async with store:`` opens it and closes it. ``partitions`` (how many partitions
    invocations hash to) is fixed when the store is created and readable once it is open.
    """

    #: Number of partitions; fixed for the life of the database (1 by default). It only
    #: informs the orchestrator (which hashes invocations to 0 .. partitions - 1): a store keeps
    #: whatever partition number a record, fence, lease or message carries.
    partitions: int = 1
    #: True when no other process can use the store while this one has it open (SQLite's
    #: file lock): a lone orchestrator then claims every lease at once after a restart.
    exclusive: bool = False

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

    async def seal(self, partition: int, epoch: int) -> None:
        """Called by the leader of ``partition`` at ``epoch`` after its claim and before it
        reads the partition's live invocations. Once it returns, no unit fenced at a lower
        epoch of ``partition`` changes an invocation of it that was live when it was called.
        Idempotent. This default does nothing: it serves stores that check every fence on
        the lease itself (SQLite, memory), where the claim alone does it; DynamoDB fences a
        step on the invocation item instead and stamps the epoch on every live one here
        (docs/dynamodb.md, "A commit")."""
        return None

    @abstractmethod
    async def get_invocation(self, invocation_id: str) -> InvocationRecord | None:
        """One invocation, or None."""

    @abstractmethod
    async def get_journal(self, invocation_id: str) -> tuple[list[str], list[str]]:
        """(entries in index order, completions in index order), as JSON texts."""

    async def get_journals(
        self, invocation_ids: Sequence[str]
    ) -> dict[str, tuple[list[str], list[str]]]:
        """``get_journal`` of many invocations at once (what a new leader re-drives): id ->
        (entries, completions), one item per distinct id (an unknown id: two empty lists).
        Each journal is read as ``get_journal`` reads it; different journals may be read at
        different moments. This default reads them one by one, up to 32 at a time; SQLite
        overrides it with one read."""
        ids = list(dict.fromkeys(invocation_ids))
        found: dict[str, tuple[list[str], list[str]]] = {}
        for start in range(0, len(ids), 32):
            chunk = ids[start : start + 32]
            journals = await asyncio.gather(*(self.get_journal(i) for i in chunk))
            found.update(zip(chunk, journals, strict=True))
        return found

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
        partition: int | None = None,
        after: tuple[int, str] | None = None,
        newest_first: bool = False,
    ) -> list[InvocationRecord]:
        """Invocations ordered by (``seq``, ``id``), filtered, starting after ``after_seq`` (a
        cursor). With ``partition`` and only non-terminal ``statuses`` (what a new leader
        recovers) the read is strongly consistent on every backend.

        ``newest_first`` reverses the order: (``seq``, ``id``) descending. ``after`` is a
        keyset cursor, a (``seq``, ``id``) already given: only invocations strictly past it *in
        the order asked* are returned (below it when ``newest_first``). Because the pair is
        unique, paging by it never skips or repeats an invocation, even when two processes gave
        out the same ``seq``; new invocations (higher ``seq``) never enter a newest-first walk
        already under way. ``after_seq`` still applies (``seq > after_seq``) in both orders."""

    @abstractmethod
    async def find_idempotent(
        self, service: str, handler: str, key: str | None, idempotency_key: str
    ) -> InvocationRecord | None:
        """The invocation created with this idempotency key for this target, if any."""

    @abstractmethod
    async def list_expired(
        self, before_ms: int, limit: int = 500, partition: int | None = None
    ) -> list[InvocationRecord]:
        """Terminal (completed or killed) invocations whose ``expires_at`` is before
        ``before_ms``, soonest expiry first (of ``partition`` if given): what retention purges
        (each service may keep its finished invocations for its own time, stamped in
        ``expires_at`` when they finish). A terminal record without ``expires_at`` is never
        listed: the orchestrator stamps every one it writes."""

    @abstractmethod
    async def list_timers(self, partition: int | None = None) -> list[TimerRecord]:
        """Every timer (of ``partition`` if given), ordered by ``fire_at``. Strongly
        consistent."""

    async def scan_invocations(
        self,
        statuses: Sequence[str] | None = None,
        *,
        partition: int | None = None,
        page: int = 1000,
    ) -> AsyncIterator[InvocationRecord]:
        """Every invocation matching, in (``seq``, ``id``) order, each once, read a page at a
        time. Paging by ``seq`` alone could skip some: two processes may give out the same
        ``seq``, so a full page goes on from just below its last ``seq`` (the ones of that
        ``seq`` already given are passed over), and a page that one ``seq`` fills is read
        again, twice as large."""
        cursor, limit = -1, page
        tail_seq, tail_ids = -2, set[str]()  # the last seq given, and the ids given with it
        while True:
            batch = await self.list_invocations(
                statuses=statuses, after_seq=cursor, limit=limit, partition=partition
            )
            for rec in batch:
                if rec.seq == tail_seq and rec.id in tail_ids:
                    continue
                yield rec
            if len(batch) < limit:
                return
            last = batch[-1].seq
            ids = {rec.id for rec in batch if rec.seq == last}
            tail_ids = tail_ids | ids if last == tail_seq else ids
            tail_seq = last
            if batch[0].seq == last:
                limit *= 2  # one seq fills the page: the same place again, larger
            else:
                cursor, limit = last - 1, page

    async def count_invocations(self, cap: int = 100_000) -> dict[str, int]:
        """How many invocations have each status (every status in ``STATUSES``), each count
        stopping at ``cap`` (it then reads "at least"). This default pages through
        ``scan_invocations``; stores with a cheaper count override it."""
        counts: dict[str, int] = {}
        for status in STATUSES:
            n = 0
            async for _ in self.scan_invocations([status]):
                n += 1
                if n >= cap:
                    break
            counts[status] = n
        return counts

    async def count_timers(self) -> int:
        """How many durable timers the store holds (all partitions)."""
        return len(await self.list_timers())

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

    # ------------------------------------------------------------------ service settings

    @abstractmethod
    async def put_service_settings(self, record: ServiceSettingsRecord) -> None:
        """Insert or replace a service's overrides (last writer wins: an operator's edit)."""

    @abstractmethod
    async def list_service_settings(self) -> list[ServiceSettingsRecord]:
        """Every service's overrides, by service. Strongly consistent."""

    # ------------------------------------------------------------------ schedules

    @abstractmethod
    async def put_schedule(
        self, schedule: ScheduleRecord, expect_version: int | None = None
    ) -> None:
        """Write a schedule, compare-and-set. ``expect_version`` None: insert (ConflictError
        if the id exists); else the stored version must equal it (ConflictError if it does
        not, or if the schedule is gone) and ``schedule.version`` must be
        ``expect_version + 1`` (ValueError, nothing written, otherwise)."""

    @abstractmethod
    async def get_schedule(self, schedule_id: str) -> ScheduleRecord | None:
        """One schedule, or None. Strongly consistent."""

    @abstractmethod
    async def list_schedules(self, partition: int | None = None) -> list[ScheduleRecord]:
        """Every schedule (of ``partition`` if given), ordered by (``created_at``, ``id``).
        Strongly consistent."""

    @abstractmethod
    async def delete_schedule(self, schedule_id: str, expect_version: int | None = None) -> bool:
        """Remove a schedule; False if it did not exist. With ``expect_version``, only if the
        stored version equals it (ConflictError otherwise)."""

    # ------------------------------------------------------------------ limits and permits

    @abstractmethod
    async def put_limit(self, limit: LimitRecord, expect_version: int | None = None) -> None:
        """Write a limit, compare-and-set, as ``put_schedule``: ``expect_version`` None:
        insert (ConflictError if the name exists); else the stored version must equal it
        (ConflictError if it does not, or if the limit is gone) and ``limit.version`` must be
        ``expect_version + 1`` (ValueError, nothing written, otherwise)."""

    @abstractmethod
    async def get_limit(self, name: str) -> LimitRecord | None:
        """One limit, or None. Strongly consistent."""

    @abstractmethod
    async def list_limits(self) -> list[LimitRecord]:
        """Every limit, by name. Strongly consistent."""

    @abstractmethod
    async def delete_limit(self, name: str) -> bool:
        """Remove a limit; False if it did not exist."""

    @abstractmethod
    async def get_permit(self, limit: str, invocation_id: str, index: int) -> PermitRecord | None:
        """One permit row (written by ``CommitUnit.permits_*``), or None. Strongly
        consistent."""

    @abstractmethod
    async def list_permits(
        self, *, partition: int | None = None, limit: str | None = None
    ) -> list[PermitRecord]:
        """Every permit row (of limit instances of ``partition``, of the limit instance
        ``limit``: the filters combine), ordered by ``records.permit_order``: per limit,
        holders first, then waiters in service order. Strongly consistent, and complete for a
        partition: a new owner rebuilds its limit instances from it."""

    # ------------------------------------------------------------------ leadership

    @abstractmethod
    async def list_leases(self) -> list[LeaseRecord]:
        """The lease of every partition ever claimed, by partition. Strongly consistent."""

    @abstractmethod
    async def claim_lease(
        self, partition: int, owner: str, expect: LeaseRecord | None, now_ms: int
    ) -> LeaseRecord:
        """Become leader of ``partition`` if its lease is still exactly ``expect`` (same
        version; None: never claimed). The new lease has ``owner``, epoch ``expect.epoch + 1``
        (1 if never claimed) and version ``expect.version + 1`` (1). Raises ConflictError if
        the lease moved (someone renewed or claimed it)."""

    @abstractmethod
    async def renew_lease(self, lease: LeaseRecord, now_ms: int) -> LeaseRecord:
        """Extend a lease we hold: version + 1, if the stored lease still has ``lease``'s owner
        and epoch (the version is not compared, so a renewal that landed but reported a
        failure does not lose the lease). Raises FencedError if it was taken or released."""

    @abstractmethod
    async def release_lease(self, lease: LeaseRecord, now_ms: int) -> None:
        """Give a lease up (owner None, version + 1) if we still hold it; else do nothing."""

    @abstractmethod
    async def heartbeat(self, node: str, address: str, now_ms: int) -> None:
        """Insert or refresh this process's member record (version + 1)."""

    @abstractmethod
    async def list_members(self) -> list[MemberRecord]:
        """Every member record, by node."""

    @abstractmethod
    async def remove_member(self, node: str) -> None:
        """Delete a member record (a clean shutdown); missing is fine."""

    @abstractmethod
    async def read_inbox(self, partition: int, limit: int = 1000) -> list[tuple[str, str]]:
        """(message id, invocation id) of messages to ``partition`` (see ``CommitUnit.notify``),
        oldest first. Strongly consistent: a committed message is seen."""

    @abstractmethod
    async def ack_inbox(
        self, partition: int, message_ids: Sequence[str], epoch: int | None = None
    ) -> None:
        """Delete handled messages; unknown ids are ignored. With ``epoch``, only while the
        partition's lease is held at that epoch (else FencedError and nothing deleted): a
        leader that lost its partition mid-way must not delete messages its successor has
        not seen."""
