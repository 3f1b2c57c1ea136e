"""The harness types a handler function's input and output as ``ctx.call`` does, and a
step's retries wait on the fake clock."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from ritornello import Context, Service, TerminalError
from ritornello.testing import Harness, NotFinished

svc = Service("Typed")
tries: list[int] = []


@dataclasses.dataclass
class Invoice:
    total: Decimal
    due: datetime


@svc.handler()
async def bill(ctx: Context, due: datetime) -> Invoice:
    total = await ctx.run("total", lambda: Decimal("10.05"))
    return Invoice(total, due + timedelta(days=30))


@svc.handler()
async def stubborn(ctx: Context) -> list[object]:
    started = ctx.time()

    def never() -> None:
        raise ConnectionError("down")

    try:
        await ctx.run(
            "api", never, max_retry_duration=timedelta(minutes=5), initial_retry_interval=60
        )
    except TerminalError as exc:
        return [exc.message, ctx.time() - started]
    return ["unreachable"]


@svc.handler()
async def flaky(ctx: Context) -> str:
    def once() -> str:
        tries.append(1)
        if len(tries) < 3:
            raise ConnectionError("down")
        return "up"

    try:
        return await ctx.run("api", once, max_attempts=5, initial_retry_interval=60)
    except TerminalError as exc:
        return exc.message


def test_a_handler_functions_input_and_output_are_typed() -> None:
    async def main() -> None:
        async with Harness(svc) as env:
            due = datetime(2026, 12, 5, tzinfo=UTC)
            invoice = await env.call(bill, due)
            assert invoice == Invoice(Decimal("10.05"), due + timedelta(days=30))
            assert await env.call("Typed/bill", due.isoformat()) == {
                "total": "10.05",
                "due": "2027-01-04T00:00:00+00:00",
            }

    asyncio.run(main())


def test_step_retries_wait_for_the_fake_clock() -> None:
    async def main() -> None:
        tries.clear()
        async with Harness(svc) as env:
            ref = await env.send(flaky)
            with pytest.raises(NotFinished):
                await env.result(ref)
            assert len(tries) == 1
            await env.advance(timedelta(seconds=60))  # the first retry timer: 60 s
            assert len(tries) == 2
            await env.advance(timedelta(seconds=120))  # the second: 120 s
            assert await env.result(ref) == "up" and len(tries) == 3
            timers = [e for e in await env.journal(ref) if e["kind"] == "sleep"]
            assert [t["retry"]["attempt"] for t in timers] == [1, 2]

    asyncio.run(main())


def test_the_sdk_reads_the_fake_clock_for_time_and_retry_durations() -> None:
    async def main() -> None:
        start = datetime(2030, 1, 1, tzinfo=UTC)
        async with Harness(svc, start=start) as env:
            ref = await env.send(stubborn)
            await env.advance(timedelta(minutes=10))
            message, waited = await env.result(ref)
            # every 60 s (the cap rises to a longer initial interval) until the next attempt
            # would start past 5 minutes after the first
            assert message.startswith("step 'api' failed after 6 attempt(s)")
            assert waited == 300.0
            journal = await env.journal(ref)
            assert journal[1]["value"] == start.timestamp()  # ctx.time(): the fake clock

    asyncio.run(main())
