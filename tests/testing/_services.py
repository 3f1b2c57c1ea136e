"""Services the harness tests run: every kind of context call, and counters of how many
times each step function actually ran (the harness's promise: a journaled step never runs
again, a crash before its commit runs it again)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import timedelta

from ritornello import Context, RetryPolicy, Service, TerminalError, VirtualObject, Workflow

#: step name -> times its function ran
RUNS: Counter[str] = Counter()
#: handler invocations that failed on purpose so far, by name
FAILED: Counter[str] = Counter()

steps_svc = Service("Steps")
timers = Service("Timers")
flaky = Service("Flaky")
waiter = Service("Waiter")
account = VirtualObject("Account")
order = Workflow("Order")


def ran(name: str) -> str:
    RUNS[name] += 1
    return name


@dataclass
class Item:
    name: str
    count: int


@steps_svc.handler()
async def steps(ctx: Context, n: int) -> list[str]:
    """``n`` steps in a row, then the list of their results."""
    return [await ctx.run(f"step-{i}", ran, f"step-{i}") for i in range(n)]


@steps_svc.handler()
async def fail(ctx: Context, message: str) -> None:
    raise TerminalError(message, status_code=422)


@steps_svc.handler()
async def describe(ctx: Context, item: Item) -> str:
    return f"{item.count} x {item.name}"


@steps_svc.handler()
async def charge_twice(ctx: Context) -> list[str]:
    """Calls a callee twice: crash plans armed for the callee hit these calls in order."""
    first = await ctx.call(steps, 2)
    second = await ctx.call(steps, 1)
    return [*first, *second]


@timers.handler()
async def nap(ctx: Context, seconds: list[float]) -> int:
    """Sleep each of ``seconds`` in turn; the number of sleeps."""
    for s in seconds:
        await ctx.sleep(timedelta(seconds=s))
    return len(seconds)


@timers.handler()
async def later(ctx: Context, note: str) -> str:
    """Sent with a delay: starts late; journals a step so the tests see it ran."""
    return await ctx.run("later", ran, f"later:{note}")


@timers.handler()
async def remind(ctx: Context, note: str) -> str:
    """Sends ``later`` one hour on."""
    ctx.send(later, note, delay=timedelta(hours=1))
    return "sent"


@flaky.handler(retry=RetryPolicy(initial_interval_ms=1000, factor=2.0, max_attempts=5))
async def succeed_after(ctx: Context, failures: int) -> int:
    """Fail ``failures`` attempts, then answer the attempt that succeeded."""
    if ctx.attempt <= failures:
        FAILED["succeed_after"] += 1
        raise RuntimeError(f"failure {ctx.attempt}")
    return ctx.attempt


@waiter.handler()
async def approve(ctx: Context) -> str:
    """Wait on an awakeable (tests find its id in the journal)."""
    _, decision = ctx.awakeable()
    try:
        return f"approved: {await decision}"
    except TerminalError as exc:
        return f"rejected: {exc.message}"


@account.handler()
async def deposit(ctx: Context, amount: int) -> int:
    balance = (await ctx.get("balance") or 0) + amount
    ctx.set("balance", balance)
    return balance


@account.handler(kind="shared")
async def balance(ctx: Context) -> int:
    return await ctx.get("balance") or 0


@order.main()
async def place(ctx: Context, item: str) -> str:
    ctx.set("stage", "waiting for payment")
    paid = await ctx.promise("paid").value()
    ctx.set("stage", "paid")
    return f"{item} paid by {paid}"


@order.handler()
async def stage(ctx: Context) -> str:
    return await ctx.get("stage") or "not started"


SERVICES = [steps_svc, timers, flaky, waiter, account, order]
