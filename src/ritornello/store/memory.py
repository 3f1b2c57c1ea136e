"""``MemoryStore``: the store in dicts, for tests of logic. Same semantics as the SQLite store
(the conformance suite checks both), no durability, no threads.

Invariant: a commit unit is applied in place while an undo log records every change; a failed
condition replays the log backwards, so a conflicting unit leaves no trace. Nothing awaits
between the first change and the last, so no other coroutine can observe a half-applied unit.
Fences are checked before anything is changed; lease, member and inbox operations are likewise
single synchronous steps, so each is atomic with respect to every commit.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections import Counter
from collections.abc import Sequence
from typing import Any

from ritornello.store._base import Store
from ritornello.store._checks import (
    check_fence,
    check_limit,
    check_partitions,
    check_schedule,
    check_unit,
    check_version,
    holds,
    lost,
    moved,
)
from ritornello.store.errors import ConflictError, StoreClosedError, StoreError
from ritornello.store.records import (
    FINAL_STATUSES,
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
    permit_order,
)

_MISSING: Any = object()

_IdemKey = tuple[str, str, str | None, str]
_TimerKey = tuple[str, str, int]
_PermitKey = tuple[str, str, int]  # (limit, invocation id, index)


def _idem_key(record: InvocationRecord) -> _IdemKey | None:
    if record.idempotency_key is None:
        return None
    return (record.service, record.handler, record.key, record.idempotency_key)


class _Undo:
    """Changes to dicts, recorded so they can be reverted."""

    __slots__ = ("log",)

    def __init__(self) -> None:
        self.log: list[tuple[dict[Any, Any], Any, Any]] = []

    def set(self, d: dict[Any, Any], k: Any, v: Any) -> None:
        self.log.append((d, k, d.get(k, _MISSING)))
        d[k] = v

    def delete(self, d: dict[Any, Any], k: Any) -> None:
        old = d.pop(k, _MISSING)
        if old is not _MISSING:
            self.log.append((d, k, old))

    def revert(self) -> None:
        for d, k, old in reversed(self.log):
            if old is _MISSING:
                d.pop(k, None)
            else:
                d[k] = old


class MemoryStore(Store):
    """Everything in dicts. Safe for any number of coroutines on one event loop."""

    def __init__(self, partitions: int = 1, *, exclusive: bool = True) -> None:
        self.partitions = check_partitions(partitions)
        #: One engine per store by default; tests of several engines sharing one store
        #: pass ``exclusive=False`` (leases then expire as between processes).
        self.exclusive = exclusive
        self._opened = False
        self._closed = False
        self._invocations: dict[str, InvocationRecord] = {}
        self._idempotency: dict[_IdemKey, str] = {}
        self._journal: dict[str, dict[int, str]] = {}
        self._completions: dict[str, dict[int, str]] = {}
        self._state: dict[tuple[str, str], dict[str, str]] = {}
        self._timers: dict[_TimerKey, TimerRecord] = {}
        self._deployments: dict[str, DeploymentRecord] = {}
        self._schedules: dict[str, ScheduleRecord] = {}
        self._limits: dict[str, LimitRecord] = {}
        self._service_settings: dict[str, ServiceSettingsRecord] = {}
        self._permits: dict[_PermitKey, PermitRecord] = {}
        self._leases: dict[int, LeaseRecord] = {}
        self._members: dict[str, MemberRecord] = {}
        # partition -> message id -> invocation id, in insertion (= message id) order
        self._inbox: dict[int, dict[str, str]] = {}
        # message ids only ever increase; one taken by a failed unit is simply skipped
        self._message_ids = itertools.count(1)

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError("the store is closed")
        if not self._opened:
            raise StoreError("the store is not open")

    async def open(self) -> None:
        if self._closed:
            raise StoreClosedError("the store is closed")
        self._opened = True

    async def close(self) -> None:
        self._closed = True

    async def commit(self, unit: CommitUnit) -> None:
        self._check_open()
        check_unit(unit)
        undo = _Undo()
        try:
            self._apply(unit, undo)
        except ConflictError:
            undo.revert()
            raise

    def _apply(self, unit: CommitUnit, undo: _Undo) -> None:
        for partition, epoch in unit.fences:
            check_fence(partition, epoch, self._leases.get(partition))
        for invocation_id in unit.purge:
            self._purge(invocation_id, undo)
        for write in unit.invocations:
            self._write_invocation(write.record, write.expect_version, undo)
        for invocation_id, index, text in unit.entries:
            entries = self._journal.get(invocation_id)
            if entries is None:
                entries = {}
                undo.set(self._journal, invocation_id, entries)
            if index in entries:
                raise ConflictError(f"journal entry {invocation_id}[{index}] is already written")
            undo.set(entries, index, text)
        fresh = {(i, n) for i, n in unit.fresh} if unit.fresh else ()
        for invocation_id, index, text in unit.completions:
            completions = self._completions.get(invocation_id)
            if completions is None:
                completions = {}
                undo.set(self._completions, invocation_id, completions)
            if index not in completions:
                undo.set(completions, index, text)
            elif (invocation_id, index) in fresh:
                raise ConflictError(f"completion {invocation_id}[{index}] is already written")
        for invocation_id, index in unit.completions_remove:
            completions = self._completions.get(invocation_id)
            if completions is not None:
                undo.delete(completions, index)
        for service, key, name, value in unit.state:
            self._change_state(service, key, name, value, undo)
        for timer in unit.timers_remove:
            undo.delete(self._timers, (timer.invocation_id, timer.kind, timer.index))
        for timer in unit.timers_add:
            undo.set(self._timers, (timer.invocation_id, timer.kind, timer.index), timer)
        if unit.permits_release or unit.permits_ask or unit.permits_grant:
            self._apply_permits(unit, undo)
        for partition, invocation_id in unit.notify:
            messages = self._inbox.get(partition)
            if messages is None:
                messages = {}
                undo.set(self._inbox, partition, messages)
            undo.set(messages, str(next(self._message_ids)), invocation_id)

    def _apply_permits(self, unit: CommitUnit, undo: _Undo) -> None:
        for limit, invocation_id, index in unit.permits_release:
            undo.delete(self._permits, (limit, invocation_id, index))
        for permit in unit.permits_ask:
            name = (permit.limit, permit.invocation_id, permit.index)
            if name not in self._permits:
                undo.set(self._permits, name, permit)
        for permit in unit.permits_grant:
            name = (permit.limit, permit.invocation_id, permit.index)
            current = self._permits.get(name)
            if current is None or current.granted_at is not None:
                state = "does not exist" if current is None else "is already granted"
                raise ConflictError(
                    f"permit {permit.limit!r} {permit.invocation_id}[{permit.index}] {state}"
                )
            undo.set(self._permits, name, permit)

    def _write_invocation(
        self, record: InvocationRecord, expect_version: int | None, undo: _Undo
    ) -> None:
        current = self._invocations.get(record.id)
        if expect_version is None:
            if current is not None:
                return  # idempotent creation: the first write stands
        elif current is None:
            raise ConflictError(f"invocation {record.id} does not exist")
        elif current.version != expect_version:
            raise ConflictError(
                f"invocation {record.id} is at version {current.version}, not {expect_version}"
            )
        old_key = _idem_key(current) if current is not None else None
        new_key = _idem_key(record)
        if new_key is not None and new_key != old_key:
            other = self._idempotency.get(new_key)
            if other is not None and other != record.id:
                raise ConflictError(
                    f"invocation {other} already holds idempotency key {new_key[3]!r} "
                    f"for {new_key[0]}/{new_key[1]}"
                )
        if old_key is not None and old_key != new_key:
            undo.delete(self._idempotency, old_key)
        if new_key is not None:
            undo.set(self._idempotency, new_key, record.id)
        undo.set(self._invocations, record.id, record)

    def _change_state(
        self, service: str, key: str, name: str | None, value: str | None, undo: _Undo
    ) -> None:
        object_key = (service, key)
        if name is None:
            undo.delete(self._state, object_key)
            return
        names = self._state.get(object_key)
        if value is None:
            if names is not None:
                undo.delete(names, name)
            return
        if names is None:
            names = {}
            undo.set(self._state, object_key, names)
        undo.set(names, name, value)

    def _purge(self, invocation_id: str, undo: _Undo) -> None:
        current = self._invocations.get(invocation_id)
        if current is not None:
            idem = _idem_key(current)
            if idem is not None:
                undo.delete(self._idempotency, idem)
            undo.delete(self._invocations, invocation_id)
        undo.delete(self._journal, invocation_id)
        undo.delete(self._completions, invocation_id)
        for timer_key in [k for k in self._timers if k[0] == invocation_id]:
            undo.delete(self._timers, timer_key)

    async def get_invocation(self, invocation_id: str) -> InvocationRecord | None:
        self._check_open()
        return self._invocations.get(invocation_id)

    async def get_journal(self, invocation_id: str) -> tuple[list[str], list[str]]:
        self._check_open()
        entries = self._journal.get(invocation_id, {})
        completions = self._completions.get(invocation_id, {})
        return (
            [entries[i] for i in sorted(entries)],
            [completions[i] for i in sorted(completions)],
        )

    async def get_state(self, service: str, key: str) -> dict[str, str]:
        self._check_open()
        names = self._state.get((service, key), {})
        return {name: names[name] for name in sorted(names)}

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
        self._check_open()
        wanted = None if statuses is None else frozenset(statuses)
        found = [
            r
            for r in self._invocations.values()
            if r.seq > after_seq
            and (wanted is None or r.status in wanted)
            and (service is None or r.service == service)
            and (key is None or r.key == key)
            and (partition is None or r.partition == partition)
            and (
                after is None or ((r.seq, r.id) < after if newest_first else (r.seq, r.id) > after)
            )
        ]
        found.sort(key=lambda r: (r.seq, r.id), reverse=newest_first)
        return found[: max(limit, 0)]

    async def list_expired(
        self, before_ms: int, limit: int = 500, partition: int | None = None
    ) -> list[InvocationRecord]:
        self._check_open()
        found = [
            r
            for r in self._invocations.values()
            if r.status in FINAL_STATUSES
            and r.expires_at is not None
            and r.expires_at < before_ms
            and (partition is None or r.partition == partition)
        ]
        found.sort(key=lambda r: (r.expires_at or 0, r.id))
        return found[: max(limit, 0)]

    async def find_idempotent(
        self, service: str, handler: str, key: str | None, idempotency_key: str
    ) -> InvocationRecord | None:
        self._check_open()
        invocation_id = self._idempotency.get((service, handler, key, idempotency_key))
        return None if invocation_id is None else self._invocations[invocation_id]

    async def list_timers(self, partition: int | None = None) -> list[TimerRecord]:
        self._check_open()
        return sorted(
            (t for t in self._timers.values() if partition is None or t.partition == partition),
            key=lambda t: (t.fire_at, t.invocation_id, t.kind, t.index),
        )

    async def count_invocations(self, cap: int = 100_000) -> dict[str, int]:
        self._check_open()
        found = Counter(r.status for r in self._invocations.values())
        return {status: min(found[status], cap) for status in STATUSES}

    async def count_timers(self) -> int:
        self._check_open()
        return len(self._timers)

    async def max_seq(self) -> int:
        self._check_open()
        return max((r.seq for r in self._invocations.values()), default=0)

    async def put_deployment(self, deployment: DeploymentRecord) -> None:
        self._check_open()
        self._deployments[deployment.id] = deployment

    async def list_deployments(self) -> list[DeploymentRecord]:
        self._check_open()
        return sorted(self._deployments.values(), key=lambda d: (d.created_at, d.id))

    async def delete_deployment(self, deployment_id: str) -> bool:
        self._check_open()
        return self._deployments.pop(deployment_id, None) is not None

    # --- schedules --------------------------------------------------------------------------

    async def put_schedule(
        self, schedule: ScheduleRecord, expect_version: int | None = None
    ) -> None:
        self._check_open()
        check_schedule(schedule, expect_version)
        current = self._schedules.get(schedule.id)
        stored = None if current is None else current.version
        check_version(f"schedule {schedule.id}", stored, expect_version)
        self._schedules[schedule.id] = schedule

    async def get_schedule(self, schedule_id: str) -> ScheduleRecord | None:
        self._check_open()
        return self._schedules.get(schedule_id)

    async def list_schedules(self, partition: int | None = None) -> list[ScheduleRecord]:
        self._check_open()
        return sorted(
            (s for s in self._schedules.values() if partition is None or s.partition == partition),
            key=lambda s: (s.created_at, s.id),
        )

    async def delete_schedule(self, schedule_id: str, expect_version: int | None = None) -> bool:
        self._check_open()
        current = self._schedules.get(schedule_id)
        if current is None:
            return False
        if expect_version is not None:
            check_version(f"schedule {schedule_id}", current.version, expect_version)
        del self._schedules[schedule_id]
        return True

    # --- service settings -------------------------------------------------------------------

    async def put_service_settings(self, record: ServiceSettingsRecord) -> None:
        self._check_open()
        self._service_settings[record.service] = record

    async def list_service_settings(self) -> list[ServiceSettingsRecord]:
        self._check_open()
        return [self._service_settings[name] for name in sorted(self._service_settings)]

    # --- limits and permits -----------------------------------------------------------------

    async def put_limit(self, limit: LimitRecord, expect_version: int | None = None) -> None:
        self._check_open()
        check_limit(limit, expect_version)
        current = self._limits.get(limit.name)
        stored = None if current is None else current.version
        check_version(f"limit {limit.name!r}", stored, expect_version)
        self._limits[limit.name] = limit

    async def get_limit(self, name: str) -> LimitRecord | None:
        self._check_open()
        return self._limits.get(name)

    async def list_limits(self) -> list[LimitRecord]:
        self._check_open()
        return [self._limits[name] for name in sorted(self._limits)]

    async def delete_limit(self, name: str) -> bool:
        self._check_open()
        return self._limits.pop(name, None) is not None

    async def get_permit(self, limit: str, invocation_id: str, index: int) -> PermitRecord | None:
        self._check_open()
        return self._permits.get((limit, invocation_id, index))

    async def list_permits(
        self, *, partition: int | None = None, limit: str | None = None
    ) -> list[PermitRecord]:
        self._check_open()
        return sorted(
            (
                p
                for p in self._permits.values()
                if (partition is None or p.partition == partition)
                and (limit is None or p.limit == limit)
            ),
            key=permit_order,
        )

    # --- leadership -------------------------------------------------------------------------

    async def list_leases(self) -> list[LeaseRecord]:
        self._check_open()
        return [self._leases[p] for p in sorted(self._leases)]

    async def claim_lease(
        self, partition: int, owner: str, expect: LeaseRecord | None, now_ms: int
    ) -> LeaseRecord:
        self._check_open()
        current = self._leases.get(partition)
        if moved(expect, current):
            raise ConflictError(f"lease of partition {partition} moved: it is {current}")
        epoch, version = (1, 1) if current is None else (current.epoch + 1, current.version + 1)
        lease = LeaseRecord(partition, owner, epoch, version, now_ms)
        self._leases[partition] = lease
        return lease

    async def renew_lease(self, lease: LeaseRecord, now_ms: int) -> LeaseRecord:
        self._check_open()
        current = self._leases.get(lease.partition)
        if current is None or not holds(current, lease):
            raise lost(lease, current)
        renewed = dataclasses.replace(current, version=current.version + 1, renewed_at=now_ms)
        self._leases[lease.partition] = renewed
        return renewed

    async def release_lease(self, lease: LeaseRecord, now_ms: int) -> None:
        self._check_open()
        current = self._leases.get(lease.partition)
        if current is not None and holds(current, lease):
            self._leases[lease.partition] = dataclasses.replace(
                current, owner=None, version=current.version + 1, renewed_at=now_ms
            )

    async def heartbeat(self, node: str, address: str, now_ms: int) -> None:
        self._check_open()
        current = self._members.get(node)
        version = 1 if current is None else current.version + 1
        self._members[node] = MemberRecord(node, address, now_ms, version)

    async def list_members(self) -> list[MemberRecord]:
        self._check_open()
        return [self._members[node] for node in sorted(self._members)]

    async def remove_member(self, node: str) -> None:
        self._check_open()
        self._members.pop(node, None)

    async def read_inbox(self, partition: int, limit: int = 1000) -> list[tuple[str, str]]:
        self._check_open()
        messages = self._inbox.get(partition, {})
        return list(itertools.islice(messages.items(), max(limit, 0)))

    async def ack_inbox(
        self, partition: int, message_ids: Sequence[str], epoch: int | None = None
    ) -> None:
        self._check_open()
        if epoch is not None:
            check_fence(partition, epoch, self._leases.get(partition))
        messages = self._inbox.get(partition)
        if messages is not None:
            for message_id in message_ids:
                messages.pop(message_id, None)
