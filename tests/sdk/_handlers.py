"""Example services the SDK tests run (golden journals, the driver, the ASGI app)."""

from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from ritornello import Context, Service, TerminalError, VirtualObject

# -- Greeter: two steps, a terminal error, a sleep ---------------------------------------------

greeter = Service("Greeter")


def format_greeting(name: str) -> str:
    return f"Hello, {name}!"


async def shout(text: str) -> str:
    return text.upper()


@greeter.handler()
async def greet(ctx: Context, name: str) -> str:
    greeting = await ctx.run("format", format_greeting, name)
    return await ctx.run("shout", shout, greeting)


@greeter.handler()
async def fail(ctx: Context, name: str) -> str:
    raise TerminalError(f"no user {name}", status_code=404)


@greeter.handler()
async def nap(ctx: Context) -> str:
    await ctx.sleep(timedelta(seconds=5))
    return "rested"


# -- Orders -> Payments: calls and sends, dataclass input and output ---------------------------


@dataclass
class Order:
    item: str
    amount: int
    email: str = "nobody@example.com"


@dataclass
class Receipt:
    item: str
    charge_id: str
    notification_id: str


orders = Service("Orders")
payments = Service("Payments")
mailer = Service("Mailer")


@payments.handler()
async def charge(ctx: Context, amount: int) -> str:
    return await ctx.run("charge", lambda: f"ch_{amount}")


@mailer.handler()
async def receipt(ctx: Context, email: str) -> None:
    return None


@orders.handler()
async def checkout(ctx: Context, order: Order) -> Receipt:
    charge_id = await ctx.call(charge, order.amount)
    notification_id = ctx.send(receipt, order.email, delay=timedelta(minutes=1)).invocation_id
    return Receipt(order.item, charge_id, notification_id)


# -- Counter: state --------------------------------------------------------------------------

counter = VirtualObject("Counter")


@counter.handler()
async def add(ctx: Context, delta: int) -> int:
    count: int = await ctx.get("count", 0)
    ctx.set("count", count + delta)
    await ctx.state_keys()
    return count + delta


@counter.handler(kind="shared")
async def peek(ctx: Context) -> int:
    value: int = await ctx.get("count", 0)
    return value


@counter.handler()
async def reset(ctx: Context) -> None:
    ctx.clear("count")
    ctx.clear_all()


# -- Ledger: ten steps with state and sleeps, a call, a send (the driver's workload) ----------

#: How many times each step function ran, by "invocation id:step name".
EXECUTIONS: collections.Counter[str] = collections.Counter()

ledger = VirtualObject("Ledger")
math = Service("Math")


def square_sync(tag: str, i: int) -> int:
    EXECUTIONS[tag] += 1
    return i * i


async def square_async(tag: str, i: int) -> int:
    EXECUTIONS[tag] += 1
    await asyncio.sleep(0)
    return i * i


@math.handler()
async def double(ctx: Context, n: int) -> int:
    tag = f"{ctx.invocation_id}:double"
    return 2 * await ctx.run("double", square_sync, tag, 1) * n


@ledger.handler()
async def process(ctx: Context, steps: int) -> dict[str, Any]:
    total = 0
    for i in range(steps):
        fn = square_sync if i % 2 == 0 else square_async
        value: int = await ctx.run(f"step-{i}", fn, f"{ctx.invocation_id}:step-{i}", i)
        total += value
        ctx.set(f"s{i}", value)
        if i % 4 == 0:
            await ctx.sleep(timedelta(milliseconds=10))
    doubled = await ctx.call(double, total)
    sent = ctx.send(double, 1, delay=2.5).invocation_id
    keys = await ctx.state_keys()
    ctx.clear("s0")
    last = await ctx.get(f"s{steps - 1}")
    ctx.time()
    return {
        "total": total,
        "doubled": doubled,
        "sent": sent,
        "keys": keys,
        "last": last,
        "random": ctx.random().random(),
        "uuid": str(ctx.uuid()),
    }


ALL_SERVICES = [greeter, orders, payments, mailer, counter, ledger, math]
