"""Crash and replay at every journal position: a step journaled before the crash never runs
again, the step the crash cut off runs again (at-least-once), and the result is the same."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from ritornello import Endpoint
from ritornello.testing import Crash, Harness, HarnessError

from ._services import RUNS, SERVICES, account, charge_twice, deposit, steps

STEPS = 4  # steps(4): input 0, steps 1..4, output 5
BASELINE = [f"step-{i}" for i in range(STEPS)]


def run(test: Callable[[Harness], Awaitable[None]], *services: Any) -> None:
    async def main() -> None:
        async with Harness(*(services or SERVICES)) as env:
            await test(env)

    asyncio.run(main())


def _kinds(journal: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["kind"], e.get("name", "")) for e in journal]


def test_a_crash_after_any_entry_replays_it_without_running_it_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("RITORNELLO_ALWAYS_REPLAY", raising=False)  # (it shapes the answers)

    async def test(env: Harness) -> None:
        baseline = await env.send(steps, STEPS)
        expected = _kinds(await env.journal(baseline))
        for n in range(1, STEPS + 1):
            RUNS.clear()
            ref = await env.send(steps, STEPS, crash_after=n)
            assert await env.result(ref) == BASELINE
            assert dict(RUNS) == dict.fromkeys(BASELINE, 1), n  # every step ran once
            assert _kinds(await env.journal(ref)) == expected
            assert env.crashes[-1] == Crash(ref, "after", n, 1 if n == STEPS else 0)
            await env.check_replay(ref)

    run(test)


def test_a_crash_before_an_entry_is_committed_runs_that_step_again() -> None:
    async def test(env: Harness) -> None:
        for n in range(1, STEPS + 2):  # the output (index 5) too
            RUNS.clear()
            assert await env.call(steps, STEPS, crash_before=n) == BASELINE
            again = f"step-{n - 1}"  # entry n is step n-1's
            assert dict(RUNS) == {s: 2 if s == again else 1 for s in BASELINE}, n
            assert env.crashes[-1].point == "before" and env.crashes[-1].index == n

    run(test)


def test_a_crash_after_the_output_never_happens_and_the_harness_says_so() -> None:
    async def test(env: Harness) -> None:
        with pytest.raises(HarnessError, match=r"crash_after=5 never happened.*output"):
            await env.call(steps, STEPS, crash_after=5)
        with pytest.raises(HarnessError, match="crash_before=9 never happened"):
            await env.call(steps, STEPS, crash_before=9)

    run(test)


def test_a_crash_loses_only_what_was_not_committed_batch_durability(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """In batch durability one answer carries every entry: a crash after entry 2 keeps
    steps 0 and 1 and loses the rest, whose steps then run again."""
    monkeypatch.delenv("RITORNELLO_ALWAYS_REPLAY", raising=False)

    async def test(env: Harness) -> None:
        RUNS.clear()
        assert await env.call(steps, STEPS, crash_after=2) == BASELINE
        assert RUNS == {"step-0": 1, "step-1": 1, "step-2": 2, "step-3": 2}
        assert env.crashes == [Crash(env.crashes[0].invocation_id, "after", 2, 3)]

    run(test, Endpoint(SERVICES, durability="batch"))


def test_state_written_before_a_crash_is_written_once() -> None:
    """deposit: input 0, get 1, set 2, output 3 (in one answer): however it crashes, the
    balance moves once."""

    async def test(env: Harness) -> None:
        expected = 0
        for n in (1, 2):
            expected += 5
            assert await env.call(deposit, 5, key="ann", crash_after=n) == expected
        for n in (1, 2, 3):
            expected += 5
            assert await env.call(deposit, 5, key="ann", crash_before=n) == expected
        assert await env.state(account, "ann") == {"balance": expected}

    run(test)


def test_crash_next_crashes_the_callees_a_handler_creates_in_order() -> None:
    async def test(env: Harness) -> None:
        RUNS.clear()
        env.crash_next(steps, before=1)  # the first callee: step-0 runs twice
        env.crash_next(steps, after=1)  # the second: replayed, runs once
        assert await env.call(charge_twice) == ["step-0", "step-1", "step-0"]
        assert RUNS == {"step-0": 3, "step-1": 1}
        assert [(c.point, c.index) for c in env.crashes] == [("before", 1), ("after", 1)]

    run(test)


def test_bad_crash_plans_are_refused() -> None:
    async def test(env: Harness) -> None:
        with pytest.raises(HarnessError, match="exactly one"):
            await env.call(steps, 1, crash_after=1, crash_before=1)
        with pytest.raises(HarnessError, match="exactly one"):
            env.crash_next(steps)
        for bad in (0, -1, True, "1"):
            with pytest.raises(HarnessError, match="journal index >= 1"):
                await env.call(steps, 1, crash_after=bad)  # type: ignore[arg-type]

    run(test)
