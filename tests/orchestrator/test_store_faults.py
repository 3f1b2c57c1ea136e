"""The engine over a store that fails: throttling, transaction conflicts, internal errors and
ambiguous commits (the write landed, the answer was lost) are retried with backoff and jitter
(``RetryingStore`` over ``FaultyStore``); results and journals come out exactly as in a run
without faults. Only when the retry budget runs out does a client see a retryable 503.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from ritornello import Context, Endpoint, Service, VirtualObject
from ritornello.orchestrator import Engine, IngressApp
from ritornello.protocol import RetryPolicy
from ritornello.store import Store
from ritornello.store.faults import FaultyStore
from ritornello.store.memory import MemoryStore
from ritornello.store.retrying import RetryingStore
from ritornello.store.sqlite import SqliteStore
from tests.asgi_call import asgi_call

FAST = RetryPolicy(initial_interval_ms=5, factor=2.0, max_interval_ms=50)

svc = Service("FSvc")
obj = VirtualObject("FObj")


@svc.handler()
async def square(ctx: Context, n: int) -> int:
    return await ctx.run("square", lambda: n * n)


@svc.handler()
async def ten(ctx: Context, n: int) -> int:
    total = 0
    for i in range(10):
        total += await ctx.run(f"step-{i}", lambda i=i: i + n)  # type: ignore[misc]
        if i == 4:
            total += await ctx.call(square, n)
            await ctx.sleep(0.002)
    return total


@svc.handler()
async def big(ctx: Context, size: int) -> int:
    blob = await ctx.run("blob", lambda: "x" * size)
    return len(blob)


@obj.handler()
async def add(ctx: Context, n: int) -> int:
    total: int = await ctx.get("total") or 0
    total += n
    ctx.set("total", total)
    return total


async def _engine(store: Store) -> Engine:
    endpoint = Endpoint([svc, obj])
    engine = Engine(store, retry=FAST, inprocess={"app": endpoint.inprocess()})
    await engine.start()
    await engine.register_deployment("inproc://app")
    return engine


async def _workload(engine: Engine) -> tuple[dict[str, Any], dict[str, Any]]:
    async def call(target: str, value: Any, key: str | None = None) -> Any:
        service, handler = target.split("/")
        resolved = engine.registry.resolve(service, handler)
        assert resolved is not None
        rec, _ = await engine.submit(resolved, key, json.dumps(value))
        return rec.id, json.loads(await asyncio.wait_for(engine.wait_result(rec.id), 30))

    jobs = [call("FSvc/ten", n) for n in range(12)]
    jobs += [call("FObj/add", n, f"k{n % 3}") for n in range(1, 19)]
    done = await asyncio.gather(*jobs)
    results = {f"r{n}": result for n, (_, result) in enumerate(done)}
    journals = {}
    for n, (inv_id, _) in enumerate(done):
        entries, completions = await engine.store.get_journal(inv_id)
        kinds = [json.loads(e)["kind"] for e in entries]
        journals[f"r{n}"] = (kinds, sorted(json.loads(c)["index"] for c in completions))
    states = {k: await engine.store.get_state("FObj", k) for k in ("k0", "k1", "k2")}
    # object adds run in arrival order per key: only the final state is order-independent
    return {n: r for n, r in results.items() if int(n[1:]) < 12}, {"states": states, **journals}


def _reference() -> tuple[dict[str, Any], dict[str, Any]]:
    async def main() -> tuple[dict[str, Any], dict[str, Any]]:
        store = MemoryStore()
        await store.open()
        engine = await _engine(store)
        try:
            return await _workload(engine)
        finally:
            await engine.stop()
            await store.close()

    return asyncio.run(main())


REFERENCE: list[tuple[dict[str, Any], dict[str, Any]]] = []


@pytest.mark.parametrize(
    "fault",
    ["throttle=0.15", "conflict=0.15", "internal=0.15", "ambiguous=0.15", "ambiguous=0.05"],
)
def test_each_fault_is_retried_and_changes_nothing(fault: str, tmp_path: Any) -> None:
    if not REFERENCE:
        REFERENCE.append(_reference())
    expected_results, expected_rest = REFERENCE[0]

    async def main() -> None:
        spec = FaultyStore.spec_from_text(fault + ",seed=11")
        faulty = FaultyStore(SqliteStore(tmp_path / "f.db"), **spec)
        store = RetryingStore(faulty, base_s=0.001, cap_s=0.02)
        await store.open()
        engine = await _engine(store)
        try:
            results, rest = await _workload(engine)
        finally:
            await engine.stop()
            await store.close()
        assert results == expected_results
        for name, value in expected_rest.items():
            if name.startswith("r") and int(name[1:]) >= 12:  # object adds: order varies
                assert value[0][0] == "input" and value == rest[name], name
            else:
                assert rest[name] == value, name
        assert sum(faulty.injected.values()) >= 5, faulty.injected
        assert store.retries["commit"] >= 5, store.retries

    asyncio.run(main())


def test_a_two_megabyte_step_result_is_journaled_whole() -> None:
    async def main() -> None:
        store = RetryingStore(FaultyStore(MemoryStore(), ambiguous=0.3, seed=2), base_s=0.001)
        await store.open()
        engine = await _engine(store)
        try:
            resolved = engine.registry.resolve("FSvc", "big")
            assert resolved is not None
            rec, _ = await engine.submit(resolved, None, json.dumps(2 * 1024 * 1024))
            assert json.loads(await engine.wait_result(rec.id)) == {"value": 2 * 1024 * 1024}
            entries, _ = await store.get_journal(rec.id)
            (blob,) = [json.loads(e) for e in entries if json.loads(e)["kind"] == "run"]
            assert blob["value"] == "x" * (2 * 1024 * 1024)
        finally:
            await engine.stop()
            await store.close()

    asyncio.run(main())


async def _asgi(app: Any, method: str, path: str, body: bytes = b"") -> tuple[int, dict, Any]:
    status, headers, raw = await asgi_call(app, method, path, body, _JSON)
    return status, headers, json.loads(raw)


_JSON = {"content-type": "application/json"}


def test_a_client_sees_a_retryable_503_only_when_the_budget_runs_out() -> None:
    async def main() -> None:
        faulty = FaultyStore(MemoryStore(), throttle=0.5, seed=5)
        store = RetryingStore(faulty, budget_s=5.0, base_s=0.001, cap_s=0.01)
        await store.open()
        engine = await _engine(store)
        app = IngressApp(engine, max_body_bytes=1 << 20)
        try:
            # half of all commits throttled: every request still succeeds within the budget
            for n in range(10):
                status, _, body = await _asgi(app, "POST", "/FSvc/square", str(n).encode())
                assert (status, body) == (200, n * n)
            assert faulty.injected["throttle"] > 0
            # then the store stays down: the budget runs out, the client gets a 503
            faulty.rates["throttle"] = 1.0
            store.budget_s = 0.2
            status, headers, body = await _asgi(app, "POST", "/FSvc/square", b"3")
            assert status == 503 and headers["retry-after"] == "1", (status, body)
            assert "budget" in body["message"], body
            faulty.rates["throttle"] = 0.0  # back up: the server is still serving
            status, _, body = await _asgi(app, "POST", "/FSvc/square", b"4")
            assert (status, body) == (200, 16)
        finally:
            await engine.stop()
            await store.close()

    asyncio.run(main())
