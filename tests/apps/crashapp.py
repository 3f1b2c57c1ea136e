"""Handlers for the crash tests: ten steps with sleeps, calls and object state.

Every execution of a step's side effect appends ``invocation step token`` to the ledger file
named by RITORNELLO_TEST_LEDGER (O_APPEND, one write per line), and the step journals its token:
so a test can tell which execution was committed and whether anything ran after it. A token
is unique and ends with the wall-clock time it ran (``hex@seconds``), to read a timeline from.
"""

import asyncio
import os
import time
import uuid
from datetime import timedelta

from _ledger import LEDGER, append

from ritornello import Context, Endpoint, RetryPolicy, Service, VirtualObject

worker = VirtualObject("Worker")
adder = Service("Adder")


def _effect(invocation_id: str, step: str) -> str:
    token = f"{uuid.uuid4().hex}@{time.time():.3f}"
    append(invocation_id, step, token)
    return token


@adder.handler()
async def add(ctx: Context, pair: list[int]) -> int:
    await ctx.run("effect", _effect, ctx.invocation_id, "add")
    return pair[0] + pair[1]


@worker.handler()
async def work(ctx: Context, steps: int) -> dict[str, int]:
    total = 0
    for i in range(steps):
        await ctx.run(f"step-{i}", _effect, ctx.invocation_id, f"step-{i}")
        total = await ctx.call(add, [total, i])
        ctx.set("progress", i + 1)
        if i % 3 == 0:
            await ctx.sleep(timedelta(milliseconds=150))
    ctx.set("total", total)
    return {"total": total, "progress": await ctx.get("progress")}


async def _slow_effect(invocation_id: str, step: str, step_ms: int) -> str:
    token = _effect(invocation_id, step)  # it ran: in the ledger before the step's result
    await asyncio.sleep(step_ms / 1000)
    return token


@worker.handler()
async def slow_work(ctx: Context, args: dict[str, int]) -> dict[str, int]:
    """``work`` whose steps take ``step_ms`` each, without sleeps: whenever a partition changes
    hands, steps are in flight."""
    total = 0
    for i in range(args["steps"]):
        await ctx.run(f"step-{i}", _slow_effect, ctx.invocation_id, f"step-{i}", args["step_ms"])
        total = await ctx.call(add, [total, i])
        ctx.set("progress", i + 1)
    ctx.set("total", total)
    return {"total": total, "progress": await ctx.get("progress")}


@worker.handler(kind="shared")
async def status(ctx: Context) -> dict[str, object]:
    return {"progress": await ctx.get("progress"), "total": await ctx.get("total")}


@adder.handler()
async def schedule(ctx: Context, n: int) -> str:
    """A delayed one-way call from inside a handler."""
    return ctx.send(add, [n, n], delay=timedelta(seconds=1)).invocation_id


@adder.handler(retry=RetryPolicy(max_attempts=3, initial_interval_ms=20))
async def flaky(ctx: Context, failures: int) -> str:
    """Fails its first ``failures`` attempts, unless the ledger's ``.fixed`` file exists."""
    fixed = os.path.exists(LEDGER + ".fixed")  # noqa: ASYNC240 - a test switch, not I/O
    if ctx.attempt <= failures and not fixed:
        raise RuntimeError(f"attempt {ctx.attempt} failed")
    return f"ok on attempt {ctx.attempt}"


@adder.handler()
async def nap(ctx: Context, seconds: float) -> str:
    """A durable sleep: suspended for ``seconds`` (operator tests kill it meanwhile)."""
    await ctx.sleep(timedelta(seconds=seconds))
    return f"slept {seconds} s"


endpoint = Endpoint([worker, adder])
app = endpoint.asgi()
