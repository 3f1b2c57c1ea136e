"""What the DynamoDB store costs per journaled step: requests, items, write and read units,
counted at the client (``DynamoStore.stats``) while an orchestrator engine runs one-step and
ten-step handlers against a table on moto's server (real HTTP on 127.0.0.1), then priced at
DynamoDB on-demand rates beside AWS Step Functions Standard.

    .venv/bin/python benchmarks/dynamo_cost.py [--invocations 20]

The engine runs with a long lease and a slow inbox poll while measuring, so the background
work (lease renewals, heartbeats, inbox polls) is measured separately, per orchestrator-hour
with the default settings.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.apps.plain_steps import add_steps, one_and_ten  # noqa: E402

from benchmarks import _cost  # noqa: E402
from ritornello import Context, Endpoint, Service  # noqa: E402
from ritornello.orchestrator import Engine, LimitSpec  # noqa: E402
from ritornello.store.dynamodb import DynamoStore  # noqa: E402

svc = one_and_ten("Cost")


@svc.handler()
async def one_limited(ctx: Context, n: int) -> int:
    """``one`` with its step under a limit that never binds: the difference is a permit's
    cost (docs/limits.md)."""
    return await ctx.run("step", lambda: n + 1, limit="cost")


batched = Service("CostBatch")


@batched.handler()
async def ten_batched(ctx: Context, n: int) -> int:
    """``ten`` on an endpoint with durability "batch": the steps go out with the output, in
    one answer (a crash re-runs them all)."""
    return await add_steps(ctx, n, 10)


async def _measure(
    engine: Engine, store: DynamoStore, handler: str, count: int, service: str = "Cost"
) -> dict[str, Any]:
    target = engine.registry.resolve(service, handler)
    assert target is not None
    before = store.stats.snapshot()
    for n in range(count):
        rec, _ = await engine.submit(target, None, json.dumps(n))
        await engine.wait_result(rec.id)
    return _cost.stats_delta(before, store.stats.snapshot())


def _row(name: str, delta: dict[str, Any], invocations: int, steps: int) -> dict[str, Any]:
    total_requests = sum(delta["requests"].values())
    transactions = delta["requests"].get("TransactWriteItems", 0)
    per_step_cost = _cost.usd_per_million(delta) / (invocations * steps)
    return {
        "workload": name,
        "requests/invocation": total_requests / invocations,
        "transactions/invocation": transactions / invocations,
        # a plain step whose entries go in the invocation item's tail (docs/dynamodb.md)
        "single-item writes/invocation": delta["requests"].get("PutItem", 0) / invocations,
        "requests/step": total_requests / (invocations * steps),
        "WRU/step": delta["write_units"] / (invocations * steps),
        "RRU/step": delta["read_units"] / (invocations * steps),
        "USD per million steps": per_step_cost,
        "by operation/invocation": {
            op: n / invocations for op, n in sorted(delta["requests"].items())
        },
    }


async def main(count: int) -> None:
    server, moto_url = _cost.start_moto()
    store, url = await _cost.open_new_table("cost", moto_url, 16)
    endpoint = Endpoint([svc])
    batch_endpoint = Endpoint([batched], durability="batch")
    engine = Engine(
        store,
        inprocess={"app": endpoint.inprocess(), "batch": batch_endpoint.inprocess()},
        lease_s=600.0,
        inbox_interval_s=600.0,
        node="bench",
        limits={"cost": LimitSpec(concurrency=1000)},
    )
    await engine.start()
    await engine.register_deployment("inproc://app")
    await engine.register_deployment("inproc://batch")
    await _measure(engine, store, "one", 2)  # warm up
    batch = await _measure(engine, store, "ten_batched", count, "CostBatch")
    rows = [
        _row("one step", await _measure(engine, store, "one", count), count, 1),
        _row("one limited step", await _measure(engine, store, "one_limited", count), count, 1),
        _row("ten steps", await _measure(engine, store, "ten", count), count, 10),
        _row("ten steps, durability batch", batch, count, 10),
    ]
    await engine.stop()
    await store.close()

    # Background work of one orchestrator with the default settings, for 10 s.
    store = DynamoStore.from_url(url)
    await store.open()
    engine = Engine(store, node="idle")
    await engine.start()
    before = store.stats.snapshot()
    started = time.monotonic()
    await asyncio.sleep(10)
    idle = _cost.stats_delta(before, store.stats.snapshot())
    elapsed = time.monotonic() - started
    await engine.stop()
    await store.close()
    server.stop()

    print(f"DynamoDB requests per handler run (client-side counts, {count} invocations each)")
    print(json.dumps(rows, indent=2))
    hourly = {k: v * 3600 / elapsed for k, v in idle.items() if k != "requests"}
    hourly["requests"] = sum(idle["requests"].values()) * 3600 / elapsed
    hourly["USD per hour"] = _cost.usd_per_million(hourly) / 1e6
    print("idle orchestrator leading 16 partitions, per hour:", json.dumps(hourly, indent=2))
    print(
        f"Step Functions Standard: USD {_cost.STEP_FUNCTIONS_PER_MILLION:.2f} per million state "
        "transitions"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--invocations", type=int, default=20)
    asyncio.run(main(parser.parse_args().invocations))
