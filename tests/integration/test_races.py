"""Races from outside (docs/orchestrator.md, "Races from outside"): N requests fired at the
same moment at real ``ritornello serve`` processes, on a SQLite file and on DynamoDB (moto's
server over HTTP, two orchestrators sharing the table, the requests spread over both). Each
race has exactly one winner; every loser is told so (409, or 404 for a delete), and what the
winner wrote is what stays:

- N resolves of one awakeable: one 202, N-1 409; the handler returns the winner's value;
- N sends with one idempotency key: one invocation;
- N kills of one invocation: one 200, N-1 409;
- N state writes expecting one version: one 200, the rest 409 (503 from a non-leader);
- N pauses of one schedule: one 200, N-1 409; then N deletes: one 200, N-1 404;
- N resolutions of one workflow promise (calls of a shared handler): one 200, N-1 409; the
  workflow returns the winner's value.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.procs import ROOT, Endpoint, Orchestrator, http, orchestrators, store_init

APPS = ROOT / "tests" / "apps"
N = 20

Outcome = tuple[int, Any]


def race(n: int, request: Callable[[int], tuple[int, Any, dict[str, str]]]) -> list[Outcome]:
    """``request(i)`` for i in 0..n-1, each on its own thread, released at once."""
    barrier = threading.Barrier(n)

    def one(i: int) -> Outcome:
        barrier.wait()
        status, body, _ = request(i)
        return status, body

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def statuses(outcomes: list[Outcome]) -> Counter[int]:
    return Counter(status for status, _ in outcomes)


def winner(outcomes: list[Outcome], status: int) -> int:
    (found,) = [i for i, (s, _) in enumerate(outcomes) if s == status]
    return found


def _answer(orch: Orchestrator, path: str, what: str) -> Any:
    """The first non-empty 200 answer of ``POST path`` at ``orch``'s ingress, polled."""
    for _ in range(500):
        status, body, _ = http("POST", f"{orch.ingress}{path}")
        if status == 200 and body is not None:
            return body
        time.sleep(0.02)
    raise AssertionError(f"{orch.ingress}: {what}")


def _published(orch: Orchestrator, key: str) -> str:
    return str(_answer(orch, f"/restate/call/Approval/{key}/pending", "no awakeable published"))


def races(orchs: list[Orchestrator]) -> None:
    """Every race of the module docstring, the requests spread over ``orchs``."""
    first = orchs[0]

    def ingress(i: int) -> str:
        return orchs[i % len(orchs)].ingress

    def admin(i: int) -> str:
        return orchs[i % len(orchs)].admin

    for orch in orchs:  # each knows the deployments (another's is found on a miss, lazily)
        _answer(orch, "/restate/call/Flow/warm/peek", "never found the workflow's deployment")

    # N resolves of one awakeable (three times: a race lost by chance proves nothing)
    send = f"{first.ingress}/restate/send/Approval"
    for key in ("race0", "race1", "race2"):
        waiting = http("POST", f"{send}/{key}/request", key)[1]["invocationId"]
        aid = _published(first, key)
        outcomes = race(
            N,
            lambda i, aid=aid: http(
                "POST", f"{ingress(i)}/restate/awakeables/{aid}/resolve", f"v{i}"
            ),
        )
        assert statuses(outcomes) == {202: 1, 409: N - 1}, outcomes
        won = winner(outcomes, 202)
        for status, body in outcomes:
            # a loser that arrives after the winner's value let the handler finish is told
            # that its invocation is completed: a 409 all the same
            lost = ("already completed", "its invocation is completed")
            assert status == 202 or any(why in body["message"] for why in lost), body
        status, body, _ = http("GET", f"{first.ingress}/restate/attach/{waiting}", timeout=30)
        assert (status, body) == (200, f"{key}: v{won}")

    # N sends with one idempotency key: one invocation
    outcomes = race(
        N,
        lambda i: http(
            "POST",
            f"{ingress(i)}/restate/send/Approval/idem/pending",
            headers={"idempotency-key": "k1"},
        ),
    )
    assert statuses(outcomes) == {202: N}, outcomes
    assert len({body["invocationId"] for _, body in outcomes}) == 1, outcomes

    # N kills of one invocation
    doomed = http("POST", f"{send}/doomed/request", "doomed")[1]["invocationId"]
    _published(first, "doomed")
    outcomes = race(N, lambda i: http("PATCH", f"{admin(i)}/invocations/{doomed}/kill"))
    assert statuses(outcomes) == {200: 1, 409: N - 1}, outcomes

    # N state writes expecting one version
    status, body, _ = http("GET", f"{first.admin}/services/Approval/state/st")
    assert status == 200, body
    version = body["version"]
    outcomes = race(
        N,
        lambda i: http(
            "POST",
            f"{admin(i)}/services/Approval/state",
            {"object_key": "st", "new_state": {"n": i}, "version": version},
        ),
    )
    counted = statuses(outcomes)
    assert counted[200] == 1 and counted[409] + counted[503] == N - 1, outcomes
    won = winner(outcomes, 200)
    assert http("GET", f"{first.admin}/services/Approval/state/st")[1]["state"] == {"n": won}

    # N pauses, then N deletes, of one schedule
    status, body, _ = http(
        "POST",
        f"{first.admin}/schedules",
        {"cron": "0 0 1 1 *", "target": "Approval/pending", "key": "s"},
    )
    assert status == 201, body
    sid = body["id"]
    outcomes = race(N, lambda i: http("PATCH", f"{admin(i)}/schedules/{sid}/pause"))
    assert statuses(outcomes) == {200: 1, 409: N - 1}, outcomes
    outcomes = race(N, lambda i: http("DELETE", f"{admin(i)}/schedules/{sid}"))
    assert statuses(outcomes) == {200: 1, 404: N - 1}, outcomes

    # N resolutions of one workflow promise
    run = http("POST", f"{first.ingress}/restate/send/Flow/race/run", 0)[1]["invocationId"]
    outcomes = race(
        N, lambda i: http("POST", f"{ingress(i)}/restate/call/Flow/race/resolve", f"v{i}")
    )
    assert statuses(outcomes) == {200: 1, 409: N - 1}, outcomes
    won = winner(outcomes, 200)
    for status, body in outcomes:
        assert status == 200 or "already completed" in body["message"], body
    status, body, _ = http("GET", f"{first.ingress}/restate/attach/{run}", timeout=30)
    assert (status, body) == (200, f"got v{won}")


def _register(orch: Orchestrator, *endpoints: Endpoint) -> None:
    for endpoint in endpoints:
        status, body, _ = http("POST", f"{orch.admin}/deployments", {"uri": endpoint.uri})
        assert status == 201, body


def _endpoints(tmp: Path) -> list[Endpoint]:
    return [Endpoint(tmp, APPS, name).start() for name in ("awakeapp", "wfapp")]


@pytest.mark.timeout(180)
def test_races_on_sqlite(tmp_path: Path) -> None:
    endpoints = _endpoints(tmp_path)
    orch = Orchestrator(tmp_path).start()
    try:
        _register(orch, *endpoints)
        races([orch])
    finally:
        orch.terminate()
        for endpoint in endpoints:
            endpoint.terminate()


@pytest.mark.timeout(240)
def test_races_on_dynamodb_with_two_orchestrators(tmp_path: Path, moto: dict[str, str]) -> None:
    url = "dynamodb://ritornello-races?region=us-east-1&partitions=4"
    store_init(url, moto)
    endpoints = _endpoints(tmp_path)
    orchs: list[Orchestrator] = []
    try:
        orchs = orchestrators(tmp_path, url, moto, ["o0", "o1"], RITORNELLO_INBOX_INTERVAL_S="0.05")
        _register(orchs[0], *endpoints)
        races(orchs)
    finally:
        for orch in orchs:
            orch.terminate()
        for endpoint in endpoints:
            endpoint.terminate()
