"""Delayed sends (from the ingress and from a handler) survive kill -9 of the orchestrator and
fire exactly once, never early."""

from __future__ import annotations

import time
from pathlib import Path

from tests.procs import ROOT, Endpoint, Orchestrator, http

APPS = ROOT / "tests" / "apps"


def test_delayed_sends_survive_a_restart_and_fire_once(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.txt"
    endpoint = Endpoint(tmp_path, APPS, "crashapp", RITORNELLO_TEST_LEDGER=str(ledger)).start()
    orch = Orchestrator(tmp_path).start()
    try:
        http("POST", f"{orch.admin}/deployments", {"uri": endpoint.uri})
        start = time.monotonic()
        status, body, _ = http(
            "POST", f"{orch.ingress}/restate/send/Adder/add?delay=1500ms", [2, 3]
        )
        assert status == 202
        from_ingress = body["invocationId"]
        status, from_handler, _ = http("POST", f"{orch.ingress}/restate/call/Adder/schedule", 5)
        assert status == 200 and from_handler.startswith("inv_")
        assert http("GET", f"{orch.admin}/invocations/{from_ingress}")[1]["status"] == "scheduled"
        time.sleep(0.3)
        orch.kill9()
        orch.start()
        status, result, _ = http("GET", f"{orch.ingress}/restate/attach/{from_ingress}", timeout=30)
        assert (status, result) == (200, 5)
        assert time.monotonic() - start >= 1.5  # never early
        status, result, _ = http("GET", f"{orch.ingress}/restate/attach/{from_handler}", timeout=30)
        assert (status, result) == (200, 10)
        time.sleep(0.5)
        lines = [line.split()[0] for line in ledger.read_text().splitlines()]
        assert lines.count(from_ingress) == 1 and lines.count(from_handler) == 1
    finally:
        orch.kill9()
        endpoint.terminate()
