"""Retry budgets (pause or kill after the last attempt) and operator actions (kill, pause,
resume) on the engine, with the in-memory store and an in-process endpoint."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from ritornello import Context, Endpoint, Service, TerminalError, VirtualObject, Workflow
from ritornello.orchestrator import Engine, ManualClock, OrchestratorError, http_status
from ritornello.orchestrator.invokers import FakeInvoker, Faults
from ritornello.protocol import DiscoveryResponse, RetryPolicy
from ritornello.store.memory import MemoryStore
from ritornello.store.sqlite import SqliteStore
from tests.orchestrator._wait import until_status

FAST = RetryPolicy(initial_interval_ms=2, factor=1.0, max_interval_ms=2)
broken = {"on": True}

ops = Service("Ops")
box = VirtualObject("Box")


@ops.handler(retry=RetryPolicy(max_attempts=3))
async def fragile(ctx: Context, name: str) -> str:
    if broken["on"]:
        raise RuntimeError(f"still broken for {name}")
    return f"fixed {name}"


@ops.handler(retry=RetryPolicy(max_attempts=2, on_max_attempts="kill"))
async def doomed(ctx: Context) -> None:
    raise RuntimeError("never works")


@ops.handler()
async def calls_doomed(ctx: Context) -> int:
    try:
        await ctx.call(doomed)
    except TerminalError as exc:
        return exc.status_code
    return 0


@box.handler()
async def nap(ctx: Context, seconds: float) -> str:
    await ctx.sleep(timedelta(seconds=seconds))
    ctx.set("napped", True)
    return "awake"


async def _engine() -> tuple[Engine, MemoryStore]:
    store = MemoryStore()
    await store.open()
    endpoint = Endpoint([ops, box])
    engine = Engine(store, retry=FAST, inprocess={"app": endpoint.inprocess()})
    await engine.start()
    await engine.register_deployment("inproc://app")
    return engine, store


async def _submit(engine: Engine, target: str, value: Any, key: str | None = None) -> str:
    service, handler = target.split("/")
    resolved = engine.registry.resolve(service, handler)
    assert resolved is not None
    rec, _ = await engine.submit(resolved, key, json.dumps(value))
    return rec.id


@pytest.mark.parametrize(
    ("key", "state", "message"),
    [
        ("k", {"n": float("inf")}, "invalid JSON state value 'n': NaN and infinities"),
        ("k", {"n": [float("nan")]}, "NaN and infinities"),
        ("k", {"n": 2**64}, "64 bits"),
        ("k", {"n": "\ud800"}, "not valid UTF-8"),
        ("k", {"ok": 1, "\ud800": 1}, "state name .* is not valid UTF-8"),
        ("a\x00b", {"n": 1}, "object_key must not contain control characters"),
        ("\udc80", {"n": 1}, "object_key is not valid UTF-8"),
    ],
)
def test_state_writes_take_values_as_the_ingress_takes_bodies(
    key: str, state: dict[str, Any], message: str
) -> None:
    """Every caller of ``write_state`` gets the ingress's checks (400), never a value stored
    as something else (orjson writes an infinity as ``null``) or a 500."""

    async def main() -> None:
        engine, store = await _engine()
        try:
            with pytest.raises(OrchestratorError, match=message) as info:
                await engine.write_state("Box", key, state, None)
            assert http_status(info.value) == 400
            assert await store.get_state("Box", key) == {}
            deep: Any = 1
            for _ in range(300):
                deep = [deep]
            with pytest.raises(OrchestratorError, match="deeper than 128"):
                await engine.write_state("Box", "k", {"n": deep}, None)
        finally:
            await engine.stop()

    asyncio.run(main())


def test_discovery_carries_the_retry_policy() -> None:
    info = DiscoveryResponse.decode(Endpoint([ops]).discovery().encode())
    (svc,) = info.services
    fragile_info = svc.handler("fragile")
    assert fragile_info is not None and fragile_info.retry == RetryPolicy(max_attempts=3)
    echo_info = svc.handler("calls_doomed")
    assert echo_info is not None and echo_info.retry is None


def test_bad_retry_policies_are_refused() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(on_max_attempts="explode")
    with pytest.raises(ValueError):
        RetryPolicy(factor=0.5)


def test_spent_budget_pauses_and_resume_finishes() -> None:
    async def main() -> None:
        broken["on"] = True
        engine, store = await _engine()
        try:
            inv = await _submit(engine, "Ops/fragile", "x")
            rec = await until_status(store, inv, "paused")
            assert rec.attempt == 3 and "still broken for x" in (rec.last_error or "")
            assert await store.list_timers() == []
            await asyncio.sleep(0.05)  # nothing retries a paused invocation
            rec2 = await store.get_invocation(inv)
            assert rec2 is not None and rec2.status == "paused" and rec2.version == rec.version
            broken["on"] = False
            resumed = await engine.resume(inv)
            assert resumed.attempt == 1
            result = json.loads(await asyncio.wait_for(engine.wait_result(inv), 5))
            assert result == {"value": "fixed x"}
            with pytest.raises(OrchestratorError) as info:
                await engine.resume(inv)
            assert http_status(info.value) == 409
        finally:
            await engine.stop()
            await store.close()

    asyncio.run(main())


def test_spent_budget_kills_and_the_caller_gets_the_failure() -> None:
    async def main() -> None:
        engine, store = await _engine()
        try:
            caller = await _submit(engine, "Ops/calls_doomed", None)
            result = json.loads(await asyncio.wait_for(engine.wait_result(caller), 5))
            assert result == {"value": 500}
            killed = [
                r
                for r in await store.list_invocations(statuses=["killed"])
                if r.handler == "doomed"
            ]
            assert len(killed) == 1 and killed[0].attempt == 2
        finally:
            await engine.stop()
            await store.close()

    asyncio.run(main())


def test_kill_a_suspended_invocation_frees_its_key_and_timers() -> None:
    async def main() -> None:
        engine, store = await _engine()
        try:
            sleeper = await _submit(engine, "Box/nap", 3600, key="k")
            queued = await _submit(engine, "Box/nap", 0, key="k")
            await until_status(store, sleeper, "suspended")
            assert len(await store.list_timers()) == 1
            waiter = asyncio.ensure_future(engine.wait_result(sleeper))
            killed = await engine.kill(sleeper)
            assert killed.status == "killed"
            assert json.loads(await asyncio.wait_for(waiter, 5)) == {
                "failure": {"code": 409, "message": "killed by an operator"}
            }
            assert await store.list_timers() == []
            # The key is free: the queued invocation runs.
            result = json.loads(await asyncio.wait_for(engine.wait_result(queued), 5))
            assert result == {"value": "awake"}
            with pytest.raises(OrchestratorError) as info:
                await engine.kill(sleeper)
            assert http_status(info.value) == 409
            with pytest.raises(OrchestratorError) as info:
                await engine.kill("inv_nothere")
            assert http_status(info.value) == 404
        finally:
            await engine.stop()
            await store.close()

    asyncio.run(main())


def test_pause_holds_a_sleeper_past_its_timer_until_resumed() -> None:
    async def main() -> None:
        engine, store = await _engine()
        try:
            inv = await _submit(engine, "Box/nap", 0.05, key="p")
            await until_status(store, inv, "suspended")
            paused = await engine.pause(inv)
            assert paused.status == "paused"
            await asyncio.sleep(0.2)  # the timer fires; the invocation must not move
            rec = await store.get_invocation(inv)
            assert rec is not None and rec.status == "paused"
            await engine.resume(inv)
            result = json.loads(await asyncio.wait_for(engine.wait_result(inv), 5))
            assert result == {"value": "awake"}
        finally:
            await engine.stop()
            await store.close()

    asyncio.run(main())


def test_resume_of_a_paused_sleeper_is_running_again_then_waits_again() -> None:
    """A resumed invocation is ``running`` with nothing awaited (its record must not claim
    a wait no attempt is making); its replay suspends on the same sleep again."""

    async def main() -> None:
        engine, store = await _engine()
        try:
            inv = await _submit(engine, "Box/nap", 30, key="r")
            suspended = await until_status(store, inv, "suspended")
            assert suspended.waiting == (1,)
            await engine.pause(inv)
            resumed = await engine.resume(inv)
            assert (resumed.status, resumed.waiting, resumed.attempt) == ("running", (), 1)
            again = await until_status(store, inv, "suspended")
            assert again.waiting == (1,) and again.version > resumed.version
        finally:
            await engine.stop()
            await store.close()

    asyncio.run(main())


def test_retention_purges_results_and_frees_keys() -> None:
    wf = Workflow("Keep")

    @wf.main()
    async def run(ctx: Context, n: int) -> int:
        ctx.set("n", n)
        return n

    async def main() -> None:
        store = MemoryStore()
        await store.open()
        clock = ManualClock()
        endpoint = Endpoint([ops, box, wf])
        engine = Engine(
            store, retry=FAST, clock=clock, retention_s=3600, inprocess={"e": endpoint.inprocess()}
        )
        await engine.start()
        try:
            await engine.register_deployment("inproc://e")
            target = engine.registry.resolve("Keep", "run")
            assert target is not None
            first, created = await engine.submit(target, "w1", "1")
            assert created and json.loads(await engine.wait_result(first.id)) == {"value": 1}
            again, created = await engine.submit(target, "w1", "2")
            assert not created and again.id == first.id  # once per id, within retention
            assert await engine.purge_expired() == 0
            clock.advance(3_600_001)
            assert await engine.purge_expired() == 1
            assert await store.get_invocation(first.id) is None
            assert await store.get_state("Keep", "w1") == {}
            fresh, created = await engine.submit(target, "w1", "3")
            assert created and fresh.id != first.id
            assert json.loads(await engine.wait_result(fresh.id)) == {"value": 3}
        finally:
            await engine.stop()
            await store.close()

    asyncio.run(main())


def test_attempt_timeouts_count_against_the_budget() -> None:
    async def main() -> None:
        store = MemoryStore()
        await store.open()
        hour_late = Faults(slow=1.0, delays_s=(3600.0,))  # a handler stuck past the timeout
        hangs = FakeInvoker(Endpoint([ops]).inprocess(), faults=hour_late)
        engine = Engine(store, retry=FAST, attempt_timeout_s=0.05, inprocess={"h": hangs})
        await engine.start()
        try:
            await engine.register_deployment("inproc://h")
            inv = await _submit(engine, "Ops/fragile", "slow")  # max_attempts=3, then pause
            rec = await until_status(store, inv, "paused")
            assert rec.attempt == 3 and "timed out" in (rec.last_error or "")
            assert hangs.calls == 3
        finally:
            await engine.stop()
            await store.close()

    asyncio.run(main())


race = Workflow("Race")


@race.main()
async def race_run(ctx: Context, value: str) -> str:
    await ctx.promise("go").resolve(value)
    return value


@race.handler()
async def race_wait(ctx: Context) -> str:
    return str(await ctx.promise("go").value())


def test_promise_waiters_and_resolver_racing_on_one_key_all_complete(tmp_path: Path) -> None:
    """Many shared handlers wait on a promise while the run resolves it: every waiter is
    registered before the resolution or sees it — none is missed (the key lock holds). On
    SQLite, whose reads and commits really yield to other tasks inside the lock."""

    async def main() -> None:
        store = SqliteStore(str(tmp_path / "race.db"))
        await store.open()
        engine = Engine(store, retry=FAST, inprocess={"e": Endpoint([race]).inprocess()})
        await engine.start()
        try:
            await engine.register_deployment("inproc://e")
            run_t = engine.registry.resolve("Race", "race_run")
            wait_t = engine.registry.resolve("Race", "race_wait")
            assert run_t is not None and wait_t is not None
            for round_ in range(5):
                key = f"k{round_}"
                waiters = [await engine.submit(wait_t, key, "null") for _ in range(15)]
                await engine.submit(run_t, key, json.dumps(key))
                waiters += [await engine.submit(wait_t, key, "null") for _ in range(15)]
                results = await asyncio.wait_for(
                    asyncio.gather(*(engine.wait_result(r.id) for r, _ in waiters)), 10
                )
                assert [json.loads(r) for r in results] == [{"value": key}] * 30
        finally:
            await engine.stop()
            await store.close()

    asyncio.run(main())
