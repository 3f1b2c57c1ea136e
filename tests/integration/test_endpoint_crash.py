"""kill -9 of the handler endpoint mid-invocation: the failed attempts count against the retry
budget (visible as the attempt number and last failure), and the invocation finishes once the
endpoint is back, with every journaled step kept."""

from __future__ import annotations

import time
from pathlib import Path

from tests.procs import ROOT, Endpoint, Orchestrator, http

APPS = ROOT / "tests" / "apps"


def test_endpoint_crash_counts_as_failed_attempts(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.txt"
    endpoint = Endpoint(tmp_path, APPS, "crashapp", RITORNELLO_TEST_LEDGER=str(ledger)).start()
    orch = Orchestrator(tmp_path).start()
    try:
        http("POST", f"{orch.admin}/deployments", {"uri": endpoint.uri})
        inv = http("POST", f"{orch.ingress}/restate/send/Worker/ec/work", 8)[1]["invocationId"]
        time.sleep(0.3)
        endpoint.kill9()
        info: dict[str, object] = {}
        for _ in range(200):
            info = http("GET", f"{orch.admin}/invocations/{inv}")[1]
            if int(str(info["attempt"])) >= 3:
                break
            time.sleep(0.02)
        assert int(str(info["attempt"])) >= 3, info
        assert "transport" in str(info["last_failure"]), info
        endpoint.start()  # same port
        status, body, _ = http("GET", f"{orch.ingress}/restate/attach/{inv}", timeout=60)
        assert (status, body) == (200, {"total": 28, "progress": 8})
        steps = [
            line.split()[1] for line in ledger.read_text().splitlines() if line.startswith(inv)
        ]
        assert sorted(set(steps)) == sorted(f"step-{i}" for i in range(8))
    finally:
        orch.kill9()
        endpoint.terminate()
