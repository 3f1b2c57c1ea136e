"""The SDK's handles, run options and fan-out against the real engine (memory store,
in-process endpoint): cancel by handle reaching the callee's compensation, attach, idempotency
keys and headers on calls, a select whose timeout cancels the losing call, step retries on
durable timers visible in the stored journal, and a 100-item map that loses answers mid-way."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest

from ritornello import (
    BatchResult,
    BytesSerde,
    Context,
    Endpoint,
    InProcessEndpoint,
    Service,
    TerminalError,
    select,
)
from ritornello.orchestrator import Engine
from ritornello.protocol import InvokeRequest, RetryPolicy
from ritornello.store.memory import MemoryStore

FAST = RetryPolicy(initial_interval_ms=5, factor=2.0, max_interval_ms=50)
svc = Service("Handles")
compensated: list[str] = []
executions: Counter[str] = Counter()


@svc.handler()
async def echo(ctx: Context, value: Any) -> Any:
    return {"value": value, "headers": dict(ctx.headers)}


@svc.handler(output_serde=BytesSerde("image/png"))
async def thumbnail(ctx: Context, data: bytes) -> bytes:
    return data[::-1]


@svc.handler()
async def generic(ctx: Context) -> list[Any]:
    raw = await ctx.generic_call("Handles", "thumbnail", b"\x00\xffPNG")
    text = await ctx.generic_call("Handles", "echo", b'{"a": [1, 2]}')
    try:
        await ctx.generic_call("Handles", "echo", b"not json")
    except TerminalError as exc:
        bad = [exc.status_code, exc.message]
    sent = ctx.generic_send("Handles", "thumbnail", b"abc")
    later = await ctx.attach(sent.invocation_id)
    return [raw.hex(), json.loads(text), bad, later]


@svc.handler()
async def long_booking(ctx: Context, what: str) -> str:
    await ctx.run("book", lambda: None)
    try:
        await ctx.sleep(timedelta(minutes=10))
    except TerminalError:
        await ctx.run("compensate", compensated.append, what)
        raise
    return "booked"


@svc.handler()
async def cancel_by_handle(ctx: Context, what: str) -> list[Any]:
    handle = ctx.call(long_booking, what)
    await ctx.sleep(timedelta(milliseconds=50))  # the callee is asleep by then
    await handle.cancel()
    try:
        await handle
    except TerminalError as exc:
        return [handle.invocation_id.startswith("inv_"), exc.status_code]
    return ["not cancelled"]


@svc.handler()
async def race(ctx: Context, what: str) -> list[Any]:
    handle = ctx.call(long_booking, what)
    winner, _ = await select(result=handle, timeout=ctx.sleep(timedelta(milliseconds=50)))
    if winner == "timeout":
        await handle.cancel()
    return [winner, handle.invocation_id]


@svc.handler()
async def send_and_attach(ctx: Context, value: Any) -> list[Any]:
    handle = ctx.send(echo, value, headers={"X-Trace": "t-1"})
    attached = await ctx.attach(handle.invocation_id)
    again = await handle.attach()
    return [attached, again == attached]


@svc.handler()
async def twice_by_key(ctx: Context, value: Any) -> list[str]:
    first = ctx.send(echo, value, idempotency_key="once")
    second = ctx.send(echo, value, idempotency_key="once")
    return [first.invocation_id, second.invocation_id]


@svc.handler()
async def retries(ctx: Context, fail: int) -> str:
    def flaky() -> str:
        executions["flaky"] += 1
        if executions["flaky"] <= fail:
            raise ConnectionError(f"flaky {executions['flaky']}")
        return "ok"

    try:
        return await ctx.run(
            "flaky", flaky, max_attempts=3, initial_retry_interval=timedelta(milliseconds=20)
        )
    except TerminalError as exc:
        return exc.message


async def nap(ctx: Context, n: int) -> int:
    await ctx.sleep(timedelta(minutes=10))
    return n


@svc.handler()
async def cancellable_map(ctx: Context, n: int) -> list[Any]:
    try:
        await ctx.map("naps", range(n), nap)
    except TerminalError as exc:
        await ctx.run("undo", compensated.append, "map")
        return [exc.status_code, exc.message]
    return ["not cancelled"]


async def charge(ctx: Context, n: int) -> int:
    def once() -> int:
        executions[f"charge {n}"] += 1
        if n % 10 == 9:
            raise TerminalError(f"card {n} declined", status_code=402)
        return n

    return await ctx.run(f"charge {n}", once)


@svc.handler()
async def charge_all(ctx: Context, n: int) -> dict[str, Any]:
    result: BatchResult[int] = await ctx.map(
        "charge", range(n), charge, max_concurrency=10, tolerated_failures=n // 10
    )
    return {"reason": result.reason, "sum": sum(result.values()), "failed": len(result.failed())}


class LosingEndpoint:
    """The in-process endpoint, except that the answers to requests number ``lose`` are
    lost after the handler ran (the endpoint died before its answer was read)."""

    def __init__(self, endpoint: InProcessEndpoint, lose: set[int]) -> None:
        self._endpoint = endpoint
        self._lose = lose
        self.requests = 0
        self.lost = 0

    async def invoke(self, body: bytes) -> bytes:
        self.requests += 1
        answer = await self._endpoint.invoke(body)
        if self.requests in self._lose and InvokeRequest.decode(body).handler == "charge_all":
            self.lost += 1
            raise ConnectionError("the endpoint died before answering")
        return answer

    async def discover(self) -> bytes:
        return await self._endpoint.discover()


async def _engine(endpoint: Any = None) -> tuple[Engine, MemoryStore]:
    store = MemoryStore()
    await store.open()
    engine = Engine(store, retry=FAST, inprocess={"app": endpoint or Endpoint([svc]).inprocess()})
    await engine.start()
    await engine.register_deployment("inproc://app")
    return engine, store


async def _call(engine: Engine, handler: str, value: Any) -> tuple[str, Any]:
    resolved = engine.registry.resolve("Handles", handler)
    assert resolved is not None
    rec, _ = await engine.submit(resolved, None, json.dumps(value))
    return rec.id, json.loads(await asyncio.wait_for(engine.wait_result(rec.id), 20))


async def _journal(store: MemoryStore, invocation_id: str) -> list[dict[str, Any]]:
    entries, _ = await store.get_journal(invocation_id)
    return [json.loads(e) for e in entries]


def test_cancel_by_handle_reaches_the_callees_compensation() -> None:
    async def main() -> None:
        engine, _ = await _engine()
        try:
            compensated.clear()
            _, out = await _call(engine, "cancel_by_handle", "hotel")
            assert out == {"value": [True, 409]}
            assert compensated == ["hotel"]
            _, raced = await _call(engine, "race", "car")
            assert raced["value"][0] == "timeout"
            callee = raced["value"][1]
            assert json.loads(await asyncio.wait_for(engine.wait_result(callee), 10)) == {
                "failure": {"code": 409, "message": "cancelled"}
            }
            assert compensated == ["hotel", "car"]
        finally:
            await engine.stop()

    asyncio.run(main())


def test_a_cancellation_in_a_branch_ends_the_fan_out_where_the_handler_awaits_it() -> None:
    async def main() -> None:
        engine, store = await _engine()
        try:
            compensated.clear()
            resolved = engine.registry.resolve("Handles", "cancellable_map")
            assert resolved is not None
            rec, _ = await engine.submit(resolved, None, "3")
            for _ in range(500):  # until every branch sleeps
                current = await store.get_invocation(rec.id)
                if current is not None and current.status == "suspended":
                    break
                await asyncio.sleep(0.01)
            await engine.cancel(rec.id)
            out = json.loads(await asyncio.wait_for(engine.wait_result(rec.id), 10))
            assert out == {"value": [409, "cancelled"]}
            assert compensated == ["map"]
            journal = await _journal(store, rec.id)
            sleeps = [e for e in journal if e["kind"] == "sleep"]
            assert len(sleeps) == 3 and all(e.get("ctx") for e in sleeps)
        finally:
            await engine.stop()

    asyncio.run(main())


def test_generic_calls_take_and_give_bodies_as_the_ingress_would() -> None:
    async def main() -> None:
        engine, store = await _engine()
        try:
            inv, out = await _call(engine, "generic", None)
            raw, echoed, bad, later = out["value"]
            assert raw == "474e50ff00"  # the raw handler's bytes, reversed
            assert echoed == {"value": {"a": [1, 2]}, "headers": {}}
            assert bad == [400, "the body of a generic call to a JSON handler must be JSON"]
            assert later == "Y2Jh"  # attach gives the raw result's JSON form: base64 of b"cba"
            calls = [e for e in await _journal(store, inv) if e["kind"] in ("call", "send")]
            assert [e.get("output_content_type") for e in calls] == [
                "image/png",
                None,
                None,
                "image/png",
            ]
        finally:
            await engine.stop()

    asyncio.run(main())


def test_send_handles_attach_and_carry_headers_and_idempotency_keys() -> None:
    async def main() -> None:
        engine, _ = await _engine()
        try:
            _, out = await _call(engine, "send_and_attach", [1, "ü"])
            attached, same = out["value"]
            assert same is True
            assert attached == {"value": [1, "ü"], "headers": {"x-trace": "t-1"}}
            _, keyed = await _call(engine, "twice_by_key", "x")
            first, second = keyed["value"]
            assert first == second and first.startswith("inv_")
        finally:
            await engine.stop()

    asyncio.run(main())


@pytest.mark.parametrize(("fail", "expected"), [(2, "ok"), (5, "failed after 3 attempt(s)")])
def test_step_retries_wait_on_timers_visible_in_the_journal(fail: int, expected: str) -> None:
    async def main() -> None:
        engine, store = await _engine()
        try:
            executions.clear()
            inv, out = await _call(engine, "retries", fail)
            assert expected in out["value"]
            journal = await _journal(store, inv)
            timers = [e for e in journal if e["kind"] == "sleep"]
            assert [t["retry"]["attempt"] for t in timers] == [1, 2]
            assert all("wake_at" in t for t in timers)  # the orchestrator's durable timers
            assert executions["flaky"] == 3
        finally:
            await engine.stop()

    asyncio.run(main())


def test_a_hundred_item_map_survives_lost_answers_without_rerunning_committed_steps() -> None:
    async def main() -> None:
        losing = LosingEndpoint(Endpoint([svc]).inprocess(), lose={3, 6, 9})
        engine, store = await _engine(losing)
        try:
            executions.clear()
            inv, out = await _call(engine, "charge_all", 100)
            assert out == {
                "value": {"reason": "all_completed", "sum": sum(range(100)) - 540, "failed": 10}
            }
            assert losing.lost == 3
            assert all(executions[f"charge {n}"] >= 1 for n in range(100))
            journal = await _journal(store, inv)
            steps = [e for e in journal if e["kind"] == "run" and e["name"].startswith("charge ")]
            assert sorted(e["name"] for e in steps) == sorted(f"charge {n}" for n in range(100))
            # only steps whose answers were lost ran twice: at most one batch per lost answer
            reruns = sum(c - 1 for name, c in executions.items() if name.startswith("charge "))
            assert reruns <= 3 * 10
        finally:
            await engine.stop()

    asyncio.run(main())
