"""kill -9 of the orchestrator while ten-step invocations with sleeps, calls and object state
are in flight: after restarts every invocation finishes with the right result, state is intact,
and no journaled step ran again (the committed execution of each step is its last one)."""

from __future__ import annotations

import random
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.procs import ROOT, Endpoint, Orchestrator, check_store, http

APPS = ROOT / "tests" / "apps"
N = 20
STEPS = 10


def _journal(orch: Orchestrator, inv_id: str) -> list[dict[str, object]]:
    status, body, _ = http("GET", f"{orch.admin}/invocations/{inv_id}")
    assert status == 200, body
    return body["journal"]  # type: ignore[no-any-return]


@pytest.mark.timeout(180)
def test_kill9_orchestrator_mid_flight(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.txt"
    endpoint = Endpoint(tmp_path, APPS, "crashapp", RITORNELLO_TEST_LEDGER=str(ledger)).start()
    orch = Orchestrator(tmp_path).start()
    try:
        status, body, _ = http("POST", f"{orch.admin}/deployments", {"uri": endpoint.uri})
        assert status == 201, body
        ids = []
        for i in range(N):
            status, body, headers = http(
                "POST", f"{orch.ingress}/restate/send/Worker/w{i}/work", STEPS
            )
            assert status == 202, body
            assert headers["x-restate-id"] == body["invocationId"]
            ids.append(body["invocationId"])

        rng = random.Random(7)
        kills = 0
        in_flight_at_kill = []
        for _ in range(3):
            time.sleep(rng.uniform(0.2, 0.8))
            _, done, _ = http("GET", f"{orch.admin}/invocations?service=Worker&status=completed")
            in_flight_at_kill.append(N - len(done["invocations"]))
            orch.kill9()
            kills += 1
            orch.start()

        assert in_flight_at_kill[0] > 0, in_flight_at_kill

        def attach(inv_id: str) -> tuple[int, object]:
            status, body, _ = http("GET", f"{orch.ingress}/restate/attach/{inv_id}", timeout=90)
            return status, body

        with ThreadPoolExecutor(N) as pool:
            results = list(pool.map(attach, ids))
        expected = {"total": sum(range(STEPS)), "progress": STEPS}
        assert results == [(200, expected)] * N, orch.output()

        # State intact, read through a shared handler.
        for i in range(N):
            status, body, _ = http("POST", f"{orch.ingress}/restate/call/Worker/w{i}/status")
            assert (status, body) == (200, {"progress": STEPS, "total": sum(range(STEPS))})

        executions: dict[tuple[str, str], list[str]] = defaultdict(list)
        for line in ledger.read_text().splitlines():
            inv, step, token = line.split()
            executions[(inv, step)].append(token)

        checked = 0
        for inv_id in ids:
            journal = _journal(orch, inv_id)
            callees = [e["id"] for e in journal if e["kind"] == "call"]
            assert len(callees) == STEPS
            runs = [e for e in journal if e["kind"] == "run"]
            assert [e["name"] for e in runs] == [f"step-{i}" for i in range(STEPS)]
            for entry in runs:
                tokens = executions[(inv_id, str(entry["name"]))]
                assert tokens, entry
                # The journaled execution is the last one: nothing re-ran once committed.
                assert tokens[-1] == entry["value"], (inv_id, entry, tokens)
                assert len(tokens) <= 1 + kills
                checked += 1
            for callee in callees:
                (run,) = [e for e in _journal(orch, str(callee)) if e["kind"] == "run"]
                tokens = executions[(str(callee), "add")]
                assert tokens[-1] == run["value"] and len(tokens) <= 1 + kills
                checked += 1
        assert checked == N * STEPS * 2
        reruns = sum(len(t) - 1 for t in executions.values())
        print(f"in flight at each kill: {in_flight_at_kill}")
        print(f"kills={kills} steps re-run after a crash (uncommitted)={reruns}")

        # The store's invariants hold after the last crash (the SQLite file is read read-only).
        orch.kill9()
        print(check_store(orch.store, "--expect-terminal"))
    finally:
        orch.kill9()
        endpoint.terminate()


@pytest.mark.timeout(120)
def test_sigterm_stops_cleanly_and_resumes(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.txt"
    endpoint = Endpoint(tmp_path, APPS, "crashapp", RITORNELLO_TEST_LEDGER=str(ledger)).start()
    orch = Orchestrator(tmp_path).start()
    try:
        http("POST", f"{orch.admin}/deployments", {"uri": endpoint.uri})
        ids = [
            http("POST", f"{orch.ingress}/restate/send/Worker/s{i}/work", 4)[1]["invocationId"]
            for i in range(5)
        ]
        with ThreadPoolExecutor(1) as pool:
            # A call still waiting for its result when SIGTERM arrives answers 503 at once,
            # with the invocation id to attach to after the restart.
            pending = pool.submit(http, "POST", f"{orch.ingress}/restate/call/Worker/long/work", 9)
            time.sleep(0.3)
            started = time.monotonic()
            assert orch.terminate() == 0, orch.output()
            assert time.monotonic() - started < 5
            status, body, headers = pending.result()
        assert status == 503 and "shutting down" in body["message"], body
        ids.append(headers["x-restate-id"])
        orch.start()
        for inv_id in ids:
            status, body, _ = http("GET", f"{orch.ingress}/restate/attach/{inv_id}", timeout=60)
            steps = 9 if inv_id == ids[-1] else 4
            assert (status, body) == (200, {"total": sum(range(steps)), "progress": steps})
    finally:
        orch.kill9()
        endpoint.terminate()


@pytest.mark.timeout(120)
def test_always_replay_endpoint_gives_the_same_results(tmp_path: Path) -> None:
    """Every handler re-run from its journal at each step (RITORNELLO_ALWAYS_REPLAY=1 in the
    endpoint's environment): same results, same state, each step's effect still journaled once."""
    ledger = tmp_path / "ledger.txt"
    endpoint = Endpoint(
        tmp_path,
        APPS,
        "crashapp",
        RITORNELLO_TEST_LEDGER=str(ledger),
        RITORNELLO_ALWAYS_REPLAY="1",
    ).start()
    orch = Orchestrator(tmp_path).start()
    try:
        http("POST", f"{orch.admin}/deployments", {"uri": endpoint.uri})
        status, body, headers = http(
            "POST", f"{orch.ingress}/restate/call/Worker/replayed/work", 6, timeout=60
        )
        assert (status, body) == (200, {"total": 15, "progress": 6})
        journal = _journal(orch, headers["x-restate-id"])
        assert len(journal) > 6 * 3
        lines = ledger.read_text().splitlines()
        # 6 steps plus 6 callee steps, each executed exactly once despite the replays.
        assert len(lines) == 12
    finally:
        orch.kill9()
        endpoint.terminate()
