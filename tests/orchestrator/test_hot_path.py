"""The request hot path's shortcuts (docs/performance.md, "Orchestrator CPU per request"): each
one must give exactly what the slow way gave, and must only be taken when it is provably safe.
Real parts: a SQLite file, the SDK's in-process endpoint."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import secrets
import types
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TypeVar
from unittest import mock

import pytest

from ritornello import Context, Endpoint, Service, VirtualObject
from ritornello.orchestrator import Engine
from ritornello.protocol import _ids
from ritornello.store import InvocationRecord, InvocationWrite, TimerRecord, with_changes
from ritornello.store._wrapper import StoreWrapper
from ritornello.store.sqlite import SqliteStore

T = TypeVar("T")

tally = VirtualObject("Tally")


@tally.handler()
async def add(ctx: Context, delta: int) -> int:
    value = (await ctx.get("count") or 0) + delta
    ctx.set("count", value)
    return value


relay = Service("Relay")


@relay.handler()
async def via(ctx: Context, key: str) -> int:
    result: int = await ctx.call(add, 1, key=key)
    return result


class CountingStore(StoreWrapper):
    """Counts the calls of every store method (the reads the shortcuts save)."""

    def __init__(self, inner: SqliteStore) -> None:
        super().__init__(inner)
        self.calls: Counter[str] = Counter()

    async def _call(self, method: str, call: Callable[[], Awaitable[T]]) -> T:
        self.calls[method] += 1
        return await call()


async def _engine(path: Path, **kw: Any) -> tuple[Engine, CountingStore]:
    store = CountingStore(SqliteStore(path / "r.db"))
    await store.open()
    endpoint = Endpoint([tally, relay])
    engine = Engine(store, inprocess={"app": endpoint.inprocess()}, **kw)
    await engine.start()
    await engine.register_deployment("inproc://app")
    return engine, store


def test_new_id_is_base32_of_the_stamp_and_the_random_bytes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for n, now_ns in enumerate([0, 1_764_139_999_999_123_456, (2**48 - 1) * 1_000_000]):
        raw = bytes((n * 37 + i * 101) % 256 for i in range(11))
        monkeypatch.setattr(_ids, "time", types.SimpleNamespace(time_ns=lambda t=now_ns: t))
        monkeypatch.setattr(_ids, "_random_11", lambda r=raw: r)
        stamp = (now_ns // 1_000_000).to_bytes(6, "big")
        expected = "inv_" + base64.b32encode(stamp + raw).decode().lower()[:26]
        assert _ids.new_id() == expected


def test_new_ids_random_bytes_come_from_batches_and_never_twice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reads: list[int] = []

    def token_bytes(n: int) -> bytes:
        reads.append(n)
        return secrets.token_bytes(n)

    monkeypatch.setattr(_ids, "secrets", SimpleNamespace(token_bytes=token_bytes))
    _ids._forget_random()
    per_batch = _ids._RANDOM_BATCH // 11
    drawn = [_ids._random_11() for _ in range(2 * per_batch + 1)]
    assert all(len(b) == 11 for b in drawn)
    assert len(set(drawn)) == len(drawn)  # no slice handed out twice
    assert reads == [_ids._RANDOM_BATCH] * 3  # one read per batch
    _ids._forget_random()  # what a forked child does: the inherited bytes are never used
    _ids._random_11()
    assert len(reads) == 4


def test_fast_record_init_is_the_dataclass_init() -> None:
    """``slot_init``'s ``__init__`` builds what the dataclass's own would (a reference
    dataclass with the same fields), keeps ``frozen``, and refuses what it refuses."""
    cls: Any
    for cls, args in [
        (InvocationRecord, ("inv_a", "S", "h", None, "shared", "running", "dp", 7, 1, 2)),
        (TimerRecord, (5, "inv_a", "sleep")),
        (InvocationWrite, ("record",)),
    ]:
        reference = dataclasses.make_dataclass(
            "Reference",
            [(f.name, f.type, f) for f in dataclasses.fields(cls)],
            frozen=True,
            slots=True,
        )
        names = [f.name for f in dataclasses.fields(cls)]
        built = cls(*args)
        assert dataclasses.astuple(built) == dataclasses.astuple(reference(*args))
        by_name = cls(**dict(zip(names, args, strict=False)))
        assert by_name == built
        every = dataclasses.astuple(built)
        assert dataclasses.astuple(cls(*every)) == every
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(built, names[0], args[0])
        with pytest.raises(TypeError):
            cls(*args[:-1])
        with pytest.raises(TypeError):
            cls(*args, nope=1)


def test_with_changes_is_dataclasses_replace() -> None:
    rec = InvocationRecord("inv_a", "S", "h", "k", "exclusive", "running", "dp", 7, 1, 2)
    changes: dict[str, Any] = {"status": "completed", "result": "{}", "version": 2, "waiting": (3,)}
    assert with_changes(rec, **changes) == dataclasses.replace(rec, **changes)
    assert with_changes(rec) == rec
    with pytest.raises(TypeError):
        with_changes(rec, nope=1)


def test_a_key_queue_hands_record_and_state_over_without_reading_them(tmp_path: Path) -> None:
    """40 increments on 2 keys, sent at once the way the ingress sends them (``submit``, then
    at once ``wait_result`` with the created record): on each key, in arrival order, the
    results are 1..20 (every holder saw its predecessor's state), and the store was asked for
    no invocation, no journal, and one state per key (its first holder's)."""

    async def main() -> None:
        engine, store = await _engine(tmp_path)
        try:
            target = engine.registry.resolve("Tally", "add")
            assert target is not None

            async def request(key: str) -> tuple[InvocationRecord, int]:
                rec, created = await engine.submit(target, key, "1")
                assert created
                return rec, json.loads(await engine.wait_result(rec.id, created=rec))["value"]

            store.calls.clear()
            done = await asyncio.wait_for(
                asyncio.gather(*(request(f"k{i % 2}") for i in range(40))), 30
            )
            for key in ("k0", "k1"):
                values = [value for rec, value in sorted(done, key=lambda d: d[0].seq)
                          if rec.key == key]  # fmt: skip
                assert values == list(range(1, 21))
                assert await store.get_state("Tally", key) == {"count": "20"}
            assert store.calls["get_invocation"] == 0
            assert store.calls["get_journal"] == 0
            assert store.calls["get_state"] == 2 + 2  # the first holders', then the checks'
            # The keys are idle now: their next holders start from the state the last ones
            # left (no read), one after another as well as queued.
            for i in range(3):
                assert await request("k0") == (mock.ANY, 21 + i)
            done = await asyncio.gather(*(request("k1") for _ in range(5)))
            assert sorted(value for _, value in done) == [21, 22, 23, 24, 25]
            assert store.calls["get_state"] == 4
        finally:
            await engine.stop()
            await store.close()

    asyncio.run(main())


def test_a_completed_invocation_expires_a_retention_after_its_completion(
    tmp_path: Path,
) -> None:
    """``apply_answer`` sets ``expires_at`` of a completed record itself (``retention_ms``),
    to the value the core's ``emit`` would stamp: completion time plus the retention."""

    async def main() -> None:
        engine, store = await _engine(tmp_path, retention_s=1234.5)
        try:
            target = engine.registry.resolve("Tally", "add")
            assert target is not None
            rec, _ = await engine.submit(target, "k", "1")
            await asyncio.wait_for(engine.wait_result(rec.id, created=rec), 30)
            done = await store.get_invocation(rec.id)
            assert done is not None and done.status == "completed"
            assert done.expires_at == done.modified_at + 1_234_500
        finally:
            await engine.stop()
            await store.close()

    asyncio.run(main())


def test_waiting_with_a_stale_record_reads_the_store(tmp_path: Path) -> None:
    """A ``created`` record whose invocation has finished since is not trusted: the wait
    reads the store and answers at once instead of waiting for a finish that happened."""

    async def main() -> None:
        engine, store = await _engine(tmp_path)
        try:
            target = engine.registry.resolve("Tally", "add")
            assert target is not None
            rec, _ = await engine.submit(target, "k", "5")
            assert json.loads(await engine.wait_result(rec.id, created=rec)) == {"value": 5}
            reads = store.calls["get_invocation"]
            again = await asyncio.wait_for(engine.wait_result(rec.id, created=rec), 10)
            assert json.loads(again) == {"value": 5}
            assert store.calls["get_invocation"] == reads + 1
        finally:
            await engine.stop()
            await store.close()

    asyncio.run(main())


def test_an_operators_state_write_is_seen_by_the_next_holder(tmp_path: Path) -> None:
    """The idle key's cached state goes when an operator writes the key's state."""

    async def main() -> None:
        engine, store = await _engine(tmp_path)
        try:
            target = engine.registry.resolve("Tally", "add")
            assert target is not None

            async def add_one() -> int:
                rec, _ = await engine.submit(target, "k", "1")
                return int(json.loads(await engine.wait_result(rec.id, created=rec))["value"])

            assert [await add_one() for _ in range(3)] == [1, 2, 3]
            reads = store.calls["get_state"]
            assert await add_one() == 4  # from the cached state
            assert store.calls["get_state"] == reads
            version, state = await engine.read_state("Tally", "k")
            assert state == {"count": 4}
            await engine.write_state("Tally", "k", {"count": 100}, version)
            assert await add_one() == 101
            assert await store.get_state("Tally", "k") == {"count": "101"}
        finally:
            await engine.stop()
            await store.close()

    asyncio.run(main())


def test_callees_queued_behind_a_key_that_frees_during_the_callers_commit(
    tmp_path: Path,
) -> None:
    """Two callers at a time call an increment on one key: the second's callee is created
    queued (the key busy) in its caller's commit, which lands late, while the first callee
    finishes and frees the key. The key's queue must not start it before its creation is
    committed (its driver would find nothing and stop, and the key would stay stuck)."""

    async def main() -> None:
        engine, store = await _engine(tmp_path)
        inner_commit = store.commit

        async def commit(unit: Any) -> None:
            # a caller's unit creating a callee lands late: the key frees meanwhile
            if any(
                w.expect_version is None and w.record.service == "Tally" for w in unit.invocations
            ):
                await asyncio.sleep(0.02)
            await inner_commit(unit)

        store.commit = commit  # type: ignore[method-assign]
        inner_get = store.get_invocation

        async def get_invocation(invocation_id: str) -> InvocationRecord | None:
            found = await inner_get(invocation_id)
            if found is None:  # a read that missed answers only after the creation landed
                await asyncio.sleep(0.05)
            return found

        store.get_invocation = get_invocation  # type: ignore[method-assign]
        try:
            target = engine.registry.resolve("Relay", "via")
            assert target is not None

            async def request(key: str) -> int:
                rec, _ = await engine.submit(target, None, json.dumps(key))
                return int(json.loads(await engine.wait_result(rec.id, created=rec))["value"])

            async def later(key: str) -> int:
                await asyncio.sleep(0.01)  # its callee queues behind the first one's
                return await request(key)

            done: list[int] = []
            for _ in range(5):
                done += await asyncio.wait_for(asyncio.gather(request("k"), later("k")), 10)
            assert sorted(done) == list(range(1, 11))
        finally:
            await engine.stop()
            await store.close()

    asyncio.run(main())
