"""The data requests' pacing (store/_pacing.py): the limit follows the store's latency, a
request starts only below it, waiters start in order, and cancellation never leaks a slot."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ritornello.store._pacing import AdaptiveLimit


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def run(body: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(body())  # type: ignore[arg-type]


def test_slow_answers_cut_the_limit_once_per_latency_and_fast_ones_grow_it_back() -> None:
    clock = Clock()
    pace = AdaptiveLimit(16, target_s=0.5, clock=clock)

    async def body() -> None:
        for _ in range(16):
            await pace.acquire()
        for _ in range(8):  # eight requests of one queue, each 2 s: one cut
            pace.release(2.0)
        assert (pace.limit, pace.cuts, pace.slow) == (12, 1, 8)
        clock.now += 2.0  # a latency later, the queue is still slow: cut again
        for _ in range(8):
            pace.release(2.0)
        assert (pace.limit, pace.cuts, pace.in_flight) == (9, 2, 0)
        for _ in range(20):  # cuts stop at the floor
            clock.now += 3.0
            await pace.acquire()
            pace.release(3.0)
        assert pace.limit == pace.floor == 2
        for _ in range(100):  # within the target, but nobody waits: no reason to grow
            await pace.acquire()
            pace.release(0.01)
        assert pace.limit == 2
        grown = []
        for _ in range(200):  # within the target while some wait: +1 per `limit` answers
            while pace.in_flight < pace.limit:
                await pace.acquire()
            waiter = asyncio.create_task(pace.acquire())
            await asyncio.sleep(0)
            pace.release(0.01)
            await waiter
            grown.append(pace.limit)
        assert grown[0] == 2 and grown[1] == 3 and grown[-1] == 16
        assert grown == sorted(grown)

    run(body)


def test_a_request_starts_only_below_the_limit_and_waiters_start_in_order() -> None:
    clock = Clock()
    pace = AdaptiveLimit(4, target_s=0.5, floor=1, clock=clock)
    started: list[int] = []

    async def request(i: int) -> None:
        await pace.acquire()
        started.append(i)

    async def body() -> None:
        tasks = [asyncio.create_task(request(i)) for i in range(10)]
        await asyncio.sleep(0)
        assert started == [0, 1, 2, 3] and pace.view()["waiting"] == 6
        pace.release(5.0)  # slow: the limit falls to 3, and 3 are still in flight
        await asyncio.sleep(0)
        assert (pace.limit, pace.in_flight, started) == (3, 3, [0, 1, 2, 3])
        pace.release(0.1)
        await asyncio.sleep(0)
        assert started == [0, 1, 2, 3, 4] and pace.in_flight == 3
        for _ in range(3):
            pace.release(0.1)
        await asyncio.sleep(0)
        assert started == list(range(9))  # one slot freed each, and the limit grew to 4
        assert pace.view()["waited"] == 6
        for _ in range(3):
            pace.release(0.1)
        await asyncio.gather(*tasks)
        assert started == list(range(10))

    run(body)


def test_a_cancelled_waiter_takes_no_slot_and_a_granted_one_gives_it_back() -> None:
    pace = AdaptiveLimit(1, target_s=0.5, floor=1)

    async def body() -> None:
        await pace.acquire()
        waiting = asyncio.create_task(pace.acquire())
        granted = asyncio.create_task(pace.acquire())
        after = asyncio.create_task(pace.acquire())
        await asyncio.sleep(0)
        waiting.cancel()  # cancelled while it waits
        await asyncio.sleep(0)
        pace.release(0.1)  # the slot goes to `granted`, which is cancelled before it runs
        granted.cancel()
        with pytest.raises(asyncio.CancelledError):
            await granted
        await after  # so the slot went on to the next waiter
        assert pace.in_flight == 1 and pace.view()["waiting"] == 0
        assert waiting.cancelled()

    run(body)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["acquire", "release", "cancel"]), st.floats(0.0, 3.0)),
        max_size=60,
    )
)
def test_the_limit_and_the_slots_hold_their_invariants(steps: list[tuple[str, float]]) -> None:
    """Any order of acquires, releases (any latency) and cancellations: the limit stays
    within its bounds, no more than ``limit`` start (save those already in flight at a cut),
    and every slot is accounted for."""
    clock = Clock()
    pace = AdaptiveLimit(8, target_s=0.5, clock=clock)

    async def body() -> None:
        holders = 0
        pending: list[asyncio.Task[None]] = []
        for op, x in steps:
            clock.now += x
            if op == "acquire":
                pending.append(asyncio.create_task(pace.acquire()))
            elif op == "release" and holders:
                holders -= 1
                pace.release(x)
            elif op == "cancel" and pending:
                pending.pop(0).cancel()
            await asyncio.sleep(0)
            done = [t for t in pending if t.done()]
            for task in done:
                pending.remove(task)
                if not task.cancelled():
                    holders += 1
            assert pace.floor <= pace.limit <= pace.ceiling
            assert pace.in_flight == holders
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    run(body)


def test_bad_bounds_are_refused() -> None:
    with pytest.raises(ValueError, match="floor"):
        AdaptiveLimit(2, target_s=0.5, floor=3)
    with pytest.raises(ValueError, match="target_s"):
        AdaptiveLimit(2, target_s=0)
