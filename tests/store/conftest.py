"""Fixtures of the store tests: ``store`` is an opened store of every backend.

The DynamoDB backend talks to one moto server per session (real HTTP on 127.0.0.1, started on
first use), with dummy credentials; every test gets its own table (named after its temporary
directory), created by the store's own ``init``.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from ritornello.store import InvocationRecord, Store
from ritornello.store.memory import MemoryStore
from ritornello.store.sqlite import SqliteStore
from tests.moto_server import cheap_moto_snapshots, serial_moto_server

T = TypeVar("T")
Run = Callable[[Awaitable[T]], T]

#: "sqlite" runs its writer in a child process (the default), "sqlite-thread" on a thread.
BACKENDS = ["memory", "sqlite", "sqlite-thread", "dynamodb"]

#: Partitions of the DynamoDB test tables (the conformance suite uses partitions 0..3).
DYNAMO_PARTITIONS = 4
DYNAMO_REGION = "eu-west-1"
_moto: dict[str, Any] = {}


def moto_endpoint() -> str:
    """The session's moto server (started on first use) with dummy AWS credentials."""
    if "endpoint" not in _moto:
        patch = pytest.MonkeyPatch()
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_EC2_METADATA_DISABLED": "true",
        }.items():
            patch.setenv(name, value)
        for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB"):
            patch.delenv(name, raising=False)
        cheap_moto_snapshots(patch.setattr)
        server = serial_moto_server()(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        _moto.update(server=server, patch=patch, endpoint=f"http://{host}:{port}")
    return str(_moto["endpoint"])


@pytest.fixture(scope="session", autouse=True)
def _stop_moto() -> Iterator[None]:
    yield
    if "server" in _moto:
        _moto.pop("server").stop()
        _moto.pop("patch").undo()
        _moto.clear()


def dynamo_url(directory: Path, *, bucket: str | None = "ritornello-test", **options: Any) -> str:
    """A store URL of a table named after ``directory`` on the session's moto server."""
    table = "t" + hashlib.sha256(str(directory).encode()).hexdigest()[:16]
    query = {"region": DYNAMO_REGION, "endpoint_url": moto_endpoint()}
    query["partitions"] = str(options.pop("partitions", DYNAMO_PARTITIONS))
    if bucket is not None:
        query["bucket"] = bucket
    query.update({k: str(v) for k, v in options.items()})
    return f"dynamodb://{table}?" + "&".join(f"{k}={v}" for k, v in query.items())


def make_dynamo_store(directory: Path, **options: Any) -> Any:
    """A DynamoDB store on a fresh (or this directory's) table, initialized, not opened."""
    from ritornello.store import _dynamo_schema
    from ritornello.store.dynamodb import DynamoStore

    store = DynamoStore.from_url(dynamo_url(directory, **options))
    _dynamo_schema.init(store._connect(), store.settings.partitions)
    return store


def make_store(backend: str, directory: Path) -> Store:
    if backend == "memory":
        return MemoryStore()
    if backend == "dynamodb":
        store: Store = make_dynamo_store(directory)
        return store
    writer = "thread" if backend == "sqlite-thread" else "process"
    return SqliteStore(directory / "data" / "ritornello.db", writer=writer)


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
