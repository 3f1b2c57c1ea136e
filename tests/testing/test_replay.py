"""Replay from history: a journal recorded by the engine, replayed against changed code with no
orchestrator, reports the first divergence, and never runs a step."""

from __future__ import annotations

import asyncio
import json
import random
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from ritornello import Context, Endpoint, Service, VirtualObject
from ritornello.testing import (
    Harness,
    HarnessError,
    History,
    ReplayDivergenceError,
    ReplayReport,
    replay,
    replay_async,
)

from ._services import RUNS, SERVICES

# -- the code as it is now: same services, changed handlers -------------------------------------

v2 = Service("Steps")
v2_timers = Service("Timers")
v2_account = VirtualObject("Account")


@v2.handler()
async def steps(ctx: Context, n: int) -> list[str]:
    """Renames the last step and adds one after it."""
    out = [await ctx.run(f"step-{i}", RUNS.update, [f"v2:{i}"]) for i in range(n - 1)]
    out.append(await ctx.run("final", RUNS.update, ["v2:final"]))
    out.append(await ctx.run("extra", RUNS.update, ["v2:extra"]))
    return out


@v2_timers.handler()
async def nap(ctx: Context, seconds: list[float]) -> int:
    """Runs a step before sleeping."""
    await ctx.run("prepare", RUNS.update, ["v2:prepare"])
    for s in seconds:
        await ctx.sleep(timedelta(seconds=s))
    return len(seconds)


@v2_account.handler()
async def deposit(ctx: Context, amount: int) -> int:
    balance = (await ctx.get("balance") or 0) + amount
    ctx.set("balance", balance)
    return balance


def record(target: str, arg: Any, *, key: str | None = None, advance: float = 0) -> dict[str, Any]:
    """Run ``target`` once in a harness with the original code; its exported history."""

    async def main() -> dict[str, Any]:
        async with Harness(*SERVICES) as env:
            ref = await env.send(target, arg, key=key)
            if advance:
                await env.advance(advance)
            return await env.export(ref)

    return asyncio.run(main())


def test_the_original_code_replays_its_own_history_cleanly() -> None:
    history = record("Steps/steps", 3)
    RUNS.clear()
    report = replay(history, SERVICES)
    assert report.ok and report.finished and report.journal_length == 5
    assert str(report).endswith("replayed cleanly to its output")
    assert RUNS == {}  # no step ran: every one was replayed


def test_a_renamed_step_is_the_first_divergence_and_no_step_runs() -> None:
    history = record("Steps/steps", 3)  # input, step-0, step-1, step-2, output
    RUNS.clear()
    report = replay(history, [v2])
    assert not report.ok
    d = report.divergence
    assert d is not None
    assert (d.kind, d.index, d.journal_has, d.handler_did) == (
        "mismatch",
        3,
        "run 'step-2'",
        "run 'final'",
    )
    assert "journal mismatch at index 3" in d.message
    assert RUNS == {}
    with pytest.raises(ReplayDivergenceError, match="at journal index 3 the journal has run"):
        report.raise_for_divergence()


def test_a_step_added_at_the_end_diverges_at_the_output_without_running() -> None:
    two = record("Steps/steps", 2)  # input, step-0, step-1, output

    extended = Service("Steps")

    @extended.handler(name="steps")
    async def steps_plus(ctx: Context, n: int) -> list[str]:
        out = [await ctx.run(f"step-{i}", RUNS.update, [f"x:{i}"]) for i in range(n)]
        await ctx.run("audit", RUNS.update, ["x:audit"])
        return out

    RUNS.clear()
    report = replay(two, Endpoint([extended]))
    d = report.divergence
    assert d is not None and (d.index, d.journal_has, d.handler_did) == (3, "output", "run 'audit'")
    assert RUNS == {}  # 'audit' never ran


def test_an_unfinished_history_replays_and_says_what_would_come_next() -> None:
    history = record("Timers/nap", [60, 60])  # suspended on its first sleep
    assert History.load(history).status == "suspended"
    report = replay(history, SERVICES)
    assert report.ok and not report.finished
    assert report.next == "wait on entries [1]"
    assert "next it would do wait on entries [1]" in str(report)
    # the first sleep fired meanwhile (its completion is in the history): the next action
    woke = record("Timers/nap", [60, 60], advance=60)
    assert replay(woke, SERVICES).next == "wait on entries [2]"
    # v2 runs a step first: a divergence at 1, the step not run
    RUNS.clear()
    d = replay(history, [v2_timers]).divergence
    assert d is not None and (d.index, d.journal_has, d.handler_did) == (
        1,
        "sleep",
        "run 'prepare'",
    )
    assert RUNS == {}


def test_a_history_past_whose_end_the_code_goes_on_names_the_next_action() -> None:
    history = record("Timers/nap", [60])
    unfinished = {**history, "journal": history["journal"][:1], "completions": []}
    assert replay(unfinished, SERVICES).next == "sleep"


def test_objects_replay_their_state_reads_from_the_journal() -> None:
    history = record("Account/deposit", 5, key="ann")
    report = replay(history, [v2_account])
    assert report.ok and report.key == "ann"


def test_histories_load_from_files_text_and_documents(tmp_path: Path) -> None:
    history = record("Steps/steps", 1)
    path = tmp_path / "h.json"
    path.write_text(json.dumps(history))
    for source in (path, str(path), json.dumps(history), history, History.load(history)):
        assert replay(source, SERVICES).ok  # type: ignore[arg-type]
    bad = [
        ({**history, "format": "x"}, "'format' must be"),
        ({**history, "version": 2}, "version 2"),
        ({**history, "journal": []}, "non-empty list"),
        ({**history, "journal": history["journal"][1:]}, "start with the input"),
        ({**history, "invocation": {"id": "i"}}, "invocation.service"),
        ({**history, "completions": [{"value": 1}]}, "completions"),
    ]
    for doc, why in bad:
        with pytest.raises(HarnessError, match=why):
            replay(doc, SERVICES)
    with pytest.raises(HarnessError, match="cannot read"):
        replay(tmp_path / "missing.json", SERVICES)
    with pytest.raises(HarnessError, match="no handler Steps/steps"):
        replay(history, [v2_timers])


def test_replay_inside_an_event_loop_is_awaited() -> None:
    history = record("Steps/steps", 1)

    async def main() -> ReplayReport:
        with pytest.raises(HarnessError, match="replay_async"):
            replay(history, SERVICES)
        return await replay_async(history, SERVICES)

    assert asyncio.run(main()).ok


# -- check_replay: the harness's own invocations ------------------------------------------------

chance = Service("Chance")


@chance.handler()
async def step_named_by_chance(ctx: Context) -> str:
    return await ctx.run(f"roll-{random.random()}", lambda: "rolled")


@chance.handler()
async def output_by_chance(ctx: Context) -> float:
    await ctx.run("fixed", lambda: None)
    return random.random()


@chance.handler()
async def deterministic(ctx: Context) -> float:
    await ctx.run("fixed", lambda: None)
    return ctx.random().random()


def test_check_replay_catches_handlers_that_are_not_deterministic() -> None:
    async def main() -> None:
        async with Harness(chance) as env:
            ref = await env.send(deterministic)
            report = await env.check_replay(ref)
            assert report.output == {"value": await env.result(ref)}
            ref = await env.send(step_named_by_chance)
            with pytest.raises(ReplayDivergenceError, match="journal has run 'roll-") as raised:
                await env.check_replay(ref)
            assert raised.value.report.divergence is not None
            assert raised.value.report.divergence.index == 1
            ref = await env.send(output_by_chance)
            with pytest.raises(ReplayDivergenceError) as raised:
                await env.check_replay(ref)
            d = raised.value.report.divergence
            assert d is not None and (d.kind, d.index) == ("output", 2)

    asyncio.run(main())
