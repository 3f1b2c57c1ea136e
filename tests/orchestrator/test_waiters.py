"""Waiters.settle: a stopping orchestrator waits for its clients' results, no longer than
needed, whichever way the last one is answered."""

from __future__ import annotations

import asyncio

from ritornello.orchestrator.runtime._waiters import Waiters


def test_settle_ends_when_the_last_waiter_is_answered_by_a_reply_or_removed() -> None:
    async def main() -> list[tuple[int, bool]]:
        waiters = Waiters()
        loop = asyncio.get_running_loop()
        outcomes = []
        for answer in ("reply", "remove"):
            fut = waiters.add("inv_1")
            if answer == "reply":
                loop.call_later(0.05, waiters.reply, "inv_1", "{}")
            else:
                loop.call_later(0.05, waiters.remove, "inv_1", fut)
            began = loop.time()
            left = await waiters.settle(5.0)
            outcomes.append((left, loop.time() - began < 1.0))
        return outcomes

    assert asyncio.run(main()) == [(0, True), (0, True)]


def test_settle_gives_up_after_its_time_and_says_how_many_still_wait() -> None:
    async def main() -> int:
        waiters = Waiters()
        waiters.add("inv_1")
        waiters.add("inv_2")
        return await waiters.settle(0.05)

    assert asyncio.run(main()) == 2
