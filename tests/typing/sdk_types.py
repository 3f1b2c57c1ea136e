"""What a user's type checker sees of the SDK: checked by ``make typecheck`` (mypy strict,
this file is in ``[tool.mypy] files``), never run. ``assert_type`` fails the check if a type
changes; a ``type: ignore[...]`` that stops being needed fails it too (``warn_unused_ignores``),
so the calls that must be refused stay refused."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any, assert_type

from ritornello import BatchResult, CallHandle, Context, SendHandle, Service, as_completed, wait

svc = Service("Typing")


@dataclass
class Receipt:
    id: str


def charge(amount: int) -> Receipt:
    return Receipt(str(amount))


async def charge_async(amount: int) -> Receipt:
    return Receipt(str(amount))


async def one(ctx: Context, n: int) -> int:
    return n


@svc.handler()
async def handler(ctx: Context, n: int) -> int:
    assert_type(await ctx.run("sync", charge, 5), Receipt)
    assert_type(await ctx.run("async", charge_async, 5), Receipt)
    retried = ctx.run("retried", charge_async, 5, max_attempts=3, initial_retry_interval=1.5)
    assert_type(await retried, Receipt)
    limited = ctx.run("limited", charge, 5, limit="stripe", max_retry_duration=timedelta(1))
    assert_type(await limited, Receipt)
    assert_type(await ctx.run("hinted", lambda: {"id": "x"}, type_hint=Receipt), Receipt)
    # without options, the arguments are checked against the function
    await ctx.run("bad", charge, "five")  # type: ignore[call-overload]
    await ctx.run("missing", charge)  # type: ignore[call-overload]

    call = ctx.call(handler, 3)
    assert_type(call, CallHandle[int])
    assert_type(await call, int)
    assert_type(call.invocation_id, str)
    sent = ctx.send(handler, 3, idempotency_key="k", headers={"x-a": "b"})
    assert_type(sent, SendHandle)
    assert_type(await ctx.attach(sent.invocation_id), Any)
    await ctx.cancel(sent.invocation_id)
    assert_type(await ctx.generic_call("Typing", "handler", b"3"), bytes)

    batch = await ctx.map("each", [1, 2], one, max_concurrency=2, tolerated_failures=1)
    assert_type(batch, BatchResult[int])
    assert_type(batch.values(), list[int])
    done, pending = await wait(ctx.sleep(1), call)
    async for future in as_completed(ctx.sleep(1), call):
        await future
    return n + len(done) + len(pending)
