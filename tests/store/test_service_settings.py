"""Operators' service settings in every backend: replaced whole, listed by service, kept
beside (not inside) the meta rows and deployments, and there after the store is reopened."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from ritornello.store import DeploymentRecord, ServiceSettingsRecord, Store
from ritornello.store.sqlite import SqliteStore

Run = Callable[[Awaitable[Any]], Any]


def test_put_replaces_and_list_orders_by_service(store: Store, run: Run) -> None:
    assert run(store.list_service_settings()) == []
    b = ServiceSettingsRecord("B", '{"ingress_private":true}', 2)
    a = ServiceSettingsRecord("Ä/ü", "{}", 1)  # any unicode, even a slash
    run(store.put_service_settings(b))
    run(store.put_service_settings(a))
    assert run(store.list_service_settings()) == [b, a]
    b2 = ServiceSettingsRecord("B", '{"journal_retention_ms":1000}', 3)
    run(store.put_service_settings(b2))
    assert run(store.list_service_settings()) == [b2, a]
    run(store.put_deployment(DeploymentRecord("dp_1", "http://x", "[]", 1)))
    assert run(store.list_service_settings()) == [b2, a]
    assert [d.id for d in run(store.list_deployments())] == ["dp_1"]


def test_sqlite_keeps_them_across_a_reopen(tmp_path: Path) -> None:
    async def go() -> None:
        path = str(tmp_path / "s.db")
        record = ServiceSettingsRecord("Greeter", '{"abort_timeout_ms":5}', 7)
        async with SqliteStore(path) as store:
            await store.put_service_settings(record)
        async with SqliteStore(path) as store:
            assert await store.list_service_settings() == [record]
            assert store.partitions == 1  # the meta table's own rows are untouched

    asyncio.run(go())
