"""Benchmark handlers: uvicorn ``app:app`` (from benchmarks/) or in-process (``ritornello dev``).

- ``Bench/greet``: one ``ctx.run``.
- ``Bench/ten``: ten sequential ``ctx.run`` steps.

Their steps are ``async`` functions: they run on the endpoint's event loop, as a step of
Restate's Python SDK (which the targets were measured with) runs even a sync function. Our SDK
runs a *sync* step function on a worker thread instead, so a blocking step cannot stall the
endpoint; ``Bench/ten_sync`` is ``ten`` with sync steps, to measure what that hop costs.
- ``Counter/add`` (virtual object): adds its input to the key's ``count`` state.
- ``Bench/sleeper``: ``{"sleep_ms": N}``; journals the wake time it expects (``expected``, Unix
  ms), sleeps N ms on a durable timer, then journals when it woke (``woke``). The suite reads the
  sleep entry's ``wake_at`` (stamped by the orchestrator) and ``woke`` from the journal.
- ``Bench/slow_ten``: ``{"step_ms": N}``; ten ``ctx.run`` steps that each take N ms (an
  ``asyncio.sleep`` inside the step), so invocations stay in flight long enough to be killed.
- ``Bench/greet_limited``: ``greet`` with its step under the limit ``bench`` (docs/limits.md;
  the workload defines it through the admin API, so it never binds).
- ``Bench/stamp``: one step under the limit ``rate`` that appends the time it ran to the file
  named by ``BENCH_STAMPS`` (benchmarks/limit_rate.py reads the achieved rate from it).
"""

import asyncio
import os
import time
from datetime import timedelta

from ritornello import Context, Endpoint, Service, VirtualObject

bench = Service("Bench")
counter = VirtualObject("Counter")


def _now_ms() -> float:
    return time.time() * 1000.0


@bench.handler()
async def greet(ctx: Context, name: str) -> str:
    async def compose() -> str:
        return f"Hello, {name}!"

    return await ctx.run("compose", compose)


async def _identity(i: int) -> int:
    return i


@bench.handler()
async def ten(ctx: Context, name: str) -> int:
    total = 0
    for i in range(10):
        total += await ctx.run(f"step-{i}", _identity, i)
    return total


@bench.handler()
async def ten_sync(ctx: Context, name: str) -> int:
    total = 0
    for i in range(10):
        total += await ctx.run(f"step-{i}", lambda i=i: i)
    return total


@counter.handler()
async def add(ctx: Context, delta: int) -> int:
    value = (await ctx.get("count") or 0) + delta
    ctx.set("count", value)
    return value


@bench.handler()
async def sleeper(ctx: Context, args: dict) -> dict:
    sleep_ms = int(args["sleep_ms"])
    expected = await ctx.run("expected", lambda: _now_ms() + sleep_ms)
    await ctx.sleep(timedelta(milliseconds=sleep_ms))
    woke = await ctx.run("woke", _now_ms)
    return {"expected": expected, "woke": woke}


@bench.handler()
async def slow_ten(ctx: Context, args: dict) -> int:
    step_s = int(args["step_ms"]) / 1000.0

    async def step(i: int) -> int:
        await asyncio.sleep(step_s)
        return i

    total = 0
    for i in range(10):
        total += await ctx.run(f"step-{i}", step, i)
    return total


@bench.handler()
async def greet_limited(ctx: Context, name: str) -> str:
    async def compose() -> str:
        return f"Hello, {name}!"

    return await ctx.run("compose", compose, limit="bench")


def _stamp() -> float:
    now = time.time()
    with open(os.environ["BENCH_STAMPS"], "a") as f:
        f.write(f"{now:.6f}\n")
    return now


@bench.handler()
async def stamp(ctx: Context) -> float:
    return await ctx.run("stamp", _stamp, limit="rate")


endpoint = Endpoint([bench, counter])
app = endpoint.asgi()
