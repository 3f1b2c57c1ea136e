"""A cluster of orchestrators on one DynamoDB table (moto's serialized server over real HTTP on
loopback), without crashes: what the cluster must get right when orchestrators join, leave and
register deployments (issue 23).
"""

from __future__ import annotations

import shutil
import time
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.integration._soak import soak
from tests.procs import ROOT, Endpoint, Orchestrator, http, moto_process, store_init, wait_until

APPS = ROOT / "tests" / "apps"


@pytest.fixture
def moto(tmp_path: Path) -> Iterator[dict[str, str]]:
    with moto_process(tmp_path) as env:
        yield env


def _orchestrators(
    tmp_path: Path, url: str, moto: dict[str, str], names: list[str], **env: str
) -> list[Orchestrator]:
    orchs = []
    for name in names:
        home = tmp_path / name
        home.mkdir()
        orchs.append(Orchestrator(home, store=url, RITORNELLO_NODE_ID=name, **moto, **env).start())
    return orchs


@pytest.mark.timeout(120)
def test_a_deployment_registered_through_one_orchestrator_is_found_at_once_by_another(
    tmp_path: Path, moto: dict[str, str]
) -> None:
    """Register through A, then 20 concurrent calls to B at once: every one is served. A miss
    on an unknown service waits for a refresh of the deployments that started after it, one
    shared by all the requests missing meanwhile, before it may answer 404 (it used to answer
    404 to most of them: a refresh ran at most every 0.5 s and misses did not wait for it)."""
    url = "dynamodb://ritornello-registration?region=us-east-1&partitions=4"
    store_init(url, moto)
    endpoint = Endpoint(
        tmp_path, APPS, "crashapp", RITORNELLO_TEST_LEDGER=str(tmp_path / "ledger.txt")
    ).start()
    a, b = _orchestrators(tmp_path, url, moto, ["a", "b"])
    try:
        # B has read the (empty) deployments and answers 404 for the service, as it should
        status, body, _ = http("POST", f"{b.ingress}/restate/call/Adder/add", [1, 2])
        assert status == 404, body
        status, body, _ = http("POST", f"{a.admin}/deployments", {"uri": endpoint.uri})
        assert status == 201, body

        def call(n: int) -> tuple[int, object]:
            status, body, _ = http("POST", f"{b.ingress}/restate/call/Adder/add", [n, 1])
            return status, body

        with ThreadPoolExecutor(20) as pool:
            results = list(pool.map(call, range(20)))
        assert results == [(200, n + 1) for n in range(20)], results
    finally:
        for orch in (a, b):
            orch.kill9()
        endpoint.terminate()


N = 30
STEPS = 10


def _cluster(orch: Orchestrator) -> dict[str, Any]:
    status, body, _ = http("GET", f"{orch.admin}/cluster")
    assert status == 200, body
    return body  # type: ignore[no-any-return]


def _executions(ledger: Path) -> dict[tuple[str, str], int]:
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for line in ledger.read_text().splitlines():
        inv, step, _ = line.split()
        counts[(inv, step)] += 1
    return counts


@pytest.mark.timeout(240)
def test_partitions_change_hands_on_a_join_and_a_sigterm_without_running_a_step_twice(
    tmp_path: Path, moto: dict[str, str]
) -> None:
    """Three orchestrators, thirty ten-step invocations (steps, calls to another service,
    sleeps, object state): a third orchestrator joins while they run (the two others hand it
    partitions), then one is stopped with SIGTERM (it hands all of its over). No crash
    anywhere, so every journaled step ran exactly once and every call's side effect too: a
    partition handed over drains first (the attempts in flight answer and commit; none starts),
    and only then is its lease released (it used to cancel every driver of the partition at
    once, and a step that had run but was not committed ran again on the new leader)."""
    url = "dynamodb://ritornello-handover?region=us-east-1&partitions=8"
    store_init(url, moto)
    ledger = tmp_path / "ledger.txt"
    endpoint = Endpoint(tmp_path, APPS, "crashapp", RITORNELLO_TEST_LEDGER=str(ledger)).start()
    env = {"RITORNELLO_LEASE_S": "2", "RITORNELLO_INBOX_INTERVAL_S": "0.05"}
    orchs = _orchestrators(tmp_path, url, moto, ["o0", "o1"], **env)
    try:
        status, body, _ = http("POST", f"{orchs[0].admin}/deployments", {"uri": endpoint.uri})
        assert status == 201, body
        wait_until(
            lambda: sum(len(_cluster(o)["leading"]) for o in orchs) == 8, 20, "8 partitions led"
        )
        ids = []
        for i in range(N):
            orch = orchs[i % 2]
            status, body, _ = http(
                "POST",
                f"{orch.ingress}/restate/send/Worker/w{i}/slow_work",
                {"steps": STEPS, "step_ms": 150},
            )
            assert status == 202, body
            ids.append(body["invocationId"])
        time.sleep(1.0)
        joined = _orchestrators(tmp_path, url, moto, ["o2"], **env)[0]
        orchs.append(joined)
        wait_until(lambda: len(_cluster(joined)["leading"]) >= 2, 30, "o2 takes partitions")
        leaving = orchs[1]
        assert leaving.terminate(timeout=60) == 0, leaving.output()
        survivors = [orchs[0], joined]
        wait_until(
            lambda: sum(len(_cluster(o)["leading"]) for o in survivors) == 8,
            30,
            "the survivors lead all 8 partitions",
        )

        def attach(inv_id: str) -> tuple[int, object]:
            status, body, _ = http("GET", f"{joined.ingress}/restate/attach/{inv_id}", timeout=90)
            return status, body

        with ThreadPoolExecutor(N) as pool:
            results = list(pool.map(attach, ids))
        expected = {"total": sum(range(STEPS)), "progress": STEPS}
        assert results == [(200, expected)] * N, results
        counts = _executions(ledger)
        twice = {k: n for k, n in counts.items() if n != 1}
        if twice:
            keep = Path("/tmp") / f"cluster-failure-{int(time.time())}"
            shutil.copytree(tmp_path, keep, ignore_dangling_symlinks=True)
            warnings = [
                f"{o.log.parent.name}: {line}"
                for o in orchs
                for line in o.log.read_text(errors="replace").splitlines()
                if "WARNING" in line or "ERROR" in line
            ]
            pytest.fail(f"ran more than once: {twice}; logs kept in {keep}\n" + "\n".join(warnings))
        assert sum(1 for inv, _ in counts if inv in ids) == N * STEPS
        assert sum(1 for _, step in counts if step == "add") == N * STEPS
    finally:
        for orch in orchs:
            orch.kill9()
        endpoint.terminate()


@pytest.mark.timeout(240)
def test_leases_keep_time_under_load(tmp_path: Path) -> None:
    """Three orchestrators at full load (wrk on every ingress; moto, serializing every
    request, is the bottleneck): no lease lapses, renewal rounds keep their schedule, and what
    each orchestrator measured is reported (``make lease-soak`` runs this for ten minutes)."""
    result = soak(tmp_path, seconds=20)
    print(f"{result['calls']} calls in {result['seconds']} s")
    for node in result["nodes"]:
        print({k: node[k] for k in node if k != "requests"})
        assert node["lapses"] == 0, node
        assert node["rounds"] >= 10, node  # a round every third of the 5 s lease period
        assert node["late_max_ms"] < 500, node  # the loop did not starve the schedule
        assert node["margin_min_ms"] is not None and node["margin_min_ms"] > 0, node
