"""Run options in the SDK: retries after durable timers journaled at the step's position,
exhaustion by count and by duration as a catchable TerminalError, backoff growth, typed
results, and handles' ids (driven to the end by the test driver)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from ritornello import Context, Endpoint, Service, TerminalError
from ritornello.sdk import _invocation
from tests.sdk._driver import Driver

svc = Service("Opts")
attempts: Counter[str] = Counter()


def _flaky(token: str, fail: int) -> str:
    attempts[token] += 1
    if attempts[token] <= fail:
        raise ConnectionError(f"down {attempts[token]}")
    return f"up after {attempts[token]}"


@svc.handler()
async def counted(ctx: Context, spec: dict[str, Any]) -> str:
    try:
        return await ctx.run(
            "call api",
            _flaky,
            spec["token"],
            spec["fail"],
            max_attempts=spec.get("max_attempts"),
            max_retry_duration=spec.get("max_retry_duration"),
            initial_retry_interval=timedelta(milliseconds=100),
            retry_interval_factor=3,
            max_retry_interval=timedelta(seconds=1),
        )
    except TerminalError as exc:
        return f"gave up ({exc.status_code}): {exc.message}"


@dataclasses.dataclass
class Price:
    amount: Decimal
    at: datetime


def _quote() -> Price:
    return Price(Decimal("12.30"), datetime(2026, 12, 5, tzinfo=UTC))


@svc.handler()
async def typed(ctx: Context) -> list[Any]:
    price = await ctx.run("quote", _quote)
    again = await ctx.run("quote raw", _quote, type_hint=dict)
    return [type(price).__name__, str(price.amount), price.at.isoformat(), sorted(again)]


def _run(target: str, value: Any = None) -> Any:
    return asyncio.run(Driver(Endpoint([svc]).inprocess()).run(f"Opts/{target}", value))


def test_a_step_retries_after_durable_timers_with_growing_backoff() -> None:
    attempts.clear()
    done = _run("counted", {"token": "a", "fail": 3, "max_attempts": 5})
    assert done.output["value"] == "up after 4"
    timers = [e for e in done.journal if e["kind"] == "sleep"]
    assert [t["duration_ms"] for t in timers] == [100, 300, 900]
    assert [t["retry"]["attempt"] for t in timers] == [1, 2, 3]
    assert len({t["retry"]["since"] for t in timers}) == 1  # the first attempt's start
    assert timers[2]["retry"]["error"] == "ConnectionError: down 3"
    assert done.statuses == ["suspended", "suspended", "suspended", "done"]


def test_exhausted_by_count_the_handler_catches_a_terminal_error() -> None:
    attempts.clear()
    done = _run("counted", {"token": "b", "fail": 10, "max_attempts": 3})
    assert attempts["b"] == 3
    assert done.output["value"] == (
        "gave up (500): step 'call api' failed after 3 attempt(s): ConnectionError: down 3"
    )
    kinds = [e["kind"] for e in done.journal]
    assert kinds == ["input", "sleep", "sleep", "run", "output"]


def test_exhausted_by_duration_when_the_next_attempt_would_start_too_late(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    attempts.clear()
    clock = iter(range(1_000, 100_000, 250))  # each reading 0.25 s later
    monkeypatch.setattr(_invocation, "_wall_clock", lambda: next(clock) / 1000)
    done = _run("counted", {"token": "c", "fail": 10, "max_retry_duration": 1.0})
    assert done.output["value"].startswith("gave up (500): step 'call api' failed after")
    timers = [e for e in done.journal if e["kind"] == "sleep"]
    assert timers and all(t["retry"]["since"] == timers[0]["retry"]["since"] for t in timers)
    assert attempts["c"] == len(timers) + 1 < 10


def test_bad_options_are_refused_before_anything_runs() -> None:
    attempts.clear()
    with pytest.raises(AssertionError, match="max_attempts must be a whole number"):
        _run("counted", {"token": "d", "fail": 0, "max_attempts": 0})
    assert attempts["d"] == 0


def test_a_step_result_is_typed_by_its_annotation_and_the_same_on_replay() -> None:
    done = _run("typed")
    assert done.output["value"] == ["Price", "12.30", "2026-12-05T00:00:00+00:00", ["amount", "at"]]
    assert done.journal[1]["value"] == {"amount": "12.30", "at": "2026-12-05T00:00:00+00:00"}
