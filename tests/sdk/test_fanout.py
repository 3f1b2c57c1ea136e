"""Fan-out in the SDK: ``ctx.map``/``ctx.parallel``/``ctx.child`` (child contexts, completion
policies, parking), ``wait`` and ``as_completed``, ``ctx.logger`` — driven to the end by the
test driver (every sleep completes once the handler suspends on it; calls run the callee)."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest

from ritornello import (
    FIRST_COMPLETED,
    FIRST_ERROR,
    BatchResult,
    Context,
    Endpoint,
    Service,
    TerminalError,
    as_completed,
    wait,
)
from ritornello.protocol import InvokeRequest, InvokeResponse
from tests.sdk._driver import Driver

svc = Service("Fan")
runs: Counter[str] = Counter()


async def double(ctx: Context, n: int) -> int:
    value = await ctx.run(f"double {n}", lambda: n * 2)
    if n % 7 == 3:
        raise TerminalError(f"{n} is unlucky", status_code=422)
    return value


@svc.handler()
async def mapped(ctx: Context, spec: dict[str, Any]) -> dict[str, Any]:
    result = await ctx.map(
        "double",
        range(spec["n"]),
        double,
        max_concurrency=spec.get("max_concurrency"),
        min_successful=spec.get("min_successful"),
        tolerated_failures=spec.get("tolerated_failures"),
    )
    return {
        "reason": result.reason,
        "values": result.values(),
        "statuses": [i.status for i in result.items],
        "failed": [(i.index, i.error.status_code) for i in result.failed() if i.error],
    }


async def napper(ctx: Context, n: int) -> int:
    await ctx.sleep(timedelta(seconds=n))  # parks the branch until the driver completes it
    runs[f"woke {n}"] += 1
    return n


@svc.handler()
async def naps(ctx: Context, n: int) -> list[int]:
    result: BatchResult[int] = await ctx.map("naps", range(n), napper)
    return result.values()


async def left(ctx: Context) -> str:
    return await ctx.run("left", lambda: "L")


async def right(ctx: Context) -> str:
    await ctx.sleep(0.01)
    return await ctx.run("right", lambda: "R")


@svc.handler()
async def both(ctx: Context) -> list[str]:
    async def inner(c: Context) -> str:
        return await c.run("inner", lambda: "child-result")

    child = ctx.child("solo", inner)
    result = await ctx.parallel("pair", left, right)
    return [*result.values(), await child]


@svc.handler()
async def waits(ctx: Context) -> list[Any]:
    fast = ctx.run("fast", lambda: "fast")
    slow = ctx.sleep(1)
    done, pending = await wait(fast, slow, return_when=FIRST_COMPLETED)
    bad = ctx.run("bad", _fail)
    done2, pending2 = await wait(bad, ctx.sleep(5), return_when=FIRST_ERROR)
    order = [await f for f in [x async for x in as_completed(ctx.sleep(2), fast)]]
    return [len(done), len(pending), len(done2), len(pending2), order]


def _fail() -> None:
    raise TerminalError("no")


@svc.handler()
async def logs(ctx: Context) -> str:
    ctx.logger.info("before the step")
    await ctx.run("step", lambda: None)
    await ctx.sleep(0.01)
    ctx.logger.info("after the sleep")
    return "ok"


def _run(target: str, value: Any = None, endpoint: Any = None) -> Any:
    driver = Driver(endpoint or Endpoint([svc]).inprocess())
    return asyncio.run(driver.run(f"Fan/{target}", value))


def test_a_map_runs_every_item_in_its_own_context_and_reports_each() -> None:
    done = _run("mapped", {"n": 12, "max_concurrency": 4})
    out = done.output["value"]
    assert out["reason"] == "all_completed"
    assert out["values"] == [n * 2 for n in range(12) if n % 7 != 3]
    assert out["failed"] == [[3, 422], [10, 422]]
    branch_contexts = {e.get("ctx") for e in done.journal if e.get("ctx")}
    marker = next(e for e in done.journal if e.get("child") == "map")
    p = done.journal.index(marker)
    assert {f"{p}/{i}" for i in range(12)} <= branch_contexts
    outcome = [e for e in done.journal if e.get("ctx") == str(p)]
    assert len(outcome) == 1 and outcome[0]["value"]["reason"] == "all_completed"


def test_min_successful_ends_the_map_early_and_tolerance_ends_it_failed() -> None:
    early = _run("mapped", {"n": 20, "max_concurrency": 2, "min_successful": 3})
    out = early.output["value"]
    assert out["reason"] == "min_successful_reached" and len(out["values"]) >= 3
    assert "not_started" in out["statuses"]
    failing = _run("mapped", {"n": 20, "tolerated_failures": 0})
    assert failing.output["value"]["reason"] == "failure_tolerance_exceeded"


def test_parked_branches_suspend_together_in_one_answer() -> None:
    runs.clear()
    done = _run("naps", 5)
    assert done.output["value"] == [0, 1, 2, 3, 4]
    # every branch took its sleep in the first attempt: one suspension on all five
    assert done.statuses[0] == "suspended"
    first_sleeps = [e for e in done.journal if e["kind"] == "sleep"]
    assert len(first_sleeps) == 5
    assert all(runs[f"woke {n}"] >= 1 for n in range(5))


def test_parallel_and_child_contexts_replay_exactly_in_every_mode() -> None:
    for endpoint in (
        Endpoint([svc]).inprocess(),
        Endpoint([svc], durability="batch").inprocess(),
        Endpoint([svc], always_replay=True).inprocess(),
    ):
        done = _run("both", endpoint=endpoint)
        assert done.output["value"] == ["L", "R", "child-result"]
        assert next(e for e in done.journal if e.get("name") == "right")["value"] == "R"


def test_a_changed_branch_count_is_a_journal_mismatch() -> None:
    done = _run("mapped", {"n": 3})
    journal = done.journal[:-1]  # all but the output: replay it with four items
    request = InvokeRequest(
        id="inv_driver00000000000000000000",
        service="Fan",
        handler="mapped",
        key=None,
        attempt=2,
        journal=[{"kind": "input", "value": {"n": 4}}, *journal[1:]],
        completions=[],
        state=None,
    )
    answer = InvokeResponse.decode(
        asyncio.run(Endpoint([svc]).inprocess().invoke(request.encode()))
    )
    assert answer.status == "error" and answer.error is not None
    assert answer.error["kind"] == "journal_mismatch"
    assert "had 3 branches" in answer.error["message"]


def test_wait_and_as_completed_decide_from_the_journal() -> None:
    done = _run("waits")
    assert done.output["value"] == [1, 1, 1, 1, ["fast", None]]
    kinds = [e["name"] for e in done.journal if e["kind"] == "run"]
    assert kinds.count("wait") == 2 and kinds.count("as_completed") == 2


def test_the_logger_drops_lines_logged_during_replay(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="ritornello.handler"):
        done = _run("logs")
    assert done.statuses[-1] == "done" and "suspended" in done.statuses
    mine = [r for r in caplog.records if r.name == "ritornello.handler.Fan"]
    assert [r.getMessage() for r in mine] == ["before the step", "after the sleep"]
    assert all(getattr(r, "invocation_id", "").startswith("inv_") for r in mine)
    assert [getattr(r, "target", None) for r in mine] == ["Fan/logs", "Fan/logs"]
