"""Kill, pause and resume through the admin API, over loopback."""

from __future__ import annotations

import time
from pathlib import Path

from tests.procs import ROOT, Endpoint, Orchestrator, http

APPS = ROOT / "tests" / "apps"


def test_kill_pause_resume_over_http(tmp_path: Path) -> None:
    endpoint = Endpoint(tmp_path, APPS, "crashapp").start()
    orch = Orchestrator(tmp_path).start()
    try:
        http("POST", f"{orch.admin}/deployments", {"uri": endpoint.uri})
        send = f"{orch.ingress}/restate/send/Worker"
        doomed = http("POST", f"{send}/k1/work", 50)[1]["invocationId"]
        paused = http("POST", f"{send}/k2/work", 4)[1]["invocationId"]
        time.sleep(0.2)
        status, body, _ = http("PATCH", f"{orch.admin}/invocations/{doomed}/kill")
        assert (status, body["status"]) == (200, "killed"), body
        status, body, _ = http("GET", f"{orch.ingress}/restate/attach/{doomed}")
        assert (status, body) == (409, {"message": "killed by an operator"})
        assert http("PATCH", f"{orch.admin}/invocations/{doomed}/kill")[0] == 409

        status, body, _ = http("PATCH", f"{orch.admin}/invocations/{paused}/pause")
        assert (status, body["status"]) == (200, "paused"), body
        time.sleep(0.5)
        assert http("GET", f"{orch.admin}/invocations/{paused}")[1]["status"] == "paused"
        assert http("GET", f"{orch.ingress}/restate/output/{paused}")[0] == 470
        status, body, _ = http("PATCH", f"{orch.admin}/invocations/{paused}/resume")
        assert (status, body["status"]) == (200, "running"), body
        status, body, _ = http("GET", f"{orch.ingress}/restate/attach/{paused}", timeout=30)
        assert (status, body) == (200, {"total": 6, "progress": 4})
        assert http("PATCH", f"{orch.admin}/invocations/inv_missing/pause")[0] == 404
    finally:
        orch.terminate()
        endpoint.terminate()


def test_retries_then_success_and_pause_after_the_budget(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.txt"
    endpoint = Endpoint(tmp_path, APPS, "crashapp", RITORNELLO_TEST_LEDGER=str(ledger)).start()
    orch = Orchestrator(tmp_path).start()
    try:
        http("POST", f"{orch.admin}/deployments", {"uri": endpoint.uri})
        status, body, _ = http("POST", f"{orch.ingress}/restate/call/Adder/flaky", 2)
        assert (status, body) == (200, "ok on attempt 3")
        inv = http("POST", f"{orch.ingress}/restate/send/Adder/flaky", 9)[1]["invocationId"]
        for _ in range(200):
            info = http("GET", f"{orch.admin}/invocations/{inv}")[1]
            if info["status"] == "paused":
                break
            time.sleep(0.02)
        assert info["status"] == "paused" and info["attempt"] == 3
        assert "attempt 3 failed" in info["last_failure"]
        Path(str(ledger) + ".fixed").touch()
        assert http("PATCH", f"{orch.admin}/invocations/{inv}/resume")[0] == 200
        status, body, _ = http("GET", f"{orch.ingress}/restate/attach/{inv}", timeout=30)
        assert (status, body) == (200, "ok on attempt 1")
    finally:
        orch.terminate()
        endpoint.terminate()
