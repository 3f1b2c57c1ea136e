"""``StoreWrapper``: a Store that hands every call to an inner store through one hook,
``_call(method name, call)``. The fault injector and the retrying store are wrappers: each
overrides the hook (and the retrying store ``commit`` and ``claim_lease``, whose retries need
more thought than "call again")."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from ritornello.store._base import Store
from ritornello.store.records import (
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

T = TypeVar("T")


class StoreWrapper(Store):
    """Delegates every method to ``inner`` through ``_call``; ``partitions`` and
    ``exclusive`` mirror the inner store's once open."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.exclusive = inner.exclusive

    async def _call(self, method: str, call: Callable[[], Awaitable[T]]) -> T:
        """Run one call of ``method`` on the inner store (the hook wrappers override)."""
        return await call()

    # ------------------------------------------------------------------ lifecycle

    async def open(self) -> None:
        await self._call("open", self.inner.open)
        self.partitions = self.inner.partitions
        self.exclusive = self.inner.exclusive

    async def close(self) -> None:
        await self._call("close", self.inner.close)

    # ------------------------------------------------------------------ delegation

    async def commit(self, unit: CommitUnit) -> None:
        await self._call("commit", lambda: self.inner.commit(unit))

    async def seal(self, partition: int, epoch: int) -> None:
        await self._call("seal", lambda: self.inner.seal(partition, epoch))

    async def get_invocation(self, invocation_id: str) -> InvocationRecord | None:
        return await self._call("get_invocation", lambda: self.inner.get_invocation(invocation_id))

    async def get_journal(self, invocation_id: str) -> tuple[list[str], list[str]]:
        return await self._call("get_journal", lambda: self.inner.get_journal(invocation_id))

    async def get_state(self, service: str, key: str) -> dict[str, str]:
        return await self._call("get_state", lambda: self.inner.get_state(service, key))

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
        return await self._call(
            "list_invocations",
            lambda: self.inner.list_invocations(
                statuses=statuses,
                service=service,
                key=key,
                after_seq=after_seq,
                limit=limit,
                partition=partition,
                after=after,
                newest_first=newest_first,
            ),
        )

    async def find_idempotent(
        self, service: str, handler: str, key: str | None, idempotency_key: str
    ) -> InvocationRecord | None:
        return await self._call(
            "find_idempotent",
            lambda: self.inner.find_idempotent(service, handler, key, idempotency_key),
        )

    async def list_expired(
        self, before_ms: int, limit: int = 500, partition: int | None = None
    ) -> list[InvocationRecord]:
        return await self._call(
            "list_expired", lambda: self.inner.list_expired(before_ms, limit, partition)
        )

    async def list_timers(self, partition: int | None = None) -> list[TimerRecord]:
        return await self._call("list_timers", lambda: self.inner.list_timers(partition))

    async def max_seq(self) -> int:
        return await self._call("max_seq", self.inner.max_seq)

    async def count_invocations(self, cap: int = 100_000) -> dict[str, int]:
        return await self._call("count_invocations", lambda: self.inner.count_invocations(cap))

    async def count_timers(self) -> int:
        return await self._call("count_timers", self.inner.count_timers)

    async def put_deployment(self, deployment: DeploymentRecord) -> None:
        await self._call("put_deployment", lambda: self.inner.put_deployment(deployment))

    async def list_deployments(self) -> list[DeploymentRecord]:
        return await self._call("list_deployments", self.inner.list_deployments)

    async def delete_deployment(self, deployment_id: str) -> bool:
        return await self._call(
            "delete_deployment", lambda: self.inner.delete_deployment(deployment_id)
        )

    async def put_schedule(
        self, schedule: ScheduleRecord, expect_version: int | None = None
    ) -> None:
        await self._call("put_schedule", lambda: self.inner.put_schedule(schedule, expect_version))

    async def get_schedule(self, schedule_id: str) -> ScheduleRecord | None:
        return await self._call("get_schedule", lambda: self.inner.get_schedule(schedule_id))

    async def list_schedules(self, partition: int | None = None) -> list[ScheduleRecord]:
        return await self._call("list_schedules", lambda: self.inner.list_schedules(partition))

    async def delete_schedule(self, schedule_id: str, expect_version: int | None = None) -> bool:
        return await self._call(
            "delete_schedule", lambda: self.inner.delete_schedule(schedule_id, expect_version)
        )

    async def put_service_settings(self, record: ServiceSettingsRecord) -> None:
        await self._call("put_service_settings", lambda: self.inner.put_service_settings(record))

    async def list_service_settings(self) -> list[ServiceSettingsRecord]:
        return await self._call("list_service_settings", self.inner.list_service_settings)

    async def put_limit(self, limit: LimitRecord, expect_version: int | None = None) -> None:
        await self._call("put_limit", lambda: self.inner.put_limit(limit, expect_version))

    async def get_limit(self, name: str) -> LimitRecord | None:
        return await self._call("get_limit", lambda: self.inner.get_limit(name))

    async def list_limits(self) -> list[LimitRecord]:
        return await self._call("list_limits", self.inner.list_limits)

    async def delete_limit(self, name: str) -> bool:
        return await self._call("delete_limit", lambda: self.inner.delete_limit(name))

    async def get_permit(self, limit: str, invocation_id: str, index: int) -> PermitRecord | None:
        return await self._call(
            "get_permit", lambda: self.inner.get_permit(limit, invocation_id, index)
        )

    async def list_permits(
        self, *, partition: int | None = None, limit: str | None = None
    ) -> list[PermitRecord]:
        return await self._call(
            "list_permits", lambda: self.inner.list_permits(partition=partition, limit=limit)
        )

    async def list_leases(self) -> list[LeaseRecord]:
        return await self._call("list_leases", self.inner.list_leases)

    async def claim_lease(
        self, partition: int, owner: str, expect: LeaseRecord | None, now_ms: int
    ) -> LeaseRecord:
        return await self._call(
            "claim_lease", lambda: self.inner.claim_lease(partition, owner, expect, now_ms)
        )

    async def renew_lease(self, lease: LeaseRecord, now_ms: int) -> LeaseRecord:
        return await self._call("renew_lease", lambda: self.inner.renew_lease(lease, now_ms))

    async def release_lease(self, lease: LeaseRecord, now_ms: int) -> None:
        await self._call("release_lease", lambda: self.inner.release_lease(lease, now_ms))

    async def heartbeat(self, node: str, address: str, now_ms: int) -> None:
        await self._call("heartbeat", lambda: self.inner.heartbeat(node, address, now_ms))

    async def list_members(self) -> list[MemberRecord]:
        return await self._call("list_members", self.inner.list_members)

    async def remove_member(self, node: str) -> None:
        await self._call("remove_member", lambda: self.inner.remove_member(node))

    async def read_inbox(self, partition: int, limit: int = 1000) -> list[tuple[str, str]]:
        return await self._call("read_inbox", lambda: self.inner.read_inbox(partition, limit))

    async def ack_inbox(
        self, partition: int, message_ids: Sequence[str], epoch: int | None = None
    ) -> None:
        await self._call("ack_inbox", lambda: self.inner.ack_inbox(partition, message_ids, epoch))
