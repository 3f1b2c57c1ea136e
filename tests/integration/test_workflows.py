"""Workflows over loopback: once per id, promises resolved before or after the wait, shared
handlers beside the run, attach/output by workflow id, and kill -9 while waiting."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.procs import ROOT, Endpoint, Orchestrator, http

APPS = ROOT / "tests" / "apps"


@pytest.fixture()
def wf(tmp_path: Path) -> Iterator[Orchestrator]:
    endpoint = Endpoint(tmp_path, APPS, "wfapp").start()
    orch = Orchestrator(tmp_path).start()
    try:
        assert http("POST", f"{orch.admin}/deployments", {"uri": endpoint.uri})[0] == 201
        yield orch
    finally:
        orch.kill9()
        endpoint.terminate()


def _stage(orch: Orchestrator, wf_id: str, stage: str) -> None:
    for _ in range(300):
        body = http("POST", f"{orch.ingress}/restate/call/Flow/{wf_id}/peek")[1]
        if body["stage"] == stage:
            return
        time.sleep(0.02)
    raise AssertionError(f"{wf_id} never reached {stage}")


def test_promise_resolved_before_and_after_the_wait(wf: Orchestrator) -> None:
    base = f"{wf.ingress}/restate"
    early = http("POST", f"{base}/send/Flow/early/run", 600)[1]["invocationId"]
    # Resolved while the run still sleeps, before anyone waits on it.
    assert http("POST", f"{base}/call/Flow/early/resolve", "first")[:2] == (200, "resolved")
    assert http("POST", f"{base}/call/Flow/early/peek")[1]["promise"] == "first"
    late = http("POST", f"{base}/send/Flow/late/run", 0)[1]["invocationId"]
    _stage(wf, "late", "waiting")
    assert http("POST", f"{base}/call/Flow/late/peek")[1]["promise"] is None
    assert http("POST", f"{base}/call/Flow/late/resolve", "second")[:2] == (200, "resolved")
    assert http("GET", f"{base}/attach/{early}")[:2] == (200, "got first")
    assert http("GET", f"{base}/attach/{late}")[:2] == (200, "got second")
    assert http("GET", f"{base}/workflow/Flow/late/attach")[:2] == (200, "got second")
    assert http("GET", f"{base}/workflow/Flow/late/output")[:2] == (200, "got second")
    assert http("GET", f"{base}/workflow/Flow/nobody/output")[0] == 404
    # A promise completes once.
    status, body, _ = http("POST", f"{base}/call/Flow/late/resolve", "third")
    assert status == 409 and "already completed" in body["message"]


def test_a_workflow_runs_once_per_id(wf: Orchestrator) -> None:
    base = f"{wf.ingress}/restate"
    status, body, _ = http("POST", f"{base}/send/Flow/once/run", 0)
    assert (status, body["status"]) == (202, "Accepted")
    status, again, _ = http("POST", f"{base}/send/Flow/once/run", 5)
    assert (status, again["status"]) == (202, "PreviouslyAccepted")
    assert again["invocationId"] == body["invocationId"]
    http("POST", f"{base}/call/Flow/once/reject", "no thanks")
    # A second call attaches to the first run instead of starting another.
    assert http("POST", f"{base}/call/Flow/once/run", 0)[:2] == (200, "rejected: no thanks")
    # The legacy path form submits to the same run.
    assert http("POST", f"{wf.ingress}/Flow/once/run", 0)[:2] == (200, "rejected: no thanks")
    status, legacy, _ = http("POST", f"{wf.ingress}/Flow/fresh/run/send", 0)
    assert (status, legacy["status"]) == (202, "Accepted")
    # From a handler: a send starts it; a second call to the same id is refused.
    assert http("POST", f"{base}/call/Starter/start_twice", "from-handler")[:2] == (
        200,
        [True, 409],
    )


def test_waiting_on_promises_survives_kill9(wf: Orchestrator) -> None:
    base = f"{wf.ingress}/restate"
    ids = [http("POST", f"{base}/send/Flow/k{i}/run", 0)[1]["invocationId"] for i in range(5)]
    for i in range(5):
        _stage(wf, f"k{i}", "waiting")
    wf.kill9()
    wf.start()
    base = f"{wf.ingress}/restate"
    for i in range(5):
        assert http("POST", f"{base}/call/Flow/k{i}/resolve", f"v{i}")[:2] == (200, "resolved")
    for i, inv in enumerate(ids):
        assert http("GET", f"{base}/attach/{inv}", timeout=30)[:2] == (200, f"got v{i}")
