"""The context's rules, one at a time: steps, state, calls, suspension, errors."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from datetime import timedelta
from typing import Any

import pytest

from ritornello import Context, Endpoint, JournalMismatchError, Service, Suspended, VirtualObject
from ritornello.protocol import Entry, derive_id
from ritornello.sdk import _invocation

from ._handlers import counter, greet, greeter, peek

lab = Service("Lab")
box = VirtualObject("Box")
shelf = VirtualObject("Shelf")
CAUGHT: list[BaseException] = []
ID = "inv_lab0000000000000000000000"


def invoke(
    target: str,
    value: Any = None,
    *,
    journal: list[Entry] | None = None,
    completions: list[dict[str, Any]] | None = None,
    key: str | None = None,
    state: dict[str, Any] | None = None,
    durability: str = "batch",
    invocation_id: str = ID,
) -> dict[str, Any]:
    """One attempt through the in-process endpoint, answered as a dict."""
    service, handler = target.split("/")
    request = {
        "version": 1,
        "type": "invoke",
        "id": invocation_id,
        "service": service,
        "handler": handler,
        "key": key,
        "attempt": 1,
        "journal": [{"kind": "input", "value": value}, *(journal or [])],
        "completions": completions or [],
        "state": state,
    }
    endpoint = Endpoint([lab, box, shelf, greeter, counter], durability=durability).inprocess()
    answer: dict[str, Any] = json.loads(asyncio.run(endpoint.invoke(json.dumps(request).encode())))
    return answer


def output(answer: dict[str, Any]) -> Any:
    assert answer["status"] == "done", answer
    last = answer["entries"][-1]
    return last["value"] if "value" in last else last["failure"]


# -- steps -----------------------------------------------------------------------------------


async def _async_thread() -> str:
    return threading.current_thread().name


@lab.handler()
async def threads(ctx: Context) -> dict[str, str]:
    return {
        "loop": threading.current_thread().name,
        "sync": await ctx.run("sync", lambda: threading.current_thread().name),
        "async": await ctx.run("async", _async_thread),
    }


def test_sync_steps_run_off_the_loop_thread_and_async_steps_on_it() -> None:
    names = output(invoke("Lab/threads"))
    assert names["sync"] != names["loop"]
    assert names["async"] == names["loop"]


@lab.handler()
async def parallel(ctx: Context) -> list[str]:
    slow = ctx.run("slow", _later, "a", 0.05)
    fast = ctx.run("fast", _later, "b", 0.0)
    return [await fast, await slow]


async def _later(value: str, delay: float) -> str:
    await asyncio.sleep(delay)
    return value


def test_steps_start_when_called_and_keep_their_call_order() -> None:
    answer = invoke("Lab/parallel")
    assert [e.get("name") for e in answer["entries"]] == ["slow", "fast", None]
    assert output(answer) == ["b", "a"]
    # Started together, so neither waits for the other to be persisted; nothing follows them.
    step = invoke("Lab/parallel", durability="step")
    assert step["status"] == "done"
    assert [e.get("value") for e in step["entries"]] == ["a", "b", ["b", "a"]]


@lab.handler()
async def background(ctx: Context) -> str:
    ctx.run("bg", _later, "done later", 0.02)
    return "returned first"


def test_a_step_still_running_at_the_end_is_waited_for_and_journaled() -> None:
    answer = invoke("Lab/background")
    assert answer["entries"][0] == {"kind": "run", "name": "bg", "value": "done later"}
    assert output(answer) == "returned first"


def _decline() -> None:
    from ritornello import TerminalError

    raise TerminalError("declined", status_code=402)


@lab.handler()
async def catches(ctx: Context) -> str:
    from ritornello import TerminalError

    try:
        await ctx.run("pay", _decline)
    except TerminalError as exc:
        return f"caught {exc.status_code} {exc.message}"
    return "paid"


def test_a_terminal_error_in_a_step_is_journaled_and_raised_to_the_handler() -> None:
    answer = invoke("Lab/catches")
    failure = {"code": 402, "message": "declined"}
    assert answer["entries"][0] == {"kind": "run", "name": "pay", "failure": failure}
    assert output(answer) == "caught 402 declined"
    step = invoke("Lab/catches", durability="step")
    assert step["status"] == "done"
    assert step["entries"][0] == {"kind": "run", "name": "pay", "failure": failure}
    replay = invoke("Lab/catches", journal=step["entries"][:1], durability="step")
    assert output(replay) == "caught 402 declined"


@lab.handler()
async def two_steps(ctx: Context) -> list[str]:
    first = await ctx.run("first", lambda: "1")
    second = await ctx.run("second", lambda: first + "2")
    return [first, second]


def test_step_durability_persists_a_step_before_the_next_one_starts() -> None:
    answer = invoke("Lab/two_steps", durability="step")
    assert answer["status"] == "checkpoint"
    assert answer["entries"] == [{"kind": "run", "name": "first", "value": "1"}]
    answer = invoke("Lab/two_steps", journal=answer["entries"], durability="step")
    assert answer["status"] == "done"
    assert [e.get("value") for e in answer["entries"]] == ["12", ["1", "12"]]


def _boom() -> None:
    raise ValueError("boom")


@box.handler()
async def crashes(ctx: Context) -> str:
    ctx.set("before", 1)
    await ctx.run("boom", _boom)
    ctx.set("after", 2)
    return "unreachable"


def test_a_crashing_step_fails_the_attempt_keeping_the_entries_before_it() -> None:
    answer = invoke("Box/crashes", key="k", state={})
    assert answer["status"] == "error"
    assert answer["error"] == {"kind": "handler", "message": "ValueError: boom"}
    assert answer["entries"] == [{"kind": "set", "name": "before", "value": 1}]


@lab.handler()
async def raises(ctx: Context) -> str:
    await ctx.run("ok", lambda: 1)
    raise KeyError("nope")


def test_an_exception_in_the_handler_is_a_retryable_error_with_its_entries() -> None:
    answer = invoke("Lab/raises")
    assert answer["status"] == "error"
    assert answer["error"] == {"kind": "handler", "message": "KeyError: 'nope'"}
    assert answer["entries"] == [{"kind": "run", "name": "ok", "value": 1}]


@lab.handler()
async def crash_while_suspending(ctx: Context) -> None:
    ctx.run("slow-crash", _slow_crash)
    await ctx.sleep(1)


async def _slow_crash() -> None:
    await asyncio.sleep(0.02)
    raise RuntimeError("late")


def test_a_step_failing_during_suspension_turns_the_answer_into_an_error() -> None:
    answer = invoke("Lab/crash_while_suspending")
    assert answer["status"] == "error"
    assert answer["error"]["message"] == "RuntimeError: late"
    assert answer["entries"] == []


@lab.handler()
async def nested(ctx: Context) -> None:
    await ctx.run("outer", lambda: ctx.time())


def test_context_calls_inside_a_step_are_refused() -> None:
    answer = invoke("Lab/nested")
    assert answer["status"] == "error"
    assert "not allowed inside ctx.run" in answer["error"]["message"]


@lab.handler()
async def unjsonable(ctx: Context) -> None:
    await ctx.run("obj", object)


def test_a_step_result_must_be_json() -> None:
    answer = invoke("Lab/unjsonable")
    assert answer["status"] == "error"
    assert answer["error"]["message"].startswith("TypeError:")


# -- suspension ------------------------------------------------------------------------------


def test_suspended_is_a_base_exception() -> None:
    assert issubclass(Suspended, BaseException)
    assert not issubclass(Suspended, Exception)


@lab.handler()
async def swallow(ctx: Context) -> str:
    try:
        await ctx.call(greet, "x")
    except Exception:
        return "swallowed"
    return "completed"


@lab.handler()
async def stubborn(ctx: Context) -> str:
    try:
        await ctx.sleep(10)
    except BaseException:
        pass
    try:
        ctx.run("after", lambda: 1)
    except BaseException as exc:
        CAUGHT.append(exc)
    return "ignored the suspension"


def test_except_exception_does_not_swallow_a_suspension() -> None:
    answer = invoke("Lab/swallow")
    assert answer["status"] == "suspended"
    assert answer["waiting"] == [1]
    assert [e["kind"] for e in answer["entries"]] == ["call"]


def test_after_a_suspension_context_calls_record_nothing_and_re_raise() -> None:
    CAUGHT.clear()
    answer = invoke("Lab/stubborn")
    assert answer["status"] == "suspended"
    assert [e["kind"] for e in answer["entries"]] == ["sleep"]
    assert len(CAUGHT) == 1 and isinstance(CAUGHT[0], Suspended)


@lab.handler()
async def hides_mismatch(ctx: Context) -> str:
    try:
        await ctx.run("b", lambda: 1)
    except Exception:
        pass
    return "hid it"


def test_a_swallowed_journal_mismatch_still_fails_the_attempt() -> None:
    answer = invoke("Lab/hides_mismatch", journal=[{"kind": "run", "name": "a", "value": 1}])
    assert answer["status"] == "error"
    assert answer["error"]["kind"] == "journal_mismatch"
    assert answer["entries"] == []
    assert issubclass(JournalMismatchError, Exception)


# -- calls, sends, sleeps --------------------------------------------------------------------


@lab.handler()
async def caller(ctx: Context) -> list[Any]:
    sent = ctx.send("Greeter/greet", "Ada", delay=timedelta(seconds=2)).invocation_id
    later = ctx.send(peek, key="alice", delay=0.5).invocation_id
    result = await ctx.call(peek, key="alice")
    return [sent, later, result]


def test_calls_and_sends_carry_derived_ids_keys_and_delays() -> None:
    done = invoke("Lab/caller")
    assert done["status"] == "suspended" and done["waiting"] == [3]
    send1, send2, call = done["entries"]
    assert send1 == {
        "kind": "send",
        "name": "Greeter/greet",
        "key": None,
        "input": "Ada",
        "id": derive_id(ID, 1),
        "delay_ms": 2000,
    }
    assert send2["key"] == "alice" and send2["delay_ms"] == 500 and send2["name"] == "Counter/peek"
    assert call["id"] == derive_id(ID, 3) and call["name"] == "Counter/peek"
    resumed = invoke("Lab/caller", journal=done["entries"], completions=[{"index": 3, "value": 7}])
    assert output(resumed) == [derive_id(ID, 1), derive_id(ID, 2), 7]


@lab.handler()
async def bad_targets(ctx: Context, which: str) -> None:
    if which == "object-without-key":
        await ctx.call(peek)
    elif which == "service-with-key":
        await ctx.call(greet, "x", key="k")
    elif which == "not-a-handler":
        await ctx.call(len)  # type: ignore[arg-type]
    else:
        ctx.send("no-slash")


@pytest.mark.parametrize(
    "which", ["object-without-key", "service-with-key", "not-a-handler", "no-slash"]
)
def test_bad_call_targets_fail_the_attempt_clearly(which: str) -> None:
    answer = invoke("Lab/bad_targets", which)
    assert answer["status"] == "error"
    assert answer["entries"] == []


@lab.handler()
async def sleeper(ctx: Context) -> str:
    await ctx.sleep(1.5)
    return "awake"


def test_sleep_accepts_seconds_and_completes_from_the_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_invocation, "_wall_clock", lambda: 1000.0)
    answer = invoke("Lab/sleeper")
    assert answer["entries"] == [{"kind": "sleep", "name": "", "duration_ms": 1500}]
    assert answer["waiting"] == [1]
    resumed = invoke(
        "Lab/sleeper", journal=answer["entries"], completions=[{"index": 1, "value": None}]
    )
    assert output(resumed) == "awake"


# -- determinism helpers ---------------------------------------------------------------------


@lab.handler()
async def dice(ctx: Context) -> list[Any]:
    return [ctx.random().randint(1, 10**9), str(ctx.uuid()), ctx.random() is ctx.random()]


def test_random_and_uuid_are_seeded_by_the_invocation_id() -> None:
    first = output(invoke("Lab/dice"))
    assert first == output(invoke("Lab/dice"))
    assert first != output(invoke("Lab/dice", invocation_id="inv_other"))
    assert uuid.UUID(first[1]).version == 4
    assert first[2] is True


@lab.handler()
async def clock(ctx: Context) -> float:
    return ctx.time()


def test_time_is_journaled_as_a_run_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_invocation, "_wall_clock", lambda: 1234.5)
    answer = invoke("Lab/clock", durability="step")
    assert answer["status"] == "done"  # no checkpoint forced for ctx.time
    assert answer["entries"][0] == {"kind": "run", "name": "ctx.time", "value": 1234.5}
    replay = invoke("Lab/clock", journal=[{"kind": "run", "name": "ctx.time", "value": 99.0}])
    assert output(replay) == 99.0


# -- state -----------------------------------------------------------------------------------


@box.handler()
async def everything(ctx: Context) -> list[Any]:
    missing = await ctx.get("missing")
    fallback = await ctx.get("missing", "default")
    ctx.set("a", {"nested": [1, 2]})
    ctx.set("b", 2)
    ctx.clear("b")
    keys = await ctx.state_keys()
    a = await ctx.get("a")
    a["nested"].append(3)  # mutating what get returned changes nothing journaled
    again = await ctx.get("a")
    ctx.clear_all()
    return [missing, fallback, keys, again, await ctx.state_keys(), ctx.key]


def test_state_reads_see_this_attempts_writes() -> None:
    answer = invoke("Box/everything", key="k1", state={"old": True})
    assert output(answer) == [None, "default", ["a", "old"], {"nested": [1, 2]}, [], "k1"]
    kinds = [e["kind"] for e in answer["entries"]]
    assert kinds == [
        "get",
        "get",
        "set",
        "set",
        "clear",
        "keys",
        "get",
        "get",
        "clear_all",
        "keys",
        "output",
    ]
    assert answer["entries"][6]["value"] == {"nested": [1, 2]}


@lab.handler()
async def stateful_service(ctx: Context) -> Any:
    return await ctx.get("k")


@shelf.handler(kind="shared")
async def sneaky(ctx: Context) -> None:
    ctx.set("count", 0)


def test_services_have_no_state_and_shared_handlers_only_read() -> None:
    service = output(invoke("Lab/stateful_service"))
    assert service["code"] == 500 and "VirtualObject" in service["message"]
    shared = output(invoke("Shelf/sneaky", key="a", state={"count": 1}))
    assert shared["code"] == 500 and "shared" in shared["message"]
    assert output(invoke("Counter/peek", key="a", state={"count": 3})) == 3
