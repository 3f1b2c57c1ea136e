"""``ritornello dev APP.py``: the orchestrator and the app's endpoint in one process."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.procs import ROOT, Proc, free_port, http, wait_port


def test_dev_serves_the_examples_in_process(tmp_path: Path) -> None:
    ingress, admin = free_port(), free_port()
    proc = Proc(
        [
            sys.executable,
            "-m",
            "ritornello",
            "dev",
            str(ROOT / "examples" / "app.py"),
            "--store",
            f"sqlite:///{tmp_path / 'dev.db'}",
            "--ingress-port",
            str(ingress),
            "--admin-port",
            str(admin),
        ],
        tmp_path / "dev.log",
    ).start()
    try:
        wait_port(admin, proc.proc)
        wait_port(ingress, proc.proc)
        base = f"http://127.0.0.1:{ingress}"
        assert http("POST", f"{base}/restate/call/Greeter/greet", "Dev")[:2] == (200, "Hello, Dev!")
        status, body, _ = http(
            "POST", f"{base}/restate/call/Checkout/place_order", {"items": ["apple"]}
        )
        assert status == 200 and body["total"] == 50
        (dep,) = http("GET", f"http://127.0.0.1:{admin}/deployments")[1]["deployments"]
        assert dep["uri"] == "inproc://app"
        assert proc.terminate() == 0, proc.output()
        assert "serving Greeter" in proc.output()
    finally:
        proc.kill9()


def test_dev_reports_a_missing_file(tmp_path: Path) -> None:
    proc = Proc(
        [sys.executable, "-m", "ritornello", "dev", str(tmp_path / "nope.py")], tmp_path / "x.log"
    ).start()
    assert proc.proc is not None
    assert proc.proc.wait(30) != 0
    assert "no such file" in proc.output()
