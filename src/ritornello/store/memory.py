"""``MemoryStore``: the store in dicts, for tests of logic. Same semantics as the SQLite store
(the conformance suite checks both), no durability, no threads.

Invariant: a commit unit is applied in place while an undo log records every change; a failed
condition replays the log backwards, so a conflicting unit leaves no trace. Nothing awaits
between the first change and the last, so no other coroutine can observe a half-applied unit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ritornello.store._base import Store
from ritornello.store._checks import check_unit
from ritornello.store._records import (
    CommitUnit,
    DeploymentRecord,
    InvocationRecord,
    TimerRecord,
)
from ritornello.store.errors import ConflictError, StoreClosedError, StoreError

_MISSING: Any = object()

_IdemKey = tuple[str, str, str | None, str]
_TimerKey = tuple[str, str, int]


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

    def __init__(self) -> None:
        self._opened = False
        self._closed = False
        self._invocations: dict[str, InvocationRecord] = {}
        self._idempotency: dict[_IdemKey, str] = {}
        self._journal: dict[str, dict[int, str]] = {}
        self._completions: dict[str, dict[int, str]] = {}
        self._state: dict[tuple[str, str], dict[str, str]] = {}
        self._timers: dict[_TimerKey, TimerRecord] = {}
        self._deployments: dict[str, DeploymentRecord] = {}

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
        for invocation_id, index, text in unit.completions:
            completions = self._completions.get(invocation_id)
            if completions is None:
                completions = {}
                undo.set(self._completions, invocation_id, completions)
            if index not in completions:
                undo.set(completions, index, text)
        for service, key, name, value in unit.state:
            self._change_state(service, key, name, value, undo)
        for timer in unit.timers_remove:
            undo.delete(self._timers, (timer.invocation_id, timer.kind, timer.index))
        for timer in unit.timers_add:
            undo.set(self._timers, (timer.invocation_id, timer.kind, timer.index), timer)

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
        ]
        found.sort(key=lambda r: (r.seq, r.id))
        return found[: max(limit, 0)]

    async def list_expired(self, before_ms: int, limit: int = 500) -> list[InvocationRecord]:
        self._check_open()
        found = [
            r
            for r in self._invocations.values()
            if r.status in ("completed", "killed") and r.modified_at < before_ms
        ]
        found.sort(key=lambda r: r.modified_at)
        return found[: max(limit, 0)]

    async def find_idempotent(
        self, service: str, handler: str, key: str | None, idempotency_key: str
    ) -> InvocationRecord | None:
        self._check_open()
        invocation_id = self._idempotency.get((service, handler, key, idempotency_key))
        return None if invocation_id is None else self._invocations[invocation_id]

    async def list_timers(self) -> list[TimerRecord]:
        self._check_open()
        return sorted(
            self._timers.values(), key=lambda t: (t.fire_at, t.invocation_id, t.kind, t.index)
        )

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
