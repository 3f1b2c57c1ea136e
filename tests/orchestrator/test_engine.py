"""The engine on the in-memory store with in-process endpoints and fake invokers: the state
machine's logic, without HTTP or SQLite (those have their own integration tests)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest

from ritornello import Context, Endpoint, Service, TerminalError, VirtualObject
from ritornello.orchestrator import Engine, FakeInvoker, ManualClock
from ritornello.orchestrator.core import completion_text
from ritornello.protocol import DiscoveryResponse, HandlerInfo, RetryPolicy, ServiceInfo
from ritornello.store import CommitUnit
from ritornello.store.memory import MemoryStore

FAST = RetryPolicy(initial_interval_ms=5, factor=2.0, max_interval_ms=50)

svc = Service("Svc")
obj = VirtualObject("Obj")
flaky_failures: dict[str, int] = {}


@svc.handler()
async def echo(ctx: Context, value: Any) -> Any:
    return value


@svc.handler()
async def flaky(ctx: Context, name: str) -> str:
    n = flaky_failures.get(name, 0)
    if n < 2:
        flaky_failures[name] = n + 1
        raise RuntimeError(f"boom {n}")
    return "ok"


@svc.handler()
async def fails(ctx: Context, code: int) -> None:
    raise TerminalError("nope", status_code=code)


@svc.handler()
async def sleeper(ctx: Context, ms: int) -> float:
    await ctx.sleep(timedelta(milliseconds=ms))
    return ms


@svc.handler()
async def caller(ctx: Context, n: int) -> list[Any]:
    out = [await ctx.call(echo, i) for i in range(n)]
    ctx.send(echo, "fire-and-forget")
    try:
        await ctx.call("Svc/fails", 418)
    except TerminalError as exc:
        out.append(exc.status_code)
    try:
        await ctx.call("Nope/nothing", 1)
    except TerminalError as exc:
        out.append(exc.status_code)
    return out


@obj.handler()
async def append(ctx: Context, item: str) -> list[str]:
    items = await ctx.get("items") or []
    await ctx.sleep(timedelta(milliseconds=1))
    items.append(item)
    ctx.set("items", items)
    return items


@obj.handler(kind="shared")
async def peek(ctx: Context) -> list[str]:
    return await ctx.get("items") or []


Runner = Callable[[str, str, Any, str | None], Awaitable[Any]]


async def _engine(
    store: MemoryStore | None = None, *, always_replay: bool = False, **kw: Any
) -> tuple[Engine, MemoryStore]:
    store = store or MemoryStore()
    if not getattr(store, "_opened_for_test", False):
        await store.open()
        store._opened_for_test = True  # type: ignore[attr-defined]
    endpoint = Endpoint([svc, obj], always_replay=always_replay)
    engine = Engine(store, retry=FAST, inprocess={"app": endpoint.inprocess()}, **kw)
    await engine.start()
    if not engine.registry.deployments:
        await engine.register_deployment("inproc://app")
    return engine, store


async def _call(engine: Engine, target: str, value: Any, key: str | None = None) -> Any:
    service, handler = target.split("/")
    resolved = engine.registry.resolve(service, handler)
    assert resolved is not None
    rec, _ = await engine.submit(resolved, key, json.dumps(value))
    return json.loads(await asyncio.wait_for(engine.wait_result(rec.id), 10))


@pytest.mark.parametrize("always_replay", [False, True])
def test_calls_sends_and_failures(always_replay: bool) -> None:
    async def main() -> None:
        engine, _ = await _engine(always_replay=always_replay)
        try:
            assert await _call(engine, "Svc/echo", {"a": [1, "ü"]}) == {"value": {"a": [1, "ü"]}}
            assert await _call(engine, "Svc/caller", 3) == {"value": [0, 1, 2, 418, 404]}
            assert await _call(engine, "Svc/fails", 409) == {
                "failure": {"code": 409, "message": "nope"}
            }
        finally:
            await engine.stop()

    asyncio.run(main())


def test_retries_back_off_and_record_the_error() -> None:
    async def main() -> None:
        engine, store = await _engine()
        try:
            resolved = engine.registry.resolve("Svc", "flaky")
            assert resolved is not None
            rec, _ = await engine.submit(resolved, None, '"r1"')
            assert json.loads(await engine.wait_result(rec.id)) == {"value": "ok"}
            final = await store.get_invocation(rec.id)
            assert final is not None and final.attempt == 3 and final.status == "completed"
        finally:
            await engine.stop()

    asyncio.run(main())


def test_one_exclusive_handler_per_key_in_arrival_order() -> None:
    async def main() -> None:
        engine, _ = await _engine()
        try:
            resolved = engine.registry.resolve("Obj", "append")
            assert resolved is not None
            recs = [(await engine.submit(resolved, "k", json.dumps(str(i))))[0] for i in range(8)]
            results = [json.loads(await engine.wait_result(r.id))["value"] for r in recs]
            assert results == [[str(j) for j in range(i + 1)] for i in range(8)]
            assert await _call(engine, "Obj/peek", None, "k") == {"value": results[-1]}
            assert await _call(engine, "Obj/peek", None, "other") == {"value": []}
        finally:
            await engine.stop()

    asyncio.run(main())


def test_recovery_after_stop_finishes_everything() -> None:
    async def main() -> None:
        engine, store = await _engine()
        resolved = engine.registry.resolve("Obj", "append")
        assert resolved is not None
        ids = [(await engine.submit(resolved, f"k{i % 3}", '"x"'))[0].id for i in range(9)]
        await asyncio.sleep(0.005)
        await engine.stop()
        engine2, _ = await _engine(store)
        try:
            for inv_id in ids:
                result = json.loads(await asyncio.wait_for(engine2.wait_result(inv_id), 10))
                assert "value" in result
            for k in range(3):
                assert await _call(engine2, "Obj/peek", None, f"k{k}") == {"value": ["x"] * 3}
        finally:
            await engine2.stop()

    asyncio.run(main())


def test_recovery_wakes_what_a_completion_landed_for_before_a_crash() -> None:
    """Sleep completions committed while no engine ran, their timers gone (as when a process
    dies between a commit and the wake-up): recovery finds them and wakes the sleepers."""

    async def main() -> None:
        engine, store = await _engine()
        resolved = engine.registry.resolve("Svc", "sleeper")
        assert resolved is not None
        ids = [(await engine.submit(resolved, None, "600000"))[0].id for _ in range(3)]
        for _ in range(200):
            records = [await store.get_invocation(i) for i in ids]
            if all(r is not None and r.status == "suspended" for r in records):
                break
            await asyncio.sleep(0.005)
        await engine.stop()
        timers = [t for t in await store.list_timers() if t.kind == "sleep"]
        assert sorted(t.invocation_id for t in timers) == sorted(ids)
        woken = [t for t in timers if t.invocation_id != ids[2]]  # ids[2] sleeps on
        await store.commit(
            CommitUnit(
                completions=[
                    (t.invocation_id, t.index, completion_text(t.index, '{"value":null}'))
                    for t in woken
                ],
                timers_remove=woken,
            )
        )
        engine2, _ = await _engine(store)
        try:
            for inv_id in ids[:2]:
                result = await asyncio.wait_for(engine2.wait_result(inv_id), 10)
                assert json.loads(result) == {"value": 600000}
            still = await store.get_invocation(ids[2])
            assert still is not None and still.status == "suspended"
        finally:
            await engine2.stop()

    asyncio.run(main())


def test_timers_never_fire_early_with_a_manual_clock() -> None:
    async def main() -> None:
        clock = ManualClock()
        engine, store = await _engine(clock=clock)
        try:
            resolved = engine.registry.resolve("Svc", "sleeper")
            assert resolved is not None
            rec, _ = await engine.submit(resolved, None, "1000")
            for _ in range(50):
                await asyncio.sleep(0.002)
            current = await store.get_invocation(rec.id)
            assert current is not None and current.status == "suspended"
            clock.advance(999)
            engine.timers.poke()
            for _ in range(50):
                await asyncio.sleep(0.002)
            current = await store.get_invocation(rec.id)
            assert current is not None and current.status == "suspended"
            clock.advance(1)
            engine.timers.poke()
            assert json.loads(await asyncio.wait_for(engine.wait_result(rec.id), 5)) == {
                "value": 1000
            }
        finally:
            await engine.stop()

    asyncio.run(main())


FAKE_DISCOVERY = DiscoveryResponse((ServiceInfo("Fake", "service", (HandlerInfo("h"),)),)).encode()
DONE = b'{"version":1,"status":"done","entries":[{"kind":"output","value":"fine"}]}'


@pytest.mark.parametrize(
    "garbage",
    [
        b"not json",
        b'{"version":1,"status":"weird","entries":[]}',
        b'{"version":99,"status":"done","entries":[{"kind":"output","value":1}]}',
        b'{"version":1,"status":"suspended","entries":[],"waiting":[0]}',
        b'{"version":1,"status":"done","entries":[{"kind":"set","name":"x","value":1},'
        b'{"kind":"output","value":1}]}',
        b'{"version":1,"status":"checkpoint","entries":[{"kind":"call","name":"Fake/h",'
        b'"key":null,"input":1,"id":"inv_forged"}]}',
        b'{"version":1,"status":"done","entries":[{"kind":"input","value":1},'
        b'{"kind":"output","value":1}]}',
    ],
)
def test_garbage_answers_fail_the_attempt_and_keep_nothing(garbage: bytes) -> None:
    async def main() -> None:
        store = MemoryStore()
        await store.open()
        fake = FakeInvoker(answers=[garbage, DONE], discovery=FAKE_DISCOVERY)
        engine = Engine(store, retry=FAST, inprocess={"fake": fake})
        await engine.start()
        try:
            await engine.register_deployment("inproc://fake")
            resolved = engine.registry.resolve("Fake", "h")
            assert resolved is not None
            rec, _ = await engine.submit(resolved, None, "1")
            result = json.loads(await asyncio.wait_for(engine.wait_result(rec.id), 5))
            assert result == {"value": "fine"}
            final = await store.get_invocation(rec.id)
            assert final is not None and final.attempt == 2 and fake.calls == 2
            entries, _ = await store.get_journal(rec.id)
            assert [json.loads(e)["kind"] for e in entries] == ["input", "output"]
        finally:
            await engine.stop()

    asyncio.run(main())
