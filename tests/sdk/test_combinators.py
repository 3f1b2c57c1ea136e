"""gather and select: waiting on several durable futures, deterministically under replay."""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import threading
from datetime import timedelta
from typing import Any

import pytest

from ritornello import (
    Context,
    Endpoint,
    Service,
    TerminalError,
    VirtualObject,
    gather,
    select,
)
from ritornello.protocol import Entry, InvokeRequest, InvokeResponse
from ritornello.sdk import _invocation

from ._driver import Driver, Finished

combo = Service("Combo")
helper = Service("ComboHelper")
shelf = VirtualObject("ComboShelf")
SERVICES = [combo, helper, shelf]
ID = "inv_combo000000000000000000000"
GOLDEN = pathlib.Path(__file__).parent / "golden" / "combinators"
MODES: dict[str, dict[str, Any]] = {
    "step": {"durability": "step"},
    "batch": {"durability": "batch"},
    "always_replay": {"always_replay": True},
}
LOG: list[str] = []


def invoke(
    target: str,
    value: Any = None,
    *,
    journal: list[Entry] | None = None,
    completions: list[dict[str, Any]] | None = None,
    key: str | None = None,
    state: dict[str, Any] | None = None,
    **options: Any,
) -> dict[str, Any]:
    """One attempt through the in-process endpoint, answered as a dict."""
    service, handler = target.split("/")
    request = InvokeRequest.decode(
        {
            "version": 1,
            "type": "invoke",
            "id": ID,
            "service": service,
            "handler": handler,
            "key": key,
            "attempt": 1,
            "journal": [{"kind": "input", "value": value}, *(journal or [])],
            "completions": completions or [],
            "state": state,
        }
    )
    endpoint = Endpoint(SERVICES, **options).inprocess()
    answer: dict[str, Any] = json.loads(asyncio.run(endpoint.invoke(request.encode())))
    return answer


def output(answer: dict[str, Any]) -> Any:
    assert answer["status"] == "done", answer
    last = answer["entries"][-1]
    return last["value"] if "value" in last else last["failure"]


class Ordered:
    """Wraps an endpoint for the driver: when the handler waits on several entries, only those
    of kind ``first`` complete (as when that timer fires, or that callee answers, first)."""

    def __init__(self, endpoint: Any, first: str) -> None:
        self.endpoint = endpoint
        self.first = first

    async def invoke(self, body: bytes) -> bytes:
        journal = InvokeRequest.decode(body).journal
        response = InvokeResponse.decode(await self.endpoint.invoke(body))
        journal = journal + response.entries
        chosen = [i for i in response.waiting if journal[i]["kind"] == self.first]
        if chosen:
            response = response.replace(waiting=chosen)
        return response.encode()


def drive(target: str, value: Any = None, *, first: str | None = None, **options: Any) -> Finished:
    endpoint: Any = Endpoint(SERVICES, **options).inprocess()
    if first is not None:
        endpoint = Ordered(endpoint, first)
    return asyncio.run(Driver(endpoint).run(target, value, invocation_id=ID))


def select_entries(journal: list[Entry]) -> list[Entry]:
    return [e for e in journal if e["kind"] == "run" and e.get("name") == "select"]


# -- services ----------------------------------------------------------------------------------


@helper.handler()
async def echo(ctx: Context, value: Any) -> Any:
    return value


@helper.handler()
async def boom(ctx: Context, why: str) -> None:
    raise TerminalError(why, status_code=409)


async def meet(name: str, mine: asyncio.Event, other: asyncio.Event) -> str:
    LOG.append(f"start {name}")
    mine.set()
    await asyncio.wait_for(other.wait(), 2)  # only returns if the other step runs meanwhile
    LOG.append(f"end {name}")
    return name.upper()


@combo.handler()
async def pair(ctx: Context) -> list[str]:
    a_started, b_started = asyncio.Event(), asyncio.Event()
    a = ctx.run("a", meet, "a", a_started, b_started)
    b = ctx.run("b", meet, "b", b_started, a_started)
    return await gather(a, b)


def meet_in_thread(name: str, barrier: threading.Barrier) -> str:
    LOG.append(f"start {name}")
    barrier.wait()  # both threads must be inside their step at once
    LOG.append(f"end {name}")
    return name


@combo.handler()
async def pair_sync(ctx: Context) -> list[str]:
    barrier = threading.Barrier(2, timeout=2)
    a = ctx.run("a", meet_in_thread, "a", barrier)
    b = ctx.run("b", meet_in_thread, "b", barrier)
    return await gather(a, b)


async def later(value: Any, delay: float) -> Any:
    await asyncio.sleep(delay)
    return value


async def fail_later(message: str, delay: float) -> None:
    await asyncio.sleep(delay)
    raise TerminalError(message, status_code=422)


@combo.handler()
async def mixed(ctx: Context, n: int) -> list[Any]:
    """Steps (the slower first), a call and a sleep, gathered in argument order."""
    slow = ctx.run("slow", later, n, 0.02)
    fast = ctx.run("fast", later, n + 1, 0.0)
    called = ctx.call(echo, n + 2)
    nap = ctx.sleep(timedelta(milliseconds=5))
    return await gather(slow, fast, called, nap)


@combo.handler()
async def fan_out(ctx: Context, n: int) -> list[Any]:
    return await gather(ctx.call(echo, n), ctx.call(echo, n + 1))


@combo.handler()
async def fan_out_failing(ctx: Context) -> str:
    try:
        await gather(ctx.call(echo, 1), ctx.call(boom, "first"), ctx.call(boom, "second"))
    except TerminalError as exc:
        return f"{exc.status_code} {exc.message}"
    return "no error"


@combo.handler()
async def steps_failing(ctx: Context) -> str:
    slow = ctx.run("x", fail_later, "x", 0.03)
    fast = ctx.run("y", fail_later, "y", 0.0)
    try:
        await gather(slow, fast)
    except TerminalError as exc:
        return exc.message
    return "no error"


@combo.handler()
async def race(ctx: Context, value: str) -> list[Any]:
    name, result = await select(
        result=ctx.call(echo, value), timeout=ctx.sleep(timedelta(seconds=5))
    )
    return [name, result]


@combo.handler()
async def race_renamed(ctx: Context, value: str) -> list[Any]:
    """race after a code change: the same entries, the sleep's name in the select changed."""
    name, result = await select(
        result=ctx.call(echo, value), deadline=ctx.sleep(timedelta(seconds=5))
    )
    return [name, result]


@combo.handler()
async def race_two_calls(ctx: Context, value: str) -> list[Any]:
    """race after a code change: the timer became a second call."""
    name, result = await select(result=ctx.call(echo, value), timeout=ctx.call(echo, "late"))
    return [name, result]


@combo.handler()
async def race_gathered(ctx: Context, value: str) -> list[Any]:
    """race after a code change: it gathers instead of selecting."""
    return await gather(ctx.call(echo, value), ctx.sleep(timedelta(seconds=5)))


@combo.handler()
async def race_failing(ctx: Context) -> str:
    try:
        await select(result=ctx.call(boom, "callee failed"), timeout=ctx.sleep(10))
    except TerminalError as exc:
        return f"{exc.status_code} {exc.message}"
    return "no error"


@combo.handler()
async def step_or_call(ctx: Context) -> list[Any]:
    """The call is journaled first (lower index), the step runs in this attempt."""
    called = ctx.call(echo, "called")
    step = ctx.run("work", lambda: "worked")
    name, value = await select(call=called, step=step)
    return [name, value]


@combo.handler()
async def fast_or_slow(ctx: Context) -> list[Any]:
    slow = ctx.run("slow", later, "tortoise", 0.03)
    fast = ctx.run("fast", later, "hare", 0.0)
    name, value = await select(slow=slow, fast=fast)
    return [name, value]


@combo.handler()
async def same_everywhere(ctx: Context) -> list[Any]:
    """Steps, calls, sleeps and selects, for comparing durability modes."""
    first = await gather(ctx.run("one", lambda: 1), ctx.call(echo, 2), ctx.sleep(0.001))
    won = await select(step=ctx.run("three", later, 3, 0.0), call=ctx.call(echo, 4))
    timed = await select(result=ctx.call(echo, 5), timeout=ctx.sleep(1))
    return [first, list(won), list(timed)]


@shelf.handler()
async def read_two(ctx: Context) -> list[Any]:
    b = ctx.get("b")
    a = ctx.get("a")
    both = await gather(a, b)
    name, value = await select(a=a, b=b)  # b was read first: the lower index wins
    return [both, name, value]


# -- gather ------------------------------------------------------------------------------------


@pytest.mark.parametrize("handler", ["pair", "pair_sync"])
@pytest.mark.parametrize("durability", ["step", "batch"])
def test_gather_runs_steps_concurrently(handler: str, durability: str) -> None:
    LOG.clear()
    answer = invoke(f"Combo/{handler}", durability=durability)
    # Each step waits for the other to have started: both started before either finished.
    assert LOG[:2] == ["start a", "start b"] and sorted(LOG[2:]) == ["end a", "end b"]
    assert answer["status"] == "done"
    expected = ["A", "B"] if handler == "pair" else ["a", "b"]
    assert [e.get("value") for e in answer["entries"]] == [*expected, expected]


def test_gather_gives_results_in_argument_order_across_kinds() -> None:
    first = invoke("Combo/mixed", 10, durability="batch")
    # The steps ran (and are journaled) before the attempt suspended on the call and the sleep.
    assert first["status"] == "suspended" and first["waiting"] == [3, 4]
    assert [e["kind"] for e in first["entries"]] == ["run", "run", "call", "sleep"]
    done = invoke(
        "Combo/mixed",
        10,
        journal=first["entries"],
        completions=[{"index": 3, "value": 12}, {"index": 4, "value": None}],
    )
    assert output(done) == [10, 11, 12, None]
    assert drive("Combo/mixed", 10).output["value"] == [10, 11, 12, None]


def test_gather_of_calls_suspends_once_naming_both() -> None:
    answer = invoke("Combo/fan_out", 1)
    assert answer["status"] == "suspended"
    assert answer["waiting"] == [1, 2]
    assert [(e["kind"], e["input"]) for e in answer["entries"]] == [("call", 1), ("call", 2)]
    one = invoke(
        "Combo/fan_out", 1, journal=answer["entries"], completions=[{"index": 2, "value": 2}]
    )
    assert one["status"] == "suspended" and one["waiting"] == [1] and one["entries"] == []
    finished = drive("Combo/fan_out", 1)
    assert finished.output["value"] == [1, 2]
    assert finished.statuses == ["suspended", "done"]


def test_gather_raises_the_first_failure_in_argument_order() -> None:
    assert drive("Combo/fan_out_failing").output["value"] == "409 first"
    assert output(invoke("Combo/steps_failing")) == "x"  # y failed first, x comes first


def test_gather_raises_a_failure_only_once_everything_before_it_is_resolved() -> None:
    calls = invoke("Combo/fan_out_failing")["entries"]
    second = {"index": 3, "failure": {"code": 409, "message": "second"}}
    first = {"index": 2, "failure": {"code": 409, "message": "first"}}
    # Raising "second" now would let a replay that also has "first" raise something else.
    early = invoke("Combo/fan_out_failing", journal=calls, completions=[second])
    assert early["status"] == "suspended" and early["waiting"] == [1, 2]
    # Everything before "first" is resolved: it raises, without waiting for the third call.
    ready = invoke(
        "Combo/fan_out_failing", journal=calls, completions=[{"index": 1, "value": 1}, first]
    )
    assert output(ready) == "409 first"


def test_gather_and_select_over_state_reads() -> None:
    answer = invoke("ComboShelf/read_two", key="k", state={"a": 1, "b": 2})
    assert output(answer) == [[1, 2], "b", 2]


def test_gather_of_nothing_is_an_empty_list() -> None:
    assert asyncio.run(gather()) == []


# -- select ------------------------------------------------------------------------------------


def test_select_suspends_on_every_participant() -> None:
    answer = invoke("Combo/race", "v")
    assert answer["status"] == "suspended" and answer["waiting"] == [1, 2]
    assert [e["kind"] for e in answer["entries"]] == ["call", "sleep"]


@pytest.mark.parametrize(
    ("first", "expected"),
    [("sleep", ["timeout", None]), ("call", ["result", "v"]), (None, ["result", "v"])],
)
def test_select_timeout_pattern(first: str | None, expected: list[Any]) -> None:
    finished = drive("Combo/race", "v", first=first)
    assert finished.output["value"] == expected
    assert select_entries(finished.journal) == [
        {"kind": "run", "name": "select", "value": expected[0]}
    ]


def test_a_selected_failure_raises() -> None:
    assert drive("Combo/race_failing", first="call").output["value"] == "409 callee failed"
    assert drive("Combo/race_failing", first="sleep").output["value"] == "no error"


def test_select_between_steps_takes_the_first_to_finish_and_journals_the_loser() -> None:
    answer = invoke("Combo/fast_or_slow")
    assert output(answer) == ["fast", "hare"]
    assert answer["entries"][:3] == [
        {"kind": "run", "name": "slow", "value": "tortoise"},
        {"kind": "run", "name": "fast", "value": "hare"},
        {"kind": "run", "name": "select", "value": "fast"},
    ]


def test_select_journals_its_choice_and_replays_it() -> None:
    first = invoke("Combo/step_or_call")
    # The call has no result; the step finishes in this attempt and wins.
    assert output(first) == ["step", "worked"]
    call, work, choice, _ = first["entries"]
    assert choice == {"kind": "run", "name": "select", "value": "step"}
    completed = [{"index": 1, "value": "called"}]
    # Replayed with the call complete too: both are done now and the call has the lower index,
    # but the journaled choice stands.
    replay = invoke("Combo/step_or_call", journal=[call, work, choice], completions=completed)
    assert replay["entries"] == [{"kind": "output", "value": ["step", "worked"]}]
    # Without the journaled choice, the same request would have decided for the call.
    fresh = invoke("Combo/step_or_call", journal=[call, work], completions=completed)
    assert fresh["entries"][0] == {"kind": "run", "name": "select", "value": "call"}
    assert output(fresh) == ["call", "called"]


@pytest.mark.parametrize("first", ["sleep", "call", None])
@pytest.mark.parametrize("handler", ["race", "step_or_call", "same_everywhere"])
def test_select_is_deterministic_in_every_durability_mode(handler: str, first: str | None) -> None:
    value = "v" if handler == "race" else None
    results = {
        mode: drive(f"Combo/{handler}", value, first=first, **o) for mode, o in MODES.items()
    }
    outputs = {mode: finished.output for mode, finished in results.items()}
    journals = {mode: finished.journal for mode, finished in results.items()}
    assert outputs["step"] == outputs["batch"] == outputs["always_replay"]
    assert journals["step"] == journals["batch"] == journals["always_replay"]
    assert select_entries(journals["step"])


def test_select_in_always_replay_mode_is_replayed_from_its_entry() -> None:
    finished = drive("Combo/race", "v", first="sleep", always_replay=True)
    assert finished.output["value"] == ["timeout", None]
    # call, sleep, (suspended), select, output: one new entry per answer.
    assert finished.statuses == ["checkpoint", "checkpoint", "suspended", "checkpoint", "done"]


def _race_journal() -> tuple[list[Entry], list[dict[str, Any]]]:
    first = invoke("Combo/race", "v")
    call, nap = first["entries"]
    nap = {**nap, "wake_at": 1_700_000_005_000}
    choice: Entry = {"kind": "run", "name": "select", "value": "timeout"}
    # Both are complete by now, the call with the lower index; the timer won when it chose.
    return [call, nap, choice], [{"index": 1, "value": "v"}, {"index": 2, "value": None}]


def test_replaying_a_select_whose_participants_changed_is_a_journal_mismatch() -> None:
    journal, completions = _race_journal()
    assert output(invoke("Combo/race", "v", journal=journal, completions=completions)) == [
        "timeout",
        None,
    ]
    cases = {
        "race_renamed": "the journal's select chose 'timeout', the handler waits on "
        "'result', 'deadline'",
        "race_two_calls": "the journal has sleep, the handler did call 'ComboHelper/echo'",
        "race_gathered": "the journal has run 'select', the handler did output",
    }
    for handler, message in cases.items():
        answer = invoke(f"Combo/{handler}", "v", journal=journal, completions=completions)
        assert answer["status"] == "error", handler
        assert answer["error"]["kind"] == "journal_mismatch"
        assert message in answer["error"]["message"]
        assert answer["entries"] == []


def test_a_journaled_choice_without_a_result_on_replay_is_a_journal_mismatch() -> None:
    journal, completions = _race_journal()
    # The sleep's completion is missing: the choice cannot have been made from this history.
    answer = invoke("Combo/race", "v", journal=journal, completions=completions[:1])
    assert answer["error"]["kind"] == "journal_mismatch"
    assert "index 3" in answer["error"]["message"]
    assert "no result on replay" in answer["error"]["message"]


@combo.handler()
async def approval(ctx: Context) -> list[Any]:
    _, approved = ctx.awakeable()
    name, value = await select(approved=approved, timeout=ctx.sleep(timedelta(hours=1)))
    return [name, value]


def test_select_over_an_awakeable_and_a_timer() -> None:
    first = invoke("Combo/approval")
    assert first["status"] == "suspended" and first["waiting"] == [1, 2]
    journal = first["entries"]
    approved = invoke("Combo/approval", journal=journal, completions=[{"index": 1, "value": "ok"}])
    assert output(approved) == ["approved", "ok"]
    timed_out = invoke("Combo/approval", journal=journal, completions=[{"index": 2, "value": None}])
    assert output(timed_out) == ["timeout", None]


# -- misuse ------------------------------------------------------------------------------------


def test_non_durable_awaitables_are_refused() -> None:
    coroutine = asyncio.sleep(0)
    with pytest.raises(TypeError, match=r"durable futures.*argument 0 is coroutine"):
        gather(coroutine)
    coroutine.close()
    with pytest.raises(TypeError, match="b is int"):
        select(b=42)
    with pytest.raises(ValueError, match="at least one"):
        select()

    async def with_a_task() -> None:
        task = asyncio.ensure_future(asyncio.sleep(0))
        with pytest.raises(TypeError, match="t is Task"):
            select(t=task)
        await task

    asyncio.run(with_a_task())


@combo.handler()
async def nested(ctx: Context) -> Any:
    return await ctx.run("inner", gather)


def test_combinators_are_refused_inside_a_step() -> None:
    answer = invoke("Combo/nested")
    assert answer["status"] == "error"
    assert answer["error"]["message"] == (
        "RuntimeError: gather() is not allowed inside ctx.run (step 'inner')"
    )


# -- golden journals ---------------------------------------------------------------------------

GOLDEN_FILES = sorted(GOLDEN.glob("*.json"))


@pytest.mark.parametrize("path", GOLDEN_FILES, ids=[p.stem for p in GOLDEN_FILES])
def test_golden_journal(path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fixture = json.loads(path.read_text())
    monkeypatch.setattr(_invocation, "_wall_clock", lambda: fixture["clock_ms"] / 1000)
    endpoint = Endpoint(SERVICES, **fixture["endpoint"]).inprocess()
    body = json.dumps(fixture["request"]).encode()
    answer = json.loads(asyncio.run(endpoint.invoke(body)))
    if os.environ.get("RITORNELLO_UPDATE_GOLDEN") == "1":
        fixture["response"] = answer
        path.write_text(json.dumps(fixture, indent=2) + "\n")
    assert answer == fixture["response"]


def test_golden_set_has_a_gather_suspension_and_a_select_replay() -> None:
    assert {p.stem for p in GOLDEN_FILES} >= {"gather_suspended", "select_replay"}
