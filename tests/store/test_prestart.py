"""``ritornello._child``: a writer process started early is the one the store opens with; one
nobody takes goes away; a dead one is not taken."""

from __future__ import annotations

import os
import signal
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ritornello import _child
from ritornello.store.sqlite import SqliteStore

from .test_sqlite import unit

Run = Callable[[Awaitable[Any]], Any]
MODULE = "ritornello.store._sqlite_process"


@pytest.fixture(autouse=True)
def _nothing_left() -> Iterator[None]:
    yield
    _child.discard(MODULE)


def test_the_store_opens_with_the_prestarted_writer(tmp_path: Path, run: Run) -> None:
    _child.prestart(MODULE)
    process = _child._prestarted[MODULE][0]
    _child.prestart(MODULE)  # once only
    assert _child._prestarted[MODULE][0] is process

    async def body() -> None:
        async with SqliteStore(tmp_path / "r.db") as store:
            assert store._writer is not None and store._writer.pid == process.pid
            await store.commit(unit(1))
            assert MODULE not in _child._prestarted
        async with SqliteStore(tmp_path / "r.db") as again:  # nothing prestarted: a new one
            assert again._writer is not None and again._writer.pid != process.pid
            assert await again.get_invocation("inv_0001") is not None

    run(body())
    assert process.poll() is not None  # closing the store stopped it


def test_a_prestarted_writer_nobody_takes_goes_away() -> None:
    _child.prestart(MODULE)
    process = _child._prestarted[MODULE][0]
    _child.discard(MODULE)
    assert process.poll() is not None and MODULE not in _child._prestarted
    _child.discard(MODULE)  # nothing to do


def test_a_dead_prestarted_writer_is_not_taken(tmp_path: Path, run: Run) -> None:
    _child.prestart(MODULE)
    process = _child._prestarted[MODULE][0]
    os.kill(process.pid, signal.SIGKILL)
    process.wait()

    async def body() -> None:
        async with SqliteStore(tmp_path / "r.db") as store:
            assert store._writer is not None and store._writer.pid != process.pid
            await store.commit(unit(1))

    run(body())
