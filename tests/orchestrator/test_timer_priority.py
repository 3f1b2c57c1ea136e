"""Due timers come before new work: the timer queue's lag, and the ingress yielding to it.

``TimerQueue.lag_ms`` is how overdue the oldest wake-up not yet handed over is (due in the heap,
being fired, or woken with its first attempt since unanswered); the ingress waits in
``yield_to_timers`` while it exceeds ``SLACK_MS``, never longer than ``MAX_WAIT_S``.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

from ritornello import Context, Endpoint, Service
from ritornello.orchestrator import Engine, ManualClock
from ritornello.orchestrator.runtime import TimerQueue
from ritornello.store import TimerRecord
from ritornello.store.memory import MemoryStore

svc = Service("Prio")


@svc.handler()
async def nap(ctx: Context, ms: int) -> int:
    await ctx.sleep(timedelta(milliseconds=ms))
    return ms


@svc.handler()
async def echo(ctx: Context, value: int) -> int:
    return value


def _sleep_timer(fire_at: int, inv: str = "inv_a") -> TimerRecord:
    return TimerRecord(fire_at, inv, "sleep", 1, 0)


def test_lag_counts_due_firing_and_woken_timers_until_handed_over() -> None:
    async def main() -> None:
        clock = ManualClock()
        t0 = clock.now_ms()
        release, started = asyncio.Event(), asyncio.Event()
        fired: list[TimerRecord] = []
        handed_over: set[str] = set()

        async def fire(due: list[TimerRecord]) -> None:
            fired.extend(due)
            started.set()
            await release.wait()
            for t in due:
                queue.woke(t.fire_at, t.invocation_id)

        queue = TimerQueue(clock, fire, lambda inv: inv in handed_over)
        queue.start()
        try:
            queue.add(_sleep_timer(t0 + 100))
            later = _sleep_timer(t0 + 5_000, "inv_later")
            queue.add(later)
            stale = _sleep_timer(t0 + 50, "inv_gone")
            queue.add(stale)
            queue.discard(stale)  # removed from the store: never counts
            assert queue.lag_ms() == 0 and not queue.behind()
            clock.advance(100 + queue.SLACK_MS)
            assert queue.lag_ms() == queue.SLACK_MS and not queue.behind()  # due, not late
            clock.advance(1)
            assert queue.behind()  # due in the heap, the loop has not taken it yet
            queue.poke()
            await asyncio.wait_for(started.wait(), 5)
            assert [t.invocation_id for t in fired] == ["inv_a"]
            clock.advance(10)
            late = queue.SLACK_MS + 11
            assert queue.lag_ms() == late  # being fired
            release.set()
            for _ in range(20):
                await asyncio.sleep(0)
            assert queue.lag_ms() == late  # woken, its first attempt not answered yet
            handed_over.add("inv_a")
            assert queue.lag_ms() == 0 and not queue.behind()
            # In firing order: the oldest one not handed over counts, until HANDOVER_MS.
            for n in range(3):
                queue.woke(clock.now_ms() - queue.SLACK_MS - 5 + n, f"inv_{n}")
            assert queue.lag_ms() == queue.SLACK_MS + 5 and queue.behind()
            handed_over.add("inv_0")
            assert queue.lag_ms() == queue.SLACK_MS + 4
            clock.advance(queue.HANDOVER_MS - queue.SLACK_MS)
            assert not queue.behind()  # a few slow first steps hold nothing back for longer
            # A backlog keeps counting past HANDOVER_MS (overload must not open the gate) ...
            backlog_due = clock.now_ms() - queue.SLACK_MS - 1
            for n in range(queue.BURST):
                queue.woke(backlog_due, f"inv_b{n}")
            clock.advance(queue.HANDOVER_MS)
            assert queue.lag_ms() == queue.HANDOVER_MS + queue.SLACK_MS + 1
            # ... but not past STUCK_MS.
            queue.discard(later)  # (it would be due by then)
            clock.advance(queue.STUCK_MS)
            assert not queue.behind()
        finally:
            await queue.stop()

    asyncio.run(main())


def test_waiting_for_the_timers_is_bounded_and_ends_when_they_catch_up() -> None:
    async def main() -> None:
        clock = ManualClock()
        stuck = asyncio.Event()

        async def fire(due: list[TimerRecord]) -> None:
            await stuck.wait()

        queue = TimerQueue(clock, fire)
        assert not queue.behind()
        queue.add(_sleep_timer(clock.now_ms() - 1_000))
        assert not queue.behind()  # no timer loop: waiting would not help
        queue.MAX_WAIT_S = 0.05
        queue.start()
        try:
            assert queue.behind()
            # the loop is stuck: every waiter goes on after MAX_WAIT_S, none hangs
            await asyncio.wait_for(asyncio.gather(*(queue.yield_to_timers() for _ in range(3))), 5)
            assert queue.behind()
            queue.MAX_WAIT_S = 30.0
            waiter = asyncio.ensure_future(queue.yield_to_timers())
            await asyncio.sleep(0.02)
            assert not waiter.done()
            stuck.set()  # fired: caught up
            await asyncio.wait_for(waiter, 5)
            assert not queue.behind()
        finally:
            await queue.stop()

    asyncio.run(main())


def test_stopping_the_timer_loop_releases_waiting_ingress() -> None:
    async def main() -> None:
        clock = ManualClock()

        async def fire(due: list[TimerRecord]) -> None:
            await asyncio.Event().wait()

        queue = TimerQueue(clock, fire)
        queue.MAX_WAIT_S = 30.0
        queue.add(_sleep_timer(clock.now_ms() - 1_000))
        queue.start()
        waiter = asyncio.ensure_future(queue.yield_to_timers())
        await asyncio.sleep(0.01)
        assert not waiter.done()
        await queue.stop()
        await asyncio.wait_for(waiter, 5)

    asyncio.run(main())


def test_a_new_invocation_waits_for_an_overdue_timer_to_wake_its_sleeper() -> None:
    async def main() -> None:
        clock = ManualClock()
        store = MemoryStore()
        await store.open()
        engine = Engine(store, clock=clock, inprocess={"app": Endpoint([svc]).inprocess()})
        await engine.start()
        engine.timers.MAX_WAIT_S = 30.0  # the wait ends when the sleeper woke, not before
        try:
            await engine.register_deployment("inproc://app")
            napper = engine.registry.resolve("Prio", "nap")
            echoer = engine.registry.resolve("Prio", "echo")
            assert napper is not None and echoer is not None
            sleeper, _ = await engine.submit(napper, None, "1000")
            for _ in range(200):
                rec = await store.get_invocation(sleeper.id)
                if rec is not None and rec.status == "suspended":
                    break
                await asyncio.sleep(0.005)
            # Overdue, and nobody pokes the timer loop: it notices within MAX_SLEEP_S.
            clock.advance(1_000 + engine.timers.SLACK_MS + 1)
            assert engine.timers.behind()
            new, _ = await engine.submit(echoer, None, "7")
            # The sleeper's first attempt after the sleep was answered before the new
            # invocation was even created.
            woke = await store.get_invocation(sleeper.id)
            assert woke is not None and woke.status == "completed", woke
            assert await store.get_invocation(new.id) is not None
            assert json.loads(await asyncio.wait_for(engine.wait_result(new.id), 5)) == {"value": 7}
        finally:
            await engine.stop()

    asyncio.run(main())
