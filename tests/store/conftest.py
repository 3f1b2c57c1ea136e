"""Fixtures of the store tests: ``store`` is an opened store of every backend."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from ritornello.store import InvocationRecord, Store
from ritornello.store.memory import MemoryStore
from ritornello.store.sqlite import SqliteStore

T = TypeVar("T")
Run = Callable[[Awaitable[T]], T]

BACKENDS = ["memory", "sqlite"]


def make_store(backend: str, directory: Path) -> Store:
    if backend == "memory":
        return MemoryStore()
    return SqliteStore(directory / "data" / "ritornello.db")


def inv(id: str = "inv_1", **fields: Any) -> InvocationRecord:
    """An invocation record with plausible defaults."""
    values: dict[str, Any] = {
        "service": "Counter",
        "handler": "add",
        "key": "alice",
        "handler_kind": "exclusive",
        "status": "running",
        "deployment_id": "dp_1",
        "seq": 1,
        "created_at": 1_700_000_000_000,
        "modified_at": 1_700_000_000_000,
    }
    values.update(fields)
    return InvocationRecord(id=id, **values)


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture
def run(loop: asyncio.AbstractEventLoop) -> Callable[[Awaitable[Any]], Any]:
    """Run a coroutine to completion on the test's event loop."""

    def run(awaitable: Awaitable[Any]) -> Any:
        return loop.run_until_complete(awaitable)

    return run


@pytest.fixture(params=BACKENDS)
def store(
    request: pytest.FixtureRequest, tmp_path: Path, run: Callable[[Awaitable[Any]], Any]
) -> Iterator[Store]:
    store = make_store(request.param, tmp_path)
    run(store.open())
    yield store
    run(store.close())
