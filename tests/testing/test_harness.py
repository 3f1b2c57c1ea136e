"""The harness on the real engine: calls and sends, fake time, awakeables, promises, state,
retries, cancellation, schedules, retention (docs/testing.md)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ritornello import Context, Limit, Service, TerminalError
from ritornello.testing import Harness, HarnessError, NotFinished

from ._services import (
    FAILED,
    RUNS,
    SERVICES,
    Item,
    account,
    approve,
    balance,
    deposit,
    describe,
    fail,
    later,
    nap,
    order,
    place,
    remind,
    stage,
    steps,
    succeed_after,
)


def run(test: Callable[[Harness], Awaitable[None]], **options: Any) -> None:
    async def main() -> None:
        async with Harness(*SERVICES, **options) as env:
            await test(env)

    asyncio.run(main())


def test_call_returns_the_output_and_raises_terminal_failures() -> None:
    async def test(env: Harness) -> None:
        assert await env.call(steps, 2) == ["step-0", "step-1"]
        assert await env.call("Steps/steps", 1) == ["step-0"]
        assert await env.call(describe, Item("fig", 3)) == "3 x fig"  # a dataclass input
        with pytest.raises(TerminalError) as raised:
            await env.call(fail, "no")
        assert (raised.value.message, raised.value.status_code) == ("no", 422)

    run(test)


def test_targets_and_keys_are_checked_before_anything_is_stored() -> None:
    async def test(env: Harness) -> None:
        with pytest.raises(HarnessError, match="give key="):
            await env.call(deposit, 1)
        with pytest.raises(HarnessError, match="takes no key"):
            await env.call(steps, 1, key="k")
        with pytest.raises(HarnessError, match="not a handler of the services"):
            await env.call(len, 1)
        with pytest.raises(HarnessError, match="no handler Steps/nope"):
            await env.call("Steps/nope")
        with pytest.raises(HarnessError, match="not a JSON number"):
            await env.call(steps, float("nan"))
        assert [r for r in await env.store.list_invocations(limit=10)] == []

    run(test)


def test_sleeps_fire_when_time_is_advanced_to_them_never_before() -> None:
    async def test(env: Harness) -> None:
        start = env.now
        ref = await env.send(nap, [60, 30])
        with pytest.raises(NotFinished) as raised:
            await env.result(ref)
        assert raised.value.status.status == "suspended"
        assert raised.value.status.waiting_on == (1,)
        await env.advance(timedelta(seconds=59.999))
        assert (await env.status(ref)).waiting_on == (1,)  # not a millisecond early
        # one advance past both: the second sleep starts when the first fires, and fires too
        await env.advance(timedelta(minutes=5))
        assert await env.result(ref) == 2
        assert env.now == start + timedelta(seconds=59.999, minutes=5)
        wakes = [e["completion"]["at"] for e in await env.journal(ref) if e["kind"] == "sleep"]
        epoch = start.timestamp() * 1000
        assert [w - epoch for w in wakes] == [60_000, 90_000]  # each at its own moment

    run(test)


def test_a_delayed_send_starts_when_its_time_comes() -> None:
    async def test(env: Harness) -> None:
        RUNS.clear()
        ref = await env.send(later, "direct", delay=timedelta(minutes=10))
        assert (await env.status(ref)).status == "scheduled"
        await env.advance(timedelta(minutes=9))
        assert RUNS["later:direct"] == 0
        await env.advance(timedelta(minutes=1))
        assert await env.result(ref) == "later:direct"
        # and one a handler sends
        assert await env.call(remind, "x") == "sent"
        await env.advance(timedelta(minutes=59))
        assert RUNS["later:x"] == 0
        await env.advance(timedelta(minutes=1))
        assert RUNS["later:x"] == 1

    run(test)


def test_retries_back_off_on_the_fake_clock() -> None:
    async def test(env: Harness) -> None:
        FAILED.clear()
        ref = await env.send(succeed_after, 2)
        status = await env.status(ref)
        assert (status.status, status.attempt) == ("backing-off", 2)
        assert status.last_failure is not None and "failure 1" in status.last_failure
        assert status.next_at == env.now + timedelta(seconds=1)  # the handler's policy
        with pytest.raises(NotFinished, match="backing-off"):
            await env.result(ref)
        await env.advance(timedelta(seconds=1))  # attempt 2 fails; the next in 2 s
        assert (await env.status(ref)).attempt == 3
        await env.advance(timedelta(seconds=2))
        assert await env.result(ref) == 3
        assert FAILED["succeed_after"] == 2

    run(test)


def test_awakeables_are_resolved_and_rejected_from_outside() -> None:
    async def test(env: Harness) -> None:
        async def awakeable_of(ref: str) -> str:
            return next(e["id"] for e in await env.journal(ref) if e["kind"] == "awakeable")

        ref = await env.send(approve)
        aid = await awakeable_of(ref)
        await env.resolve_awakeable(aid, {"by": "ann"})
        assert await env.result(ref) == "approved: {'by': 'ann'}"
        with pytest.raises(HarnessError, match="is completed"):
            await env.resolve_awakeable(aid, True)
        ref = await env.send(approve)
        await env.reject_awakeable(await awakeable_of(ref), "too expensive")
        assert await env.result(ref) == "rejected: too expensive"
        with pytest.raises(HarnessError, match="not found"):
            await env.resolve_awakeable(aid[:-4] + "AAAA", 1)  # a forged secret

    run(test)


def test_workflow_promises_are_resolved_before_or_after_the_wait() -> None:
    async def test(env: Harness) -> None:
        ref = await env.send(place, "fig", key="o1")
        assert await env.call(stage, key="o1") == "waiting for payment"
        await env.resolve_promise(order, "o1", "paid", "ann")
        assert await env.result(ref) == "fig paid by ann"
        assert (await env.state(order, "o1"))["stage"] == "paid"
        with pytest.raises(TerminalError, match="already completed") as raised:
            await env.resolve_promise(place, "o1", "paid", "bob")
        assert raised.value.status_code == 409
        # resolved before anyone waits
        await env.resolve_promise("Order", "o2", "paid", "cy")
        assert await env.call(place, "pear", key="o2") == "pear paid by cy"
        # rejected: the waiter gets the reason as a terminal error
        ref = await env.send(place, "plum", key="o3")
        await env.reject_promise(order, "o3", "paid", "card declined")
        with pytest.raises(TerminalError, match="card declined"):
            await env.result(ref)
        with pytest.raises(HarnessError, match="not a workflow"):
            await env.resolve_promise(account, "a", "paid")

    run(test)


def test_state_is_read_and_written_by_key() -> None:
    async def test(env: Harness) -> None:
        assert await env.call(deposit, 5, key="ann") == 5
        assert await env.state(account, "ann") == {"balance": 5}
        assert await env.state("Account", "bob") == {}
        await env.set_state(account, "bob", {"balance": 100})
        assert await env.call(deposit, 1, key="bob") == 101
        assert await env.call(balance, key="bob") == 101
        with pytest.raises(HarnessError, match="no service 'Nope'"):
            await env.state("Nope", "k")

    run(test)


def test_cancel_and_kill() -> None:
    async def test(env: Harness) -> None:
        ref = await env.send(approve)
        await env.cancel(ref)
        assert await env.result(ref) == "rejected: cancelled"
        ref = await env.send(nap, [10])
        await env.kill(ref)
        status = await env.status(ref)
        assert status.status == "killed"
        with pytest.raises(TerminalError) as raised:
            await env.result(ref)
        assert raised.value.status_code == 409
        with pytest.raises(HarnessError, match="not found"):
            await env.cancel("inv_nope")

    run(test)


def test_schedules_fire_at_each_fire_time_as_time_passes() -> None:
    async def test(env: Harness) -> None:
        RUNS.clear()
        await env.schedule(later, "*/10 * * * *", "tick")
        await env.advance(timedelta(minutes=35))  # 22:20, 22:30, 22:40 (start 22:13:20)
        assert RUNS["later:tick"] == 3
        with pytest.raises(HarnessError, match="cron"):
            await env.schedule(later, "not a cron", "x")

    run(test)


def test_finished_invocations_are_purged_after_their_retention_on_the_fake_clock() -> None:
    async def test(env: Harness) -> None:
        ref = await env.send(steps, 1)
        await env.advance(timedelta(minutes=59))
        assert (await env.status(ref)).finished
        await env.advance(timedelta(minutes=2))
        with pytest.raises(HarnessError, match="not found"):
            await env.status(ref)

    run(test, retention=timedelta(hours=1))


def test_idempotency_keys_and_headers_reach_the_engine_and_the_handler() -> None:
    async def test(env: Harness) -> None:
        first = await env.send(steps, 1, idempotency_key="k1", headers={"X-Trace": "t"})
        again = await env.send(steps, 1, idempotency_key="k1")
        assert first == again
        journal = await env.journal(first)
        assert journal[0]["headers"] == {"x-trace": "t"}

    run(test)


def test_the_clock_starts_where_told_and_never_goes_back() -> None:
    async def test(env: Harness) -> None:
        assert env.now == datetime(2030, 1, 1, tzinfo=UTC)
        with pytest.raises(HarnessError, match="forward"):
            await env.advance(-1)
        await env.advance(1.5)
        assert env.now == datetime(2030, 1, 1, 0, 0, 1, 500_000, tzinfo=UTC)

    run(test, start=datetime(2030, 1, 1, tzinfo=UTC))


def test_always_replay_gives_the_same_results() -> None:
    async def test(env: Harness) -> None:
        RUNS.clear()
        assert await env.call(steps, 3) == ["step-0", "step-1", "step-2"]
        assert RUNS == {"step-0": 1, "step-1": 1, "step-2": 1}
        ref = await env.send(nap, [5])
        await env.advance(5)
        assert await env.result(ref) == 1

    run(test, always_replay=True)


def test_a_concurrency_limit_holds_across_invocations() -> None:
    limited = Service("Limited", limits=[Limit("one", concurrency=1)])
    active: list[int] = []
    peak: list[int] = [0]

    async def work() -> str:
        active.append(1)
        peak[0] = max(peak[0], len(active))
        await asyncio.sleep(0.005)  # real work: the harness waits for it
        active.pop()
        return "done"

    @limited.handler()
    async def job(ctx: Context) -> str:
        return await ctx.run("work", work, limit="one")

    async def main() -> None:
        async with Harness(limited) as env:
            refs = await asyncio.gather(*(env.send(job) for _ in range(4)))
            assert [await env.result(r) for r in refs] == ["done"] * 4
            assert peak == [1]

    asyncio.run(main())
