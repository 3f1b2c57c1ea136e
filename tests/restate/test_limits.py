"""A Restate SDK endpoint under a named limit of its deployment's (``POST /deployments {"uri",
"limit"}``, issue 18): its handlers' invocations wait for a permit before their first attempt,
hold it while they run, over HTTP/2 (BIDI_STREAM) and HTTP/1.1 alike; the permit's completion
(index -2, the engine's own) never reaches the SDK, and every permit goes back."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.procs import Orchestrator, http
from tests.restate.conftest import py_app


@pytest.mark.parametrize("http_11", [False, True], ids=["h2", "http1.1"])
def test_a_restate_deployment_under_a_limit_of_its_own(tmp_path: Path, http_11: bool) -> None:
    with py_app(tmp_path, both=True) as app:
        orch = Orchestrator(tmp_path).start()
        try:
            status, body, _ = http("PUT", f"{orch.admin}/limits/restate-app", {"concurrency": 2})
            assert status == 201, body
            registration = {"uri": app.url, "limit": "restate-app", "use_http_11": http_11}
            status, dep, _ = http("POST", f"{orch.admin}/deployments", registration)
            assert status == 201, dep
            ids = []
            for i in range(6):
                status, body, _ = http("POST", f"{orch.ingress}/Greeter/ten/send", f"n{i}")
                assert status == 202, body
                ids.append(body["invocationId"])
            for inv in ids:
                url = f"{orch.ingress}/restate/invocation/{inv}/attach"
                assert http("GET", url, timeout=60)[:2] == (200, 10), orch.output()[-2000:]
                assert app.step_counts(inv) == {f"step-{i}": 1 for i in range(10)}
            status, limit, _ = http("GET", f"{orch.admin}/limits/restate-app")
            assert (limit["in_flight"], limit["waiting"]) == (0, 0), limit
            assert limit["granted_last_minute"] == 6, limit
            # at most two ran at once: their attempts' windows never overlap by three
            spans = []
            for inv in ids:
                journal = http("GET", f"{orch.admin}/invocations/{inv}")[1]["journal"]
                spans.append((journal[1]["at"], journal[-1]["at"]))
            for t in {start for start, _ in spans}:
                assert sum(1 for a, b in spans if a <= t < b) <= 2, spans
        finally:
            orch.terminate()
