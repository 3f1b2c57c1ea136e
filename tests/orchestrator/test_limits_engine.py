"""Named limits on one engine (in-memory store, in-process endpoint): a limited step waits
for a permit, the limit is never exceeded, waiters are served by priority then age, a failed
attempt gives its permit back, and cancel, kill and pause while waiting or holding release
it. The real stores and processes have their own tests (tests/integration/test_limits*.py)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from ritornello import Context, Endpoint, Limit, Service, TerminalError, VirtualObject
from ritornello.orchestrator import Engine, InvalidRequestError, LimitSpec
from ritornello.orchestrator.check import check_store
from ritornello.protocol import RetryPolicy
from ritornello.store.memory import MemoryStore

FAST = RetryPolicy(initial_interval_ms=5, factor=2.0, max_interval_ms=50)

svc = Service("Lim")
state: dict[str, Any] = {"now": 0, "max": 0, "order": [], "fail": set(), "gate": None}


async def _work(tag: str) -> str:
    state["now"] += 1
    state["max"] = max(state["max"], state["now"])
    state["order"].append(tag)
    try:
        gate = state["gate"]
        if gate is not None:
            await gate.wait()
        else:
            await asyncio.sleep(0.005)
        if tag in state["fail"]:
            state["fail"].discard(tag)
            raise RuntimeError(f"{tag} failed once")
    finally:
        state["now"] -= 1
    return tag


@svc.handler()
async def limited(ctx: Context, tag: str) -> str:
    return await ctx.run("work", _work, tag, limit="pool")


@svc.handler()
async def two_steps(ctx: Context, tag: str) -> list[str]:
    a = await ctx.run("a", _work, tag + "a", limit="pool")
    b = await ctx.run("b", _work, tag + "b", limit="pool")
    return [a, b]


@svc.handler()
async def undefined(ctx: Context, tag: str) -> str:
    try:
        return await ctx.run("work", _work, tag, limit="nobody-defined-this")
    except TerminalError as exc:
        return f"{exc.status_code}: {exc.message}"


mail = Service("Mail", limit=Limit("smtp", concurrency=2))
obj = VirtualObject("Customer")


@mail.handler()
async def send_mail(ctx: Context, tag: str) -> str:
    return await _work(tag)


@mail.handler(limit="pool")
async def send_pooled(ctx: Context, tag: str) -> str:
    return await _work(tag)


@obj.handler(kind="shared", limit=Limit("per_customer", concurrency=1, per_key=True))
async def order(ctx: Context, tag: str) -> str:
    return await _work(tag)


@svc.handler(limit="per_customer")
async def keyed_by_caller(ctx: Context, tag: str) -> str:
    return await _work(tag)


@svc.handler()
async def fan_out(ctx: Context, n: int) -> list[str]:
    """Half the calls keyed by the object key (a shared handler: no key queue), half by the
    limit key the caller passes."""
    futures = [ctx.call(order, f"c{i % 2}-{i}", key=f"c{i % 2}") for i in range(n)]
    futures += [ctx.call(keyed_by_caller, f"k{i}", limit_key=f"c{i % 2}") for i in range(n)]
    return [await f for f in futures]


@svc.handler()
async def call_with_priority(ctx: Context, prio: int) -> str:
    return await ctx.call(limited, f"p{prio}", priority=prio)


async def _until(condition: Any, within_s: float = 10.0) -> None:
    """Wait until ``condition()`` holds (a step's progress the handler's state shows)."""
    for _ in range(int(within_s / 0.005)):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the condition did not come to hold")


async def _check(engine: Engine) -> None:
    report = await check_store(engine.store)
    assert not report.violations, report.violations


async def _engine(*services: Any, **specs: LimitSpec) -> Engine:
    store = MemoryStore()
    await store.open()
    endpoint = Endpoint(list(services) or [svc, obj])
    engine = Engine(store, retry=FAST, inprocess={"app": endpoint.inprocess()}, limits=specs)
    await engine.start()
    await engine.register_deployment("inproc://app")
    return engine


async def _submit(
    engine: Engine,
    handler: str,
    tag: Any,
    priority: int | None = None,
    service: str = "Lim",
    key: str | None = None,
) -> str:
    resolved = engine.registry.resolve(service, handler)
    assert resolved is not None
    headers = {} if priority is None else {"x-ritornello-priority": str(priority)}
    rec, _ = await engine.submit(resolved, key, json.dumps(tag), headers=headers)
    return rec.id


async def _result(engine: Engine, inv_id: str) -> Any:
    return json.loads(await asyncio.wait_for(engine.wait_result(inv_id), 10))


@pytest.fixture(autouse=True)
def _reset() -> None:
    state.update(now=0, max=0, order=[], fail=set(), gate=None)


def test_concurrency_is_never_exceeded() -> None:
    async def main() -> None:
        engine = await _engine(pool=LimitSpec(concurrency=3))
        try:
            ids = [await _submit(engine, "limited", f"t{i}") for i in range(40)]
            results = [await _result(engine, i) for i in ids]
            assert results == [{"value": f"t{i}"} for i in range(40)]
            assert state["max"] == 3
            (figures,) = await engine.limits.describe("pool")
            assert figures["in_flight"] == 0 and figures["waiting"] == 0
            assert figures["granted_last_minute"] == 40
            await _check(engine)
        finally:
            await engine.stop()

    asyncio.run(main())


def test_rate_and_burst_bound_every_window() -> None:
    async def main() -> None:
        engine = await _engine(pool=LimitSpec(rate=100, per_ms=1000, burst=5))
        try:
            began = time.monotonic()
            ids = [await _submit(engine, "limited", f"t{i}") for i in range(45)]
            for i in ids:
                await _result(engine, i)
            # the bucket starts empty (the engine just came to lead): 45 grants at 100/s
            assert time.monotonic() - began >= 0.35
        finally:
            await engine.stop()

    asyncio.run(main())


def test_waiters_are_served_by_priority_then_age() -> None:
    async def main() -> None:
        engine = await _engine(pool=LimitSpec(concurrency=1))
        gate = asyncio.Event()
        state["gate"] = gate
        try:
            first = await _submit(engine, "limited", "first")
            await _until(lambda: state["now"] >= 1)
            low = [await _submit(engine, "limited", f"low{i}", priority=1) for i in range(3)]
            mid = [await _submit(engine, "limited", f"mid{i}") for i in range(3)]
            high = [await _submit(engine, "limited", f"high{i}", priority=9) for i in range(3)]
            await asyncio.sleep(0.2)  # all of them wait now
            rec = await engine.store.get_invocation(low[0])
            assert rec is not None
            entries, _ = await engine.store.get_journal(low[0])
            assert engine.limits.waits_for(rec, entries) == "pool"  # the admin API shows it
            state["gate"] = None
            gate.set()
            for i in [first, *low, *mid, *high]:
                await _result(engine, i)
            assert state["order"] == [
                "first",
                *[f"high{i}" for i in range(3)],
                *[f"mid{i}" for i in range(3)],
                *[f"low{i}" for i in range(3)],
            ]
        finally:
            await engine.stop()

    asyncio.run(main())


def test_a_failed_step_gives_its_permit_back_while_it_backs_off() -> None:
    async def main() -> None:
        engine = await _engine(pool=LimitSpec(concurrency=1))
        state["fail"] = {"t0"}
        try:
            ids = [await _submit(engine, "limited", f"t{i}") for i in range(5)]
            for i in ids:
                assert (await _result(engine, i))["value"].startswith("t")
            assert state["max"] == 1
            assert state["order"].count("t0") == 2  # failed once, then ran again
            rec = await engine.store.get_invocation(ids[0])
            assert rec is not None and rec.attempt >= 2
            assert await engine.store.list_permits(limit="pool") == []
        finally:
            await engine.stop()

    asyncio.run(main())


def test_several_limited_steps_in_one_handler() -> None:
    async def main() -> None:
        engine = await _engine(pool=LimitSpec(concurrency=2))
        try:
            ids = [await _submit(engine, "two_steps", f"t{i}") for i in range(10)]
            for n, i in enumerate(ids):
                assert await _result(engine, i) == {"value": [f"t{n}a", f"t{n}b"]}
            assert state["max"] <= 2
        finally:
            await engine.stop()

    asyncio.run(main())


def test_an_undefined_limit_fails_the_step_with_404() -> None:
    async def main() -> None:
        engine = await _engine()
        try:
            result = await _result(engine, await _submit(engine, "undefined", "x"))
            assert result["value"].startswith("404: limit 'nobody-defined-this' is not defined")
            assert state["order"] == []  # the step never ran
        finally:
            await engine.stop()

    asyncio.run(main())


@pytest.mark.parametrize("action", ["cancel", "kill"])
def test_cancel_or_kill_while_waiting_releases_the_place(action: str) -> None:
    async def main() -> None:
        engine = await _engine(pool=LimitSpec(concurrency=1))
        gate = asyncio.Event()
        state["gate"] = gate
        try:
            holder = await _submit(engine, "limited", "holder")
            await _until(lambda: state["now"] >= 1)
            waiter = await _submit(engine, "limited", "waiter")
            for _ in range(100):
                rows = await engine.store.list_permits(limit="pool")
                if len(rows) == 2:
                    break
                await asyncio.sleep(0.01)
            assert [r.invocation_id for r in rows] == [holder, waiter]
            if action == "cancel":
                await engine.cancel(waiter)
            else:
                await engine.kill(waiter)
            result = await _result(engine, waiter)
            assert "failure" in result
            gate.set()
            assert await _result(engine, holder) == {"value": "holder"}
            assert "waiter" not in state["order"]
            assert await engine.store.list_permits(limit="pool") == []
        finally:
            await engine.stop()

    asyncio.run(main())


def test_a_limit_changed_mid_run_takes_effect_at_once() -> None:
    async def main() -> None:
        engine = await _engine()
        await engine.limits.put("pool", LimitSpec(concurrency=1), engine.clock.now_ms())
        try:
            ids = [await _submit(engine, "limited", f"t{i}") for i in range(30)]
            await _until(lambda: len(state["order"]) >= 5)
            assert state["max"] == 1
            await engine.limits.put("pool", LimitSpec(concurrency=4), engine.clock.now_ms())
            for i in ids:
                await _result(engine, i)
            assert state["max"] == 4
        finally:
            await engine.stop()

    asyncio.run(main())


def test_a_limited_handler_holds_a_permit_for_the_whole_invocation() -> None:
    async def main() -> None:
        engine = await _engine(svc, mail, obj, pool=LimitSpec(concurrency=1))
        try:
            ids = [await _submit(engine, "send_mail", f"m{i}", service="Mail") for i in range(12)]
            ids += [await _submit(engine, "send_pooled", f"p{i}", service="Mail") for i in range(6)]
            for i in ids:
                assert "value" in await _result(engine, i)
            # smtp (the service's, from code) lets 2 run; pool (the handler's own) 1: 3 at most
            assert state["max"] <= 3
            assert {d["name"]: d["source"] for d in await engine.limits.describe()} == {
                "per_customer": "code",
                "pool": "config",
                "smtp": "code",
            }
            await _check(engine)
        finally:
            await engine.stop()

    asyncio.run(main())


def test_a_per_key_limit_has_one_instance_per_key() -> None:
    async def main() -> None:
        engine = await _engine()
        gate = asyncio.Event()
        state["gate"] = gate
        try:
            caller = await _submit(engine, "fan_out", 6)
            await _until(lambda: state["now"] >= 2)  # one per customer key, both at once
            waiting: list[Any] = []
            while not waiting:
                await asyncio.sleep(0.01)
                waiting = [r for r in await engine.store.list_permits() if r.granted_at is None]
            rec = await engine.store.get_invocation(waiting[0].invocation_id)
            assert rec is not None
            entries, _ = await engine.store.get_journal(rec.id)
            assert engine.limits.waits_for(rec, entries) in ("per_customer[c0]", "per_customer[c1]")
            await asyncio.sleep(0.1)
            assert state["now"] == 2
            state["gate"] = None
            gate.set()
            assert len((await _result(engine, caller))["value"]) == 12
            assert state["max"] == 2
            await _until(lambda: not engine.core.limits.instances)  # idle keys are forgotten
            await _check(engine)
        finally:
            await engine.stop()

    asyncio.run(main())


def test_priority_passes_from_a_call_to_its_callee() -> None:
    async def main() -> None:
        engine = await _engine(pool=LimitSpec(concurrency=1))
        gate = asyncio.Event()
        state["gate"] = gate
        try:
            first = await _submit(engine, "limited", "first")
            await _until(lambda: state["now"] >= 1)
            callers = [await _submit(engine, "call_with_priority", p) for p in (2, 8, 5)]
            await asyncio.sleep(0.2)
            state["gate"] = None
            gate.set()
            for i in [first, *callers]:
                await _result(engine, i)
            assert state["order"] == ["first", "p8", "p5", "p2"]
        finally:
            await engine.stop()

    asyncio.run(main())


def test_pause_gives_the_permit_back_and_resume_asks_again() -> None:
    async def main() -> None:
        engine = await _engine(pool=LimitSpec(concurrency=1))
        gate = asyncio.Event()
        state["gate"] = gate
        try:
            holder = await _submit(engine, "limited", "holder")
            await _until(lambda: state["now"] >= 1)
            waiter = await _submit(engine, "limited", "waiter")
            await asyncio.sleep(0.1)
            await engine.pause(holder)  # its attempt is cut off: its permit goes back
            state["gate"] = None
            assert await _result(engine, waiter) == {"value": "waiter"}
            await engine.resume(holder)
            assert await _result(engine, holder) == {"value": "holder"}
            assert await engine.store.list_permits(limit="pool") == []
            await _check(engine)
        finally:
            gate.set()
            await engine.stop()

    asyncio.run(main())


def test_an_undefined_limit_named_by_a_handler_refuses_the_registration() -> None:
    bad = Service("Bad", limit="missing")

    @bad.handler()
    async def h(ctx: Context) -> None: ...

    worse = Service("Worse", limits=[Limit("neg", concurrency=-1)])

    @worse.handler()
    async def w(ctx: Context) -> None: ...

    async def main() -> None:
        store = MemoryStore()
        await store.open()
        endpoints = {"bad": Endpoint([bad]).inprocess(), "worse": Endpoint([worse]).inprocess()}
        engine = Engine(store, inprocess=endpoints)
        await engine.start()
        try:
            with pytest.raises(InvalidRequestError, match="limit 'missing' named by Bad"):
                await engine.register_deployment("inproc://bad")
            with pytest.raises(InvalidRequestError, match="concurrency must be a whole number"):
                await engine.register_deployment("inproc://worse")
            assert engine.registry.service("Bad") is None
        finally:
            await engine.stop()

    asyncio.run(main())


def test_debounce_keeps_only_the_last_send_in_the_window() -> None:
    async def main() -> None:
        engine = await _engine(pool=LimitSpec(concurrency=1))
        target = engine.registry.resolve("Lim", "limited")
        assert target is not None
        try:
            recs = []
            for i in range(5):
                rec, created = await engine.submit(
                    target, None, json.dumps(f"d{i}"), idempotency_key="K", debounce_ms=150
                )
                assert created
                recs.append(rec)
            results = [await _result(engine, r.id) for r in recs]
            for superseded in results[:-1]:
                assert superseded["failure"]["code"] == 409
                assert "superseded" in superseded["failure"]["message"]
            assert results[-1] == {"value": "d4"}
            assert state["order"] == ["d4"]  # only the last one ran
            # it ran: the key is free again, and a new window starts
            rec, _ = await engine.submit(
                target, None, json.dumps("e"), idempotency_key="K", debounce_ms=10
            )
            assert await _result(engine, rec.id) == {"value": "e"}
            assert state["order"] == ["d4", "e"]
            await _check(engine)
        finally:
            await engine.stop()

    asyncio.run(main())
