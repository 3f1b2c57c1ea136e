"""Which HTTP a Restate SDK endpoint is reached over: hypercorn serving both HTTP/1.1 and h2c
(its default) is discovered over HTTP/1.1, then over HTTP/2, and invoked BIDI_STREAM there — a
ten-step handler runs in one exchange; registered again with ``use_http_11`` (Restate's field),
the same endpoint is invoked request/response over HTTP/1.1 — one request per step."""

from __future__ import annotations

from pathlib import Path

from tests.procs import Orchestrator, http
from tests.restate.conftest import py_app


def test_bidi_over_http2_when_served_and_http11_when_asked(tmp_path: Path) -> None:
    with py_app(tmp_path, both=True) as app:
        orch = Orchestrator(tmp_path).start()
        try:
            status, dep, _ = http("POST", f"{orch.admin}/deployments", {"uri": app.url})
            assert status == 201, dep
            status, body, _ = http("POST", f"{orch.ingress}/Greeter/ten/send", "bidi")
            inv = body["invocationId"]
            url = f"{orch.ingress}/restate/invocation/{inv}/attach"
            assert http("GET", url)[:2] == (200, 10)
            assert app.attempts(inv) == 1

            body = {"uri": app.url, "use_http_11": True}
            status, again, _ = http("POST", f"{orch.admin}/deployments", body)
            assert status == 201 and again["id"] == dep["id"], again
            status, body, _ = http("POST", f"{orch.ingress}/Greeter/ten/send", "rr")
            inv = body["invocationId"]
            url = f"{orch.ingress}/restate/invocation/{inv}/attach"
            assert http("GET", url)[:2] == (200, 10)
            assert app.attempts(inv) == 11  # the first, then one replay after each step
            assert app.step_counts(inv) == {f"step-{i}": 1 for i in range(10)}
        finally:
            orch.terminate()
