"""The journal tail of the DynamoDB store (docs/dynamodb.md, "The journal tail"): a plain
step's entries go inline in the invocation item (one PutItem), and move out into one chunk
item when the item would pass ``ITEM_LIMIT``; large and S3-bound entries are items of their
own. Two stores on one table (moto over HTTP): one remembers what it wrote and commits
without reading, the other reads first.

What must hold: the journal reads back exactly as committed, whatever mix of steps, other
units (transactional: the tail is carried or moved out), entry sizes and writers; an
invocation item holding a tail stays within ``ITEM_LIMIT``; items written before the tail
existed read as before and take a tail on their next step; a purge leaves no item; a flush
whose answer was lost, or which never landed, is retried without losing or repeating an entry.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ritornello import Context, Endpoint, Service
from ritornello.orchestrator import Engine
from ritornello.store import (
    CommitUnit,
    InvocationWrite,
    TimerRecord,
    UnavailableError,
)
from ritornello.store import _dynamo_keys as keys
from ritornello.store._dynamo_client import DynamoClient
from ritornello.store._dynamo_models import key_of
from ritornello.store._dynamo_stats import item_size
from ritornello.store._dynamo_tail import CHUNK, ENTRY_LIMIT, ITEM_LIMIT, TAIL
from ritornello.store.dynamodb import DynamoStore
from ritornello.store.records import with_changes
from tests.apps.plain_steps import add_steps
from tests.procs import check_store

from .conftest import Run, dynamo_url, inv, make_dynamo_store

#: entry sizes (bytes of padding): inline, near the limit, past ENTRY_LIMIT, S3-bound
SIZES = [20, 150, 420, ENTRY_LIMIT + 200, 360_000]
_ids = itertools.count()


@pytest.fixture
def stores(tmp_path: Path, run: Run[Any]) -> Iterator[tuple[DynamoStore, DynamoStore, int]]:
    """Two stores on one table and the epoch of partition 0's lease (claimed by the first)."""
    a, b = make_dynamo_store(tmp_path), make_dynamo_store(tmp_path)
    run(a.open())
    run(b.open())
    lease = run(a.claim_lease(0, "a", None, 1))
    yield a, b, lease.epoch
    run(a.close())
    run(b.close())


def _text(index: int, size: int) -> str:
    return json.dumps({"index": index, "pad": "x" * size})


def _raw(store: DynamoStore, inv_id: str) -> list[dict[str, Any]]:
    return list(store._connect().query_pk(keys.invocation_pk(inv_id)))


class Journal:
    """One invocation driven through the store, and the journal it must read back."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch
        self.rec = inv(f"inv_{next(_ids)}", partition=0)
        self.entries: list[str] = []

    def create(self) -> CommitUnit:
        self.entries.append(_text(0, 30))
        return CommitUnit(
            invocations=[InvocationWrite(self.rec)],
            entries=[(self.rec.id, 0, self.entries[0])],
            fences=[(0, self.epoch)],
        )

    def step(self, sizes: list[int], *, timer: bool = False, final: bool = False) -> CommitUnit:
        start = self.rec.journal_len
        texts = [_text(start + n, size) for n, size in enumerate(sizes)]
        changes: dict[str, Any] = {
            "journal_len": start + len(texts),
            "version": self.rec.version + 1,
            "modified_at": self.rec.modified_at + 1,
        }
        if final:
            changes.update(status="completed", result='{"value": 1}')
        new = with_changes(self.rec, **changes)
        unit = CommitUnit(
            invocations=[InvocationWrite(new, expect_version=self.rec.version)],
            entries=[(new.id, start + n, text) for n, text in enumerate(texts)],
            timers_add=[TimerRecord(9, new.id, "sleep", start, 0)] if timer else [],
            fences=[(0, self.epoch)],
        )
        self.rec = new
        self.entries += texts
        return unit


async def _check(store: DynamoStore, journal: Journal) -> None:
    entries, _ = await store.get_journal(journal.rec.id)
    assert entries == journal.entries
    assert await store.get_invocation(journal.rec.id) == journal.rec
    raw = await store._run(
        store._connect().get, key_of(keys.invocation_pk(journal.rec.id), keys.INVOCATION_SK)
    )
    if TAIL in raw:
        assert item_size(raw) <= ITEM_LIMIT


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    steps=st.lists(
        st.tuples(
            st.lists(
                st.sampled_from(SIZES[:3] * 6 + SIZES[3:]), min_size=1, max_size=3
            ),  # mostly inline
            st.booleans(),  # committed by the store that reads first
            st.integers(0, 5),  # 0: a unit that also adds a timer (not a plain step)
        ),
        min_size=1,
        max_size=16,
    ),
    final=st.booleans(),
)
def test_journals_read_back_as_committed(
    stores: tuple[DynamoStore, DynamoStore, int],
    run: Run[Any],
    steps: list[tuple[list[int], bool, int]],
    final: bool,
) -> None:
    a, b, epoch = stores

    async def scenario() -> None:
        journal = Journal(epoch)
        await a.commit(journal.create())
        await _check(b, journal)
        writer = a
        for sizes, by_b, kind in steps:
            other = b if by_b else a
            if other is not writer:
                writer = other  # the other store's memory is stale: it reads again
            await writer.commit(journal.step(sizes, timer=kind == 0))
            await _check(b, journal)
        if final:
            await writer.commit(journal.step([40], final=True))
            await _check(a, journal)

    run(scenario())


def test_tail_chunks_and_items(stores: tuple[DynamoStore, DynamoStore, int], run: Run[Any]) -> None:
    """Small entries go inline, one PutItem a step, and move out as one chunk; large and
    S3-bound ones are items of their own; the finish carries the tail."""
    a, _, epoch = stores

    async def scenario() -> None:
        journal = Journal(epoch)
        await a.commit(journal.create())
        a.stats.reset()
        for _ in range(12):
            await a.commit(journal.step([60]))
        puts = a.stats.snapshot()["requests"].get("PutItem", 0)
        assert puts >= 8, a.stats.snapshot()
        await a.commit(journal.step([ENTRY_LIMIT + 1]))
        await a.commit(journal.step([360_000]))
        await a.commit(journal.step([60]))
        await a.commit(journal.step([40], final=True))
        await _check(a, journal)
        items = await a._run(_raw, a, journal.rec.id)
        chunks = [i for i in items if CHUNK in i]
        singles = [i for i in items if i["sk"]["S"].startswith("e#") and CHUNK not in i]
        assert chunks, items
        assert len(singles) == 2 and {"v", "ref"} == {k for i in singles for k in i} & {
            "v",
            "ref",
        }
        placed = sum(len(i[CHUNK]["M"]) for i in chunks) + len(singles)
        tail = next(i for i in items if i["sk"]["S"] == keys.INVOCATION_SK).get(TAIL)
        placed += len(tail["M"]) if tail else 0
        assert placed == len(journal.entries)  # each index in exactly one place

    run(scenario())


def test_items_written_before_the_tail_read_as_before(
    stores: tuple[DynamoStore, DynamoStore, int], run: Run[Any]
) -> None:
    """An invocation item with no tail and one entry item per index (the layout before):
    read back unchanged, and its next step starts a tail."""
    a, b, epoch = stores

    async def scenario() -> None:
        journal = Journal(epoch)
        client = a._connect()
        first = journal.create()
        await a.commit(first)
        # rewrite it the old way: no tail, the entry as an item of its own
        item = await a._run(
            client.get, key_of(keys.invocation_pk(journal.rec.id), keys.INVOCATION_SK)
        )
        del item[TAIL]
        await a._run(lambda: client.call("PutItem", Item=item))
        entry = {
            **key_of(keys.invocation_pk(journal.rec.id), keys.entry_sk(0)),
            "v": {"S": journal.entries[0]},
        }
        await a._run(lambda: client.call("PutItem", Item=entry))
        await _check(b, journal)
        await b.commit(journal.step([30]))  # b reads: it finds no tail and starts one
        await a.commit(journal.step([30, 30]))  # a remembers an older version: it reads too
        await _check(b, journal)
        items = await a._run(_raw, a, journal.rec.id)
        assert [i["sk"]["S"] for i in items] == [keys.entry_sk(0), keys.INVOCATION_SK]

    run(scenario())


def test_purge_leaves_nothing(stores: tuple[DynamoStore, DynamoStore, int], run: Run[Any]) -> None:
    a, b, epoch = stores

    async def scenario() -> None:
        journal = Journal(epoch)
        await a.commit(journal.create())
        for size in [60] * 10 + [ENTRY_LIMIT + 1, 360_000, 60]:
            await a.commit(journal.step([size]))
        await a.commit(journal.step([40], final=True))
        items = await a._run(_raw, a, journal.rec.id)
        assert any(CHUNK in i for i in items) and any(TAIL in i for i in items)
        await b.commit(CommitUnit(purge=[journal.rec.id]))
        assert await a._run(_raw, a, journal.rec.id) == []
        assert await a.get_journal(journal.rec.id) == ([], [])
        assert await a.get_invocation(journal.rec.id) is None

    run(scenario())


@pytest.mark.parametrize("landed", [True, False])
def test_a_flush_is_applied_once(
    stores: tuple[DynamoStore, DynamoStore, int],
    run: Run[Any],
    monkeypatch: pytest.MonkeyPatch,
    landed: bool,
) -> None:
    """The transaction that moves a tail out into a chunk fails ambiguously, after landing
    (its answer lost) or before: the retry of the same unit applies it exactly once."""
    a, b, epoch = stores
    call = DynamoClient.call
    flushes: list[int] = []

    def lossy(self: DynamoClient, operation: str, **kwargs: Any) -> dict[str, Any]:
        is_flush = operation == "TransactWriteItems" and any(
            CHUNK in part.get("Put", {}).get("Item", {}) for part in kwargs["TransactItems"]
        )
        if is_flush:
            flushes.append(1)
            if len(flushes) == 1 and not landed:
                raise UnavailableError("connection refused before the request was sent")
        response = call(self, operation, **kwargs)
        if is_flush and len(flushes) == 1:
            raise UnavailableError("connection reset after the request was sent")
        return response

    async def scenario() -> None:
        journal = Journal(epoch)
        await a.commit(journal.create())
        monkeypatch.setattr(DynamoClient, "call", lossy)
        while not flushes:
            unit = journal.step([60])
            try:
                await a.commit(unit)
            except UnavailableError:
                await a.commit(unit)  # the caller's retry of the same unit
        assert len(flushes) == 2
        await _check(b, journal)
        await a.commit(journal.step([60]))  # and the journal goes on
        await _check(b, journal)

    run(scenario())


def test_a_tail_survives_every_transactional_write(
    stores: tuple[DynamoStore, DynamoStore, int], run: Run[Any]
) -> None:
    """Units that are not plain steps (a timer, a status change, several entries) rewrite
    the invocation item in a transaction: the tail goes on with it."""
    a, b, epoch = stores

    async def scenario() -> None:
        journal = Journal(epoch)
        await a.commit(journal.create())
        await a.commit(journal.step([20]))
        await b.commit(journal.step([20], timer=True))
        suspended = with_changes(
            journal.rec, status="suspended", version=journal.rec.version + 1, waiting=(3,)
        )
        await a.commit(
            CommitUnit(
                invocations=[InvocationWrite(suspended, expect_version=journal.rec.version)],
                fences=[(0, epoch)],
            )
        )
        journal.rec = suspended
        await _check(b, journal)
        resumed = with_changes(
            journal.rec, status="running", version=journal.rec.version + 1, waiting=()
        )
        await b.commit(
            CommitUnit(
                invocations=[InvocationWrite(resumed, expect_version=journal.rec.version)],
                fences=[(0, epoch)],
            )
        )
        journal.rec = resumed
        await a.commit(journal.step([20, 20, 20]))
        await _check(a, journal)
        items = await a._run(_raw, a, journal.rec.id)
        assert [i["sk"]["S"] for i in items] == [keys.INVOCATION_SK]  # all of it in the tail

    run(scenario())


def test_concurrent_journals(stores: tuple[DynamoStore, DynamoStore, int], run: Run[Any]) -> None:
    """Journals of many invocations stepped at once by one store stay apart."""
    a, b, epoch = stores

    async def one() -> None:
        journal = Journal(epoch)
        await a.commit(journal.create())
        for _ in range(9):
            await a.commit(journal.step([80]))
        await a.commit(journal.step([40], final=True))
        await _check(b, journal)

    async def scenario() -> None:
        await asyncio.gather(*(one() for _ in range(6)))

    run(scenario())


def test_check_finds_a_store_with_tails_and_chunks_clean(tmp_path: Path) -> None:
    """``ritornello check`` (its own process) on a table the engine wrote: ten-step handlers
    finished (their tails moved out into chunks) and handlers asleep mid-way (a tail)."""

    async def main() -> None:
        store = make_dynamo_store(tmp_path)
        await store.open()
        endpoint = Endpoint([svc])
        engine = Engine(store, inprocess={"app": endpoint.inprocess()}, node="n1")
        await engine.start()
        await engine.register_deployment("inproc://app")
        try:
            for handler in ("ten", "ten", "asleep", "asleep"):
                target = engine.registry.resolve("Tail", handler)
                assert target is not None
                rec, _ = await engine.submit(target, None, "1")
                if handler == "ten":
                    assert json.loads(await engine.wait_result(rec.id)) == {"value": 11}
            for _ in range(100):  # the sleepers reach their sleep
                found = await store.list_invocations(statuses=["suspended"])
                if len(found) == 2:
                    break
                await asyncio.sleep(0.05)
            assert len(found) == 2
        finally:
            await engine.stop()
            await store.close()
        items = store._connect().call("Scan")["Items"]
        assert any(TAIL in i for i in items) and any(CHUNK in i for i in items)

    asyncio.run(main())
    print(check_store(dynamo_url(tmp_path)))


svc = Service("Tail")


@svc.handler()
async def ten(ctx: Context, n: int) -> int:
    return await add_steps(ctx, n, 10)


@svc.handler()
async def asleep(ctx: Context, n: int) -> int:
    total = await add_steps(ctx, n, 4)
    await ctx.sleep(3600)
    return total
