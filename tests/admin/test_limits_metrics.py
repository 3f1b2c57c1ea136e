"""GET /metrics's named limits, through the admin app in process (httpx's ASGI transport) over
an engine on the in-memory store with an in-process endpoint: one invocation holds the only
permit of limit "pool" while two wait, then all three finish; the figures follow, parsed with
prometheus_client's own parser. Label values survive any text (a NUL-separated key)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from ritornello import Context, Endpoint, Service
from ritornello.admin import create_app
from ritornello.admin._metrics import _label_value
from ritornello.orchestrator import Engine, LimitSpec
from ritornello.orchestrator.core._limits import WAIT_BUCKETS_MS, Instance
from ritornello.store.memory import MemoryStore

svc = Service("Metered")
gate: dict[str, asyncio.Event] = {}
running: list[str] = []


async def _work(tag: str) -> str:
    running.append(tag)
    await gate["open"].wait()
    return tag


@svc.handler()
async def limited(ctx: Context, tag: str) -> str:
    return await ctx.run("work", _work, tag, limit="pool")


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def _scrape(client: httpx.AsyncClient) -> Samples:
    resp = await client.get("/metrics")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(resp.text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def _pool(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted({"limit": "pool", **labels}.items())))]


async def _until(check: Any, what: str) -> None:
    for _ in range(500):
        if await check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def test_the_limits_owned_here_are_gauges_a_counter_and_a_wait_histogram() -> None:
    async def main() -> None:
        gate["open"] = asyncio.Event()
        running.clear()
        store = MemoryStore()
        await store.open()
        engine = Engine(
            store,
            inprocess={"app": Endpoint([svc]).inprocess()},
            limits={"pool": LimitSpec(concurrency=1)},
        )
        await engine.start()
        transport = httpx.ASGITransport(app=create_app(engine, admin_token=""))
        client = httpx.AsyncClient(transport=transport, base_url="http://admin")
        try:
            await engine.register_deployment("inproc://app")
            resolved = engine.registry.resolve("Metered", "limited")
            assert resolved is not None
            ids = []
            for tag in ("a", "b", "c"):
                rec, _ = await engine.submit(resolved, None, json.dumps(tag))
                ids.append(rec.id)

            async def one_holds_two_wait() -> bool:
                s = await _scrape(client)
                key = ("ritornello_limit_waiting", (("limit", "pool"),))
                return s.get(key) == 2 and len(running) == 1

            await _until(one_holds_two_wait, "one holder and two waiters")
            await asyncio.sleep(0.2)  # the waiters wait at least this long
            held = await _scrape(client)
            assert _pool(held, "ritornello_limit_in_flight") == 1
            assert _pool(held, "ritornello_limit_waiting") == 2
            assert _pool(held, "ritornello_limit_granted_total") == 1
            assert _pool(held, "ritornello_limit_wait_seconds_count") == 1

            gate["open"].set()
            for inv in ids:
                await asyncio.wait_for(engine.wait_result(inv), 10)
            done = await _scrape(client)
            assert _pool(done, "ritornello_limit_in_flight") == 0
            assert _pool(done, "ritornello_limit_waiting") == 0
            assert _pool(done, "ritornello_limit_granted_total") == 3
            assert _pool(done, "ritornello_limit_wait_seconds_count") == 3
            bucket = "ritornello_limit_wait_seconds_bucket"
            assert _pool(done, bucket, le="+Inf") == 3
            les = [float(repr(ms / 1000)) for ms in WAIT_BUCKETS_MS]
            counts = [_pool(done, bucket, le=repr(le)) for le in les]
            assert counts == sorted(counts) and counts[-1] == 3  # cumulative, all within 1 h
            assert _pool(done, bucket, le="0.1") <= 1  # b and c waited over 0.2 s
            inst = engine.core.limits.instances["pool"]
            assert counts == inst.wait_buckets
            total = _pool(done, "ritornello_limit_wait_seconds_sum")
            assert total == inst.wait_ms_total / 1000 and total >= 0.4
        finally:
            await client.aclose()
            await engine.stop()

    asyncio.run(main())


def test_label_values_keep_any_text_apart() -> None:
    """Names of limits are plain; an instance's name may hold a NUL-separated key later: every
    control character and the backslash become ``\\xNN`` text, one to one, and the page still
    parses."""
    assert _label_value("payments.stripe:eu-1") == "payments.stripe:eu-1"
    assert _label_value('a\x00b"c\nd\\x00') == 'a\\x00b"c\\x0ad\\x5cx00'
    assert _label_value("a\x00b") != _label_value("a\\x00b")

    async def main() -> None:
        store = MemoryStore()
        await store.open()
        engine = Engine(store)
        await engine.start()
        transport = httpx.ASGITransport(app=create_app(engine, admin_token=""))
        client = httpx.AsyncClient(transport=transport, base_url="http://admin")
        odd = 'tenant\x00key "1"\\'
        engine.core.limits.instances[odd] = Instance(odd, 0, granted_total=2)
        try:
            samples = await _scrape(client)
            label = (("limit", _label_value(odd)),)
            assert samples[("ritornello_limit_granted_total", label)] == 2
            assert samples[("ritornello_limit_in_flight", label)] == 0
        finally:
            del engine.core.limits.instances[odd]
            await client.aclose()
            await engine.stop()

    asyncio.run(main())
