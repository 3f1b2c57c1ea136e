"""Awakeables in the SDK (a journaled, unguessable id; suspension until completed; no step
runs before a fresh id is persisted) and step retries (``step_retry``)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from ritornello import Context, Endpoint, RetryPolicy, Service, TerminalError, step_retry
from ritornello.protocol import parse_awakeable_id
from tests.sdk._driver import Driver

svc = Service("Awake")
sent: list[str] = []


@svc.handler()
async def wait(ctx: Context) -> Any:
    aid, fut = ctx.awakeable()
    await ctx.run("publish", sent.append, aid)
    try:
        return await fut
    except TerminalError as exc:
        return f"rejected: {exc.message}"


@svc.handler()
async def resolve_other(ctx: Context, aid: str) -> None:
    ctx.resolve_awakeable(aid, {"ok": True})
    ctx.reject_awakeable(aid, "second")


ID = "inv_aaaaaaaaaaaaaaaaaaaaaaaaaa"


def _invoke(handler: str, journal: list[Any], completions: list[Any] | None = None) -> Any:
    request = {
        "version": 1,
        "type": "invoke",
        "id": ID,
        "service": "Awake",
        "handler": handler,
        "key": None,
        "attempt": 1,
        "journal": journal,
        "completions": completions or [],
        "state": None,
    }
    ep = Endpoint([svc]).inprocess()
    return json.loads(asyncio.run(ep.invoke(json.dumps(request).encode())))


def test_awakeable_id_is_persisted_before_any_step_and_replayed() -> None:
    sent.clear()
    journal: list[Any] = [{"kind": "input", "value": None}]
    first = _invoke("wait", journal)
    # The fresh id must be committed before the step that publishes it runs.
    assert first["status"] == "checkpoint" and sent == []
    (entry,) = first["entries"]
    assert entry["kind"] == "awakeable"
    assert parse_awakeable_id(entry["id"]) == (ID, 1)
    journal += first["entries"]
    second = _invoke("wait", journal)
    assert second["status"] == "suspended" and second["waiting"] == [1]
    assert sent == [entry["id"]]  # the journaled id, not a new one
    journal += second["entries"]
    done = _invoke("wait", journal, [{"index": 1, "value": "approved"}])
    assert done["entries"][-1] == {"kind": "output", "value": "approved"}
    failed = _invoke("wait", journal, [{"index": 1, "failure": {"code": 500, "message": "no"}}])
    assert failed["entries"][-1] == {"kind": "output", "value": "rejected: no"}


def test_resolve_and_reject_are_journaled_and_bad_ids_refused() -> None:
    aid = f"sign_{'b' * 26}_3_{'c' * 26}"
    answer = _invoke("resolve_other", [{"kind": "input", "value": aid}])
    assert answer["entries"][:2] == [
        {"kind": "complete_awakeable", "name": "", "id": aid, "value": {"ok": True}},
        {
            "kind": "complete_awakeable",
            "name": "",
            "id": aid,
            "failure": {"code": 500, "message": "second"},
        },
    ]
    bad = _invoke("resolve_other", [{"kind": "input", "value": "sign_forged"}])
    assert bad["entries"][-1]["failure"]["code"] == 400


flaky_calls: list[int] = []


@step_retry(RetryPolicy(max_attempts=3, initial_interval_ms=1))
def flaky_step(fail_times: int) -> str:
    flaky_calls.append(1)
    if len(flaky_calls) <= fail_times:
        raise ConnectionError("try again")
    return "ok"


@svc.handler()
async def retried(ctx: Context, fail_times: int) -> str:
    try:
        return await ctx.run("flaky", flaky_step, fail_times)
    except TerminalError as exc:
        return f"gave up: {exc.message}"


def test_step_retry_retries_after_durable_timers_then_fails_terminally() -> None:
    driver = Driver(Endpoint([svc]).inprocess())
    flaky_calls.clear()
    ok = asyncio.run(driver.run("Awake/retried", 2))
    assert [e["kind"] for e in ok.journal] == ["input", "sleep", "sleep", "run", "output"]
    assert [e["retry"]["attempt"] for e in ok.journal[1:3]] == [1, 2]
    assert ok.journal[1]["retry"]["error"] == "ConnectionError: try again"
    assert ok.journal[3] == {"kind": "run", "name": "flaky", "value": "ok"}
    assert len(flaky_calls) == 3
    flaky_calls.clear()
    spent = asyncio.run(driver.run("Awake/retried", 5, invocation_id=ID))
    failure = spent.journal[3]["failure"]
    assert failure["code"] == 500
    assert "failed after 3 attempt(s): ConnectionError: try again" in failure["message"]
    assert spent.output["value"].startswith("gave up: step 'flaky' failed after 3 attempt(s)")
    assert len(flaky_calls) == 3
    with pytest.raises(ValueError):
        step_retry(RetryPolicy())
