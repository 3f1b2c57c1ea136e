"""Cron schedules across orchestrator crashes: a real ``ritornello serve`` on SQLite, killed
with SIGKILL and restarted. A schedule keeps firing on its grid after the restart, every fire
time is accounted for (fired, skipped or counted as missed by catch-up), and no fire time ever
creates two invocations — also when the process dies between creating a fire's invocation and
recording it (crash point ``after-fire``)."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.procs import ROOT, Endpoint, Orchestrator, check_store, http, wait_until

APPS = ROOT / "tests" / "apps"


def _schedule(orch: Orchestrator, schedule_id: str) -> dict[str, Any]:
    status, body, _ = http("GET", f"{orch.admin}/schedules/{schedule_id}")
    assert status == 200, body
    return dict(body)


def _fired(orch: Orchestrator, schedule_id: str) -> list[dict[str, Any]]:
    """Every invocation of the schedule's target, checked to carry its idempotency key."""
    status, body, _ = http("GET", f"{orch.admin}/invocations?service=Tick&limit=1000")
    assert status == 200, body
    found = body["invocations"]
    prefix = f"schedule:{schedule_id}:"
    assert all(str(i["idempotency_key"]).startswith(prefix) for i in found), found
    return list(found)


def _fire_ms(invocation: dict[str, Any]) -> int:
    return int(str(invocation["idempotency_key"]).rsplit(":", 1)[1])


def _pause_and_settle(
    orch: Orchestrator, schedule_id: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Pause the schedule, then wait for a fire that was under way to be recorded: (the
    schedule, its invocations) once they agree."""
    status, body, _ = http("PATCH", f"{orch.admin}/schedules/{schedule_id}/pause")
    assert status == 200, body
    seen: list[Any] = []

    def settled() -> bool:
        seen[:] = [_schedule(orch, schedule_id), _fired(orch, schedule_id)]
        return bool(seen[0]["fires"] == len(seen[1]))

    wait_until(settled, 10, "every invocation of the schedule counted as a fire")
    return seen[0], seen[1]


def _check(orch: Orchestrator) -> str:
    """``ritornello check`` over the orchestrator's SQLite file (read-only): it must be clean,
    schedule rules included."""
    return check_store(orch.store, timeout=60)


def _start(tmp: Path, **env: str) -> tuple[Endpoint, Orchestrator]:
    endpoint = Endpoint(tmp, APPS, "scheduleapp").start()
    orch = Orchestrator(tmp, **env).start()
    status, body, _ = http("POST", f"{orch.admin}/deployments", {"uri": endpoint.uri})
    assert status == 201, body
    return endpoint, orch


@pytest.mark.timeout(120)
def test_a_schedule_survives_kill9_without_firing_twice(tmp_path: Path) -> None:
    endpoint, orch = _start(tmp_path)
    try:
        body = {"cron": "*/2 * * * * *", "target": "Tick/beat", "input": "t", "overlap": "allow"}
        status, created, _ = http("POST", f"{orch.admin}/schedules", body)
        assert status == 201, created
        sid = created["id"]
        wait_until(lambda: _schedule(orch, sid)["fires"] >= 2, 30, "two fires before the kill")
        orch.kill9()
        killed_at = time.time() * 1000
        time.sleep(5)  # at least two fire times pass with no orchestrator
        orch.start()
        before = _schedule(orch, sid)["fires"]
        wait_until(lambda: _schedule(orch, sid)["fires"] >= before + 3, 30, "fires after restart")
        final, fired = _pause_and_settle(orch, sid)

        times = sorted(_fire_ms(i) for i in fired)
        assert max(Counter(times).values()) == 1, times  # never twice
        assert all(t % 2000 == 0 for t in times), times  # on the cron grid
        assert all(i["created_at"] >= _fire_ms(i) for i in fired)  # never early
        assert len(fired) == final["fires"]  # every invocation is a counted fire
        # Every grid point from creation to the last fire was fired, skipped or missed:
        grid = range(created["created_at"] // 2000 + 1, final["last_fire_at"] // 2000 + 1)
        assert final["fires"] + final["skipped"] + final["missed"] == len(grid), final
        assert final["missed"] >= 1, final  # the downtime was noticed and counted, not hidden
        assert any(t > killed_at for t in times)  # it went on firing after the restart
        for inv in fired:
            done = http("GET", f"{orch.ingress}/restate/attach/{inv['id']}", timeout=60)
            assert done[:2] == (200, {"label": "t", "id": inv["id"]}), done
    finally:
        orch.terminate()
        endpoint.terminate()


@pytest.mark.timeout(120)
def test_a_crash_between_a_fire_and_its_record_does_not_fire_twice(tmp_path: Path) -> None:
    endpoint, orch = _start(tmp_path, RITORNELLO_CRASH_AT="after-fire:1")
    again = Orchestrator(tmp_path)  # the same database, no crash point
    try:
        body = {"cron": "*/10 * * * * *", "target": "Tick/beat", "input": "c"}
        status, created, _ = http("POST", f"{orch.admin}/schedules", body)
        assert status == 201, created
        sid = created["id"]
        assert orch.proc is not None
        assert orch.proc.wait(timeout=30) == 137  # died right after its first fire
        # its invocation exists, the schedule never recorded it: a state the checker accepts
        assert "1 schedules checked" in _check(orch)
        again.start()
        wait_until(lambda: _schedule(again, sid)["fires"] >= 2, 40, "two fires after restart")
        final, fired = _pause_and_settle(again, sid)
        times = sorted(_fire_ms(i) for i in fired)
        assert max(Counter(times).values()) == 1, times
        assert len(fired) == final["fires"], (fired, final)
        first = min(fired, key=_fire_ms)
        assert first["created_at"] < _fire_ms(first) + 10_000  # created by the crashed process
        assert (
            "its invocation existed" in again.log.read_text()
        )  # the restart found, not re-fired, it
        _check(again)
    finally:
        again.terminate()
        orch.terminate()
        endpoint.terminate()


@pytest.mark.timeout(60)
def test_an_orchestrator_with_schedule_interval_0_fires_nothing(tmp_path: Path) -> None:
    """``RITORNELLO_SCHEDULE_INTERVAL_S=0`` (say, an orchestrator kept for ingress only)
    stores schedules but fires none of them; one with the default fires the same schedule."""
    endpoint, orch = _start(tmp_path, RITORNELLO_SCHEDULE_INTERVAL_S="0")
    try:
        body = {"cron": "* * * * * *", "target": "Tick/beat", "input": "t", "overlap": "allow"}
        status, created, _ = http("POST", f"{orch.admin}/schedules", body)
        assert status == 201, created
        time.sleep(2.5)
        assert _schedule(orch, created["id"])["fires"] == 0
        assert _fired(orch, created["id"]) == []
        orch.kill9()
        orch.env.pop("RITORNELLO_SCHEDULE_INTERVAL_S", None)
        orch.start()
        wait_until(lambda: _schedule(orch, created["id"])["fires"] >= 1, 20, "a fire")
    finally:
        orch.kill9()
        endpoint.terminate()
