"""examples/counter.py: a virtual object, one exclusive handler at a time per key."""

from __future__ import annotations

import asyncio

from counter import add, counter, get, reset

from ritornello.testing import Harness

from ._run import run


def test_add_get_reset_per_key() -> None:
    async def test(env: Harness) -> None:
        assert await env.call(add, 2, key="a") == 2
        assert await env.call(add, 3, key="a") == 5
        assert await env.call(add, 7, key="b") == 7
        assert await env.call(get, key="a") == 5
        assert await env.state(counter, "a") == {"count": 5}
        await env.call(reset, key="a")
        assert await env.call(get, key="a") == 0
        assert await env.state(counter, "a") == {}

    run(test, counter)


def test_concurrent_adds_on_one_key_run_one_at_a_time() -> None:
    async def test(env: Harness) -> None:
        refs = await asyncio.gather(*(env.send(add, 1, key="k") for _ in range(10)))
        assert sorted([await env.result(r) for r in refs]) == list(range(1, 11))
        assert await env.call(get, key="k") == 10

    run(test, counter)


def test_a_crash_never_counts_twice() -> None:
    async def test(env: Harness) -> None:
        # add: input 0, get 1, set 2, output 3
        total = 0
        for crash in ("crash_after", "crash_before"):
            for n in (1, 2, 3):
                if crash == "crash_after" and n == 3:
                    continue  # nothing follows the output
                total += n
                ref = await env.send(add, n, key="c", **{crash: n})
                assert await env.result(ref) == total
                await env.check_replay(ref)
        assert await env.state(counter, "c") == {"count": total}

    run(test, counter)
