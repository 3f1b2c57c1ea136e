"""Partitions, leases and epochs: several engines sharing one store (the in-memory one, so
the logic is tested without processes; tests/integration/test_scaleout.py runs real processes
on DynamoDB).

What must hold: each partition has one leader at a time; a newcomer gets a fair share; a dead
leader's partitions are taken over within two lease periods; a leader that lost its lease but
does not know it (frozen clock) cannot write — its fenced commit fails and it steps down; work
submitted to any engine completes exactly once, with results, however leadership moves.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from typing import Any

import pytest

from ritornello import Context, Endpoint, Service, VirtualObject
from ritornello.orchestrator import Engine
from ritornello.orchestrator.core import partition_of
from ritornello.orchestrator.runtime import Leadership
from ritornello.protocol import RetryPolicy
from ritornello.store import CommitUnit, FencedError
from ritornello.store.memory import MemoryStore

FAST = RetryPolicy(initial_interval_ms=5, factor=2.0, max_interval_ms=50)
LEASE_S = 0.3

svc = Service("PSvc")
obj = VirtualObject("PObj")
effects: Counter[str] = Counter()


@svc.handler()
async def double(ctx: Context, n: int) -> int:
    return await ctx.run("double", lambda: n * 2)


@svc.handler()
async def fan(ctx: Context, n: int) -> int:
    total = 0
    for i in range(n):
        total += await ctx.call(double, i)
    await ctx.sleep(0.02)
    return total


@obj.handler()
async def add(ctx: Context, item: str) -> list[str]:
    items: list[str] = await ctx.get("items") or []
    await ctx.sleep(0.005)
    items.append(item)
    ctx.set("items", items)

    def effect() -> None:
        effects[f"{ctx.key}:{item}"] += 1

    await ctx.run("effect", effect)
    return items


class FrozenClock:
    """A monotonic clock a test moves by hand (a paused process's view of time); the wall
    clock is the real one, so durable timers come due as usual."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


def _store(partitions: int = 8) -> MemoryStore:
    return MemoryStore(partitions=partitions, exclusive=False)  # several "processes" share it


async def _engine(store: MemoryStore, node: str, **kw: Any) -> Engine:
    endpoint = Endpoint([svc, obj])
    engine = Engine(
        store,
        retry=FAST,
        inprocess={"app": endpoint.inprocess()},
        node=node,
        lease_s=LEASE_S,
        inbox_interval_s=0.01,
        **kw,
    )
    await engine.start()
    if not engine.registry.deployments:
        await engine.register_deployment("inproc://app")
    return engine


async def _submit(engine: Engine, target: str, value: Any, key: str | None = None) -> str:
    service, handler = target.split("/")
    resolved = engine.registry.resolve(service, handler)
    if resolved is None:  # registered by another engine: learn it from the store
        await engine.refresh_deployments()
        resolved = engine.registry.resolve(service, handler)
    assert resolved is not None
    rec, _ = await engine.submit(resolved, key, json.dumps(value))
    return rec.id


async def _result(engine: Engine, inv_id: str) -> Any:
    return json.loads(await asyncio.wait_for(engine.wait_result(inv_id), 20))


async def _crash(engine: Engine) -> None:
    """Stop an engine the way kill -9 would: nothing released, nothing written."""
    tasks = engine.abandon()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _wait_for(predicate: Any, within_s: float = 10.0) -> None:
    for _ in range(int(within_s / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached in time")


def test_partition_of_keeps_a_key_together_and_spreads_ids() -> None:
    assert partition_of("S", "k", "inv_a", 16) == partition_of("S", "k", "inv_b", 16)
    assert partition_of("S", None, "inv_a", 1) == 0
    spread = Counter(partition_of("S", None, f"inv_{i}", 16) for i in range(1600))
    assert len(spread) == 16 and min(spread.values()) > 50
    assert 0 <= partition_of("S", "\x00ü", "x", 7) < 7


def test_leases_balance_and_move_off_a_dead_member() -> None:
    async def main() -> None:
        store = _store(6)
        await store.open()
        a = Leadership(store, "a", lease_s=LEASE_S)
        b = Leadership(store, "b", lease_s=LEASE_S)
        await a.tick()
        assert a.owned() == list(range(6))  # alone: leads everything at once
        await b.tick()
        assert b.owned() == []  # the others are live: nothing to take yet
        await a.tick()  # a sees a hungry member and hands over its surplus
        await b.tick()
        assert sorted(a.owned() + b.owned()) == list(range(6))
        assert len(a.owned()) == 3 and len(b.owned()) == 3
        epochs = {lease.partition: lease.epoch for lease in await store.list_leases()}
        # a dies: b sees a's leases stop moving and claims them after one lease period
        await b.tick()
        assert len(b.owned()) == 3
        await asyncio.sleep(LEASE_S * 1.1)
        await b.tick()  # a's leases (and heartbeat) have not moved for a lease period
        assert b.owned() == list(range(6))
        await b.tick()  # a is not a live member any more: nothing to hand back
        assert b.owned() == list(range(6))
        for lease in await store.list_leases():
            if lease.partition in a.owned():
                assert lease.epoch == epochs[lease.partition] + 1
        assert not any(a.holds(p) for p in range(6))  # a never renewed: expired
        await store.close()

    asyncio.run(main())


def test_a_frozen_leader_is_fenced_out_and_steps_down() -> None:
    async def main() -> None:
        store = _store(2)
        await store.open()
        clock = FrozenClock()
        a = Leadership(store, "a", lease_s=LEASE_S, clock=clock)
        await a.tick()
        assert a.owned() == [0, 1]
        stale = {p: a.epoch(p) for p in (0, 1)}
        b = Leadership(store, "b", lease_s=LEASE_S)
        await b.tick()
        await asyncio.sleep(LEASE_S * 1.1)
        await b.tick()
        assert b.owned() == [0, 1]
        assert a.holds(0)  # its clock stood still: it still believes it leads
        unit = CommitUnit(entries=[("inv_x", 0, "{}")], fences=[(0, stale[0] or 0)])
        try:
            await store.commit(unit)
        except FencedError as exc:
            assert exc.partition == 0
        else:
            raise AssertionError("a stale epoch wrote")
        assert await store.get_journal("inv_x") == ([], [])
        await a.tick()  # its renewal is refused: it steps down
        assert a.owned() == []
        await store.close()

    asyncio.run(main())


def test_two_engines_share_work_and_survive_a_crash() -> None:
    async def main() -> None:
        effects.clear()
        store = _store(8)
        await store.open()
        a = await _engine(store, "a")
        b = await _engine(store, "b")
        try:
            await _wait_for(lambda: len(b.leadership.owned()) == 4)
            assert sorted(a.leadership.owned() + b.leadership.owned()) == list(range(8))
            ids: dict[str, Any] = {}
            for i in range(12):
                engine = (a, b)[i % 2]
                ids[await _submit(engine, "PSvc/fan", 4)] = {"value": 12}
            for i in range(24):
                engine = (a, b)[i % 2]
                await _submit(engine, "PObj/add", f"i{i}", f"k{i % 4}")
            # a dies with work in flight; b takes its partitions over and finishes everything
            await asyncio.sleep(0.05)
            await _crash(a)
            for inv_id, expected in ids.items():
                assert await _result(b, inv_id) == expected
            for k in range(4):
                rid = await _submit(b, "PObj/add", "last", f"k{k}")
                items = (await _result(b, rid))["value"]
                assert items[-1] == "last" and len(items) == 7
                assert sorted(items[:-1]) == sorted(f"i{i}" for i in range(k, 24, 4))
            assert b.leadership.owned() == list(range(8))
            assert all(n >= 1 for n in effects.values()) and len(effects) == 24 + 4
            for lease in await store.list_leases():
                assert lease.owner == "b"
            # work crossed partitions through inboxes, and b recovered what a led
            assert a.counters["reconciled"] + b.counters["reconciled"] > 0
            assert b.counters["partitions_recovered"] >= 8
        finally:
            await b.stop()
            await store.close()

    asyncio.run(main())


lapse = Service("Lapse")
gate: dict[str, asyncio.Event] = {}


@lapse.handler()
async def nap(ctx: Context, _: None) -> str:
    await ctx.sleep(0.4)
    return "rested"


@lapse.handler()
async def blocked(ctx: Context, _: None) -> str:
    async def wait() -> str:
        await gate["step"].wait()
        return "stepped"

    return await ctx.run("wait", wait)


class SlowRenewals(MemoryStore):
    """A shared store whose lease renewals can be held in flight by the test."""

    def __init__(self) -> None:
        super().__init__(partitions=1, exclusive=False)
        self.hold: asyncio.Event | None = None
        self.held = 0

    async def renew_lease(self, lease: Any, now_ms: int) -> Any:
        if self.hold is not None:
            self.held += 1
            await self.hold.wait()
        return await super().renew_lease(lease, now_ms)


# the livelock this guards against froze the event loop: a hang, reported with stacks
@pytest.mark.timeout(20, method="thread")
def test_a_lease_lapse_with_its_renewal_in_flight_loses_nothing() -> None:
    """While a renewal is in flight past the lease's validity, the leader may not act but
    must not give anything up either: a due timer waits (without spinning the event loop,
    which would keep the renewal's verdict from ever arriving) and an attempt that answers
    meanwhile commits once the renewal lands, instead of its driver being dropped while
    the partition stays ours."""

    async def main() -> None:
        store = SlowRenewals()
        await store.open()
        clock = FrozenClock()
        gate["step"] = asyncio.Event()
        engine = Engine(
            store,
            retry=FAST,
            inprocess={"app": Endpoint([lapse]).inprocess()},
            node="solo",
            lease_s=LEASE_S,
            inbox_interval_s=0.01,
            clock=clock,
        )
        await engine.start()
        try:
            await engine.register_deployment("inproc://app")
            napper = await _submit(engine, "Lapse/nap", None)
            stepper = await _submit(engine, "Lapse/blocked", None)
            await _wait_for(lambda: engine.timers.pending(napper, "sleep", 1) or False)
            # a renewal goes out and hangs; meanwhile the lease's validity runs out
            store.hold = asyncio.Event()
            await _wait_for(lambda: store.held > 0)
            clock.now += LEASE_S
            assert not engine.leadership.holds(0)
            gate["step"].set()  # the attempt answers during the lapse
            await asyncio.sleep(0.6)  # the sleep's timer comes due during the lapse
            assert (await store.get_invocation(napper)).status == "suspended"  # type: ignore[union-attr]
            assert engine.leadership.owned() == [0]
            store.hold.set()  # the renewal lands: still the leader
            store.hold = None
            assert await _result(engine, napper) == {"value": "rested"}
            assert await _result(engine, stepper) == {"value": "stepped"}
            assert engine.counters["fenced"] == 0
        finally:
            await engine.stop()
            await store.close()

    asyncio.run(main())


def test_a_deployment_another_process_serves_is_named_unreachable_not_unregistered() -> None:
    """A deployment in the store that this process cannot reach (an in-process app served
    by another process) fails an attempt with "registered but not reachable" and why, not
    "not registered"; a deployment the store does not hold still says "not registered"."""

    async def main() -> None:
        store = _store(partitions=2)
        await store.open()
        a = await _engine(store, "a")
        try:
            resolved = a.registry.resolve("PSvc", "double")
            assert resolved is not None
            rec, _ = await a.submit(resolved, None, "4", delay_ms=300)
        finally:
            await _crash(a)  # its partitions move to b after the lease
        b = Engine(store, retry=FAST, node="b", lease_s=LEASE_S, inbox_interval_s=0.01)
        await b.start()
        try:
            assert b.deployments.endpoint(resolved.deployment_id) is None
            why = b.deployments.missing(resolved.deployment_id)
            assert "registered but not reachable from this orchestrator" in why
            assert "no in-process endpoint named 'app' in this process" in why
            assert b.deployments.missing("dp_gone") == "deployment dp_gone is not registered"
            for _ in range(200):  # the delayed send comes due on b, which cannot reach it
                found = await store.get_invocation(rec.id)
                assert found is not None
                if found.last_error:
                    break
                await asyncio.sleep(0.02)
            assert found.last_error is not None
            assert "registered but not reachable" in found.last_error, found.last_error
        finally:
            await b.stop()
            await store.close()

    asyncio.run(main())
