"""The SQLite writer in a child process (``_sqlite_process.py``): what its wire and its death
must not break. The conformance suite and ``test_sqlite_batch_equivalence`` run the same
store contract on it; these are about what only a writer behind a socket can get wrong."""

from __future__ import annotations

import asyncio
import marshal
import os
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ritornello.store import (
    CommitUnit,
    ConflictError,
    FencedError,
    InvocationRecord,
    InvocationWrite,
    StoreError,
    TimerRecord,
    UnavailableError,
)
from ritornello.store.records import unit_from_tuple, unit_to_tuple
from ritornello.store.sqlite import SqliteStore

from .conftest import inv
from .test_sqlite import unit

Run = Callable[[Awaitable[Any]], Any]


class Text(str):
    """A str subclass: marshal cannot write it, so its unit goes pickled."""


def test_a_conflict_in_a_shared_frame_fails_only_its_unit(tmp_path: Path, run: Run) -> None:
    async def body() -> None:
        async with SqliteStore(tmp_path / "r.db") as store:
            await store.commit(unit(0))
            bad = CommitUnit(
                invocations=[InvocationWrite(inv("inv_bad", seq=999))],
                entries=[("inv_0000", 0, '"again"')],  # written already: a conflict after writing
            )
            units = [unit(i) for i in range(1, 50)]
            units.insert(25, bad)
            before = store.transactions
            results = await asyncio.gather(*map(store.commit, units), return_exceptions=True)
            assert store.transactions - before == 1  # one frame, one transaction
            assert type(results[25]) is ConflictError
            assert [r for n, r in enumerate(results) if n != 25] == [None] * 49
            assert await store.get_invocation("inv_bad") is None
            for i in range(1, 50):
                assert await store.get_state("Counter", f"inv_{i:04}") == {"n": str(i)}

    run(body())


def test_values_that_cannot_cross_fail_alone_and_others_go_pickled(
    tmp_path: Path, run: Run
) -> None:
    """A value SQLite cannot bind fails its unit in the child; one pickle cannot write fails
    its unit in the parent; a str subclass (not marshal's) is sent pickled and stored."""

    async def body() -> None:
        async with SqliteStore(tmp_path / "r.db") as store:
            results = await asyncio.gather(
                store.commit(unit(1)),
                store.commit(CommitUnit(entries=[("inv_x", 0, object())])),  # type: ignore[list-item]
                store.commit(CommitUnit(entries=[("inv_y", 0, lambda: 1)])),  # type: ignore[list-item]
                store.commit(CommitUnit(entries=[("inv_z", 0, Text('"subclass"'))])),
                store.commit(unit(2)),
                return_exceptions=True,
            )
            assert results[0] is None and results[3] is None and results[4] is None
            assert type(results[1]) is StoreError and "parameter" in str(results[1])
            assert type(results[2]) is StoreError and "pickle" in str(results[2])
            assert await store.get_journal("inv_x") == ([], [])
            assert await store.get_journal("inv_y") == ([], [])
            assert await store.get_journal("inv_z") == (['"subclass"'], [])
            assert {i.id for i in await store.list_invocations()} == {"inv_0001", "inv_0002"}

    run(body())


def test_a_fenced_error_keeps_its_partition(tmp_path: Path, run: Run) -> None:
    async def body() -> None:
        async with SqliteStore(tmp_path / "r.db", partitions=4) as store:
            lease = await store.claim_lease(3, "node-a", None, 1_000)
            with pytest.raises(FencedError) as caught:
                await store.commit(CommitUnit(fences=[(3, lease.epoch + 1)], notify=[(3, "x")]))
            assert caught.value.partition == 3
            await store.commit(CommitUnit(fences=[(3, lease.epoch)], notify=[(3, "y")]))
            assert [m[1] for m in await store.read_inbox(3)] == ["y"]

    run(body())


def test_a_large_unit_among_small_ones(tmp_path: Path, run: Run) -> None:
    """A frame far larger than the socket's buffers arrives whole, and in its place."""
    big = '"' + "x" * (8 << 20) + '"'

    async def body() -> None:
        async with SqliteStore(tmp_path / "r.db") as store:
            units = [unit(i) for i in range(20)]
            units[7].entries.append(("inv_0007", 1, big))
            await asyncio.gather(*map(store.commit, units))
            assert (await store.get_journal("inv_0007"))[0][1] == big
            assert len(await store.list_invocations()) == 20

    run(body())


def test_a_cancelled_commit_still_lands_and_answers_stay_in_order(tmp_path: Path, run: Run) -> None:
    async def body() -> None:
        async with SqliteStore(tmp_path / "r.db") as store:
            tasks = [asyncio.ensure_future(store.commit(unit(i))) for i in range(30)]
            await asyncio.sleep(0)  # all submitted
            tasks[3].cancel()
            dup = asyncio.ensure_future(store.commit(unit(5)))  # a conflict, answered after
            results = await asyncio.gather(*tasks, return_exceptions=True)
            assert isinstance(results[3], asyncio.CancelledError)
            assert [r for n, r in enumerate(results) if n != 3] == [None] * 29
            with pytest.raises(ConflictError):
                await dup
            assert await store.get_invocation("inv_0003") is not None  # it ran anyway

    run(body())


def test_a_dead_writer_fails_commits_and_says_so(tmp_path: Path, run: Run) -> None:
    """SIGKILL the child: what was acknowledged is in the file; a commit in flight fails as
    "may or may not have landed"; every later one fails at once; ``writer_failed`` names the
    process; closing does not hang; the file opens again with everything acknowledged."""
    path = tmp_path / "r.db"

    async def body() -> None:
        store = SqliteStore(path)
        await store.open()
        await asyncio.gather(*(store.commit(unit(i)) for i in range(10)))
        writer = store._writer
        assert writer is not None and writer.pid is not None and store.writer_failed is not None
        tasks = [asyncio.ensure_future(store.commit(unit(i))) for i in range(10, 200)]
        await asyncio.sleep(0)
        os.kill(writer.pid, signal.SIGKILL)
        results = await asyncio.gather(*tasks, return_exceptions=True)
        failed = [r for r in results if r is not None]
        assert failed and all(isinstance(r, UnavailableError) for r in failed), failed[:3]
        error = await asyncio.wait_for(store.writer_failed, 10)
        assert f"pid {writer.pid}" in str(error) and "gone" in str(error)
        with pytest.raises(StoreError, match="gone"):
            await store.commit(unit(500))
        await store.close()
        landed = {n for n, r in zip(range(10, 200), results, strict=True) if r is None}
        async with SqliteStore(path) as again:
            ids = {i.id for i in await again.list_invocations()}
            assert {f"inv_{i:04}" for i in [*range(10), *landed]} <= ids

    run(body())


def test_the_thread_writer_has_no_failure_future(tmp_path: Path, run: Run) -> None:
    async def body() -> None:
        async with SqliteStore(tmp_path / "r.db", writer="thread") as store:
            assert store.writer_failed is None
            await store.commit(unit(1))

    run(body())


_text = st.text(max_size=8)
_int = st.integers(-(2**63), 2**63 - 1)
_records = st.builds(
    InvocationRecord,
    id=_text,
    service=_text,
    handler=_text,
    key=st.none() | _text,
    handler_kind=_text,
    status=_text,
    deployment_id=_text,
    seq=_int,
    created_at=_int,
    modified_at=_int,
    attempt=_int,
    journal_len=_int,
    waiting=st.lists(_int, max_size=3).map(tuple),
    caller_id=st.none() | _text,
    caller_index=st.none() | _int,
    idempotency_key=st.none() | _text,
    result=st.none() | _text,
    last_error=st.none() | _text,
    next_at=st.none() | _int,
    version=_int,
    partition=_int,
    expires_at=st.none() | _int,
    history=st.none() | _text,
)
_timers = st.builds(TimerRecord, _int, _text, _text, _int, _int)
_rows = st.tuples(_text, _int, _text)
_units = st.builds(
    CommitUnit,
    invocations=st.lists(st.builds(InvocationWrite, _records, st.none() | _int), max_size=3),
    entries=st.lists(_rows, max_size=3),
    completions=st.lists(_rows, max_size=3),
    state=st.lists(st.tuples(_text, _text, st.none() | _text, st.none() | _text), max_size=3),
    timers_add=st.lists(_timers, max_size=2),
    timers_remove=st.lists(_timers, max_size=2),
    purge=st.lists(_text, max_size=2),
    fences=st.lists(st.tuples(_int, _int), max_size=2),
    notify=st.lists(st.tuples(_int, _text), max_size=2),
)


@settings(max_examples=300, deadline=None)
@given(_units)
def test_a_unit_crosses_marshal_unchanged(unit: CommitUnit) -> None:
    assert unit_from_tuple(marshal.loads(marshal.dumps(unit_to_tuple(unit)))) == unit


def test_another_event_loop_is_refused(tmp_path: Path, run: Run) -> None:
    store = SqliteStore(tmp_path / "r.db")
    run(store.open())
    try:
        with pytest.raises(StoreError, match="another event loop"):
            asyncio.run(store.commit(unit(1)))
        run(store.commit(unit(2)))  # its own loop still commits
    finally:
        run(store.close())
