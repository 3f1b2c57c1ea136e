"""Shared pieces of the chaos suite: the ledger, journals, clients that retry through kills."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.procs import ROOT, Orchestrator, http

APPS = ROOT / "tests" / "apps"


@dataclass(frozen=True)
class Execution:
    token: str
    time_ns: int


def read_ledger(ledger: Path) -> dict[tuple[str, str], list[Execution]]:
    """(invocation, step) -> every execution of that step's side effect, in order."""
    executions: dict[tuple[str, str], list[Execution]] = defaultdict(list)
    if not ledger.exists():
        return executions
    for line in ledger.read_text().splitlines():
        inv, step, token, t = line.split()
        executions[(inv, step)].append(Execution(token, int(t)))
    return executions


def journal(orch: Orchestrator, inv_id: str) -> list[dict[str, Any]]:
    status, body, _ = retrying("GET", f"{orch.admin}/invocations/{inv_id}")
    assert status == 200, body
    return body["journal"]  # type: ignore[no-any-return]


def retrying(
    method: str,
    url: str,
    body: Any = None,
    *,
    headers: dict[str, str] | None = None,
    timeout: float = 30,
    within_s: float = 120,
) -> tuple[int, Any, dict[str, str]]:
    """``http`` that retries connection errors and 503s (an orchestrator being killed or
    restarted): safe for reads, and for writes that carry an idempotency key."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            status, payload, rh = http(method, url, body, headers=headers, timeout=timeout)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
            continue
        if status == 503 and time.monotonic() < deadline:
            time.sleep(0.05)
            continue
        return status, payload, rh


def check_command_available() -> bool:
    """Whether ``python -m ritornello check`` exists (it is being added separately)."""
    out = subprocess.run(
        [sys.executable, "-m", "ritornello", "check", "--help"],
        capture_output=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    return out.returncode == 0


def run_check(db: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "ritornello",
            "check",
            "--store",
            f"sqlite:///{db}?readonly=1",
            "--expect-terminal",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        check=False,
    )
