"""examples/greeter.py: one durable step."""

from __future__ import annotations

from greeter import greet, greeter

from ritornello.testing import Harness

from ._run import run


def test_greet_says_hello() -> None:
    async def test(env: Harness) -> None:
        assert await env.call(greet, "Ann") == "Hello, Ann!"

    run(test, greeter)


def test_the_greeting_survives_a_crash_at_every_position_and_replays() -> None:
    async def test(env: Harness) -> None:
        # input 0, run 'compose' 1, output 2 (sent together: a crash can cut between them)
        for crash in ({"crash_after": 1}, {"crash_before": 1}, {"crash_before": 2}):
            ref = await env.send(greet, "Bo", **crash)
            assert await env.result(ref) == "Hello, Bo!"
            await env.check_replay(ref)
        assert [c.index for c in env.crashes] == [1, 1, 2]

    run(test, greeter)
