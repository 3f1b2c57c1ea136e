"""An endpoint speaking Restate's protocol badly (``apps/bad_app.py``, a real uvicorn process):
each bad answer — garbage, truncated frames, a frame declaring 4 GiB, an unknown message type,
a malformed payload, a non-JSON output, messages after the end, an HTTP 500 — is a failed
attempt whose ``last_failure`` says what was wrong; nothing of it is stored, the attempt is
retried with backoff, and the orchestrator goes on serving."""

from __future__ import annotations

from pathlib import Path

from tests.procs import Endpoint, Orchestrator, http, wait_until
from tests.restate.conftest import APPS

EXPECTED = {
    "garbage": "unknown message type",
    "truncated": "truncated",
    "no_end": "without End",
    "huge_length": "declares",
    "unknown_type": "unknown message type",
    "not_json_output": "not JSON",
    "bad_payload": "malformed",
    "after_end": "after the end",
    "status_500": "HTTP 500",
}


def test_bad_answers_are_clear_failed_attempts(tmp_path: Path) -> None:
    bad = Endpoint(tmp_path, APPS, "bad_app").start()
    orch = Orchestrator(tmp_path).start()
    try:
        status, body, _ = http("POST", f"{orch.admin}/deployments", {"uri": bad.uri})
        assert status == 201, body
        sent = {}
        for how in EXPECTED:
            status, body, _ = http("POST", f"{orch.ingress}/Bad/{how}/send")
            assert status == 202, body
            sent[how] = body["invocationId"]

        def failure(inv: str) -> str:
            return str(http("GET", f"{orch.admin}/invocations/{inv}")[1].get("last_failure"))

        for how, inv in sent.items():
            wait_until(lambda inv=inv: failure(inv) != "None", 20, f"{how} failed")
            text = failure(inv)
            assert EXPECTED[how] in text, (how, text)
            record = http("GET", f"{orch.admin}/invocations/{inv}")[1]
            assert record["status"] in ("backing-off", "running"), record
            assert [e["kind"] for e in record["journal"]] == ["input"], (how, record["journal"])
        status, _, _ = http("GET", f"{orch.admin}/health")
        assert status == 200
        assert orch.proc is not None and orch.proc.poll() is None
    finally:
        orch.terminate()
        bad.terminate()
