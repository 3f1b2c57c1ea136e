"""The benchmark suite runs end to end (``benchmarks/run.py --quick``) on two cheap workloads.

Real processes on loopback: ``ritornello serve`` with SQLite, the benchmark endpoint and the
bare proxy under uvicorn, driven by wrk. Only the shape is checked (every row has numbers, no
request failed, raw output kept); timings are never asserted. Skipped when wrk is not installed
(``make bench`` installs it: ``apt-get install wrk``).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_quick_suite_prints_a_table_with_numbers(tmp_path: Path) -> None:
    if shutil.which("wrk") is None:
        why = "wrk is not installed (make install installs it: apt-get install wrk)"
        if os.environ.get("CI"):
            pytest.fail(f"{why}; CI must have it")
        pytest.skip(why)
    results = tmp_path / "results"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "run.py"),
            "--quick",
            "--workloads",
            "greet,proxy",
            "--results",
            str(results),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    table = done.stdout

    # One table row per workload and client count, with a number in every latency column.
    for workload in ("greet", "proxy"):
        for clients in (1, 64):
            line = next(
                (ln for ln in table.splitlines() if ln.split()[:2] == [workload, str(clients)]),
                None,
            )
            assert line is not None, f"no {workload} row at {clients} clients:\n{table}"
            cells = line.split()
            assert all(c != "-" for c in cells[2:6]), line
    assert "greet / proxy req/s" in table
    assert "target (issue 8)" in table and "QUICK MODE" in table

    # The raw output is kept: the printed table, every run's numbers, every wrk report.
    assert (results / "table.txt").read_text().strip() == table.strip()
    rows = json.loads((results / "rows.json").read_text())
    assert sorted((r["workload"], r["clients"]) for r in rows) == [
        ("greet", 1),
        ("greet", 64),
        ("proxy", 1),
        ("proxy", 64),
    ]
    for row in rows:
        assert row["rps"] > 0 and row["errors"] == 0, row
        assert not math.isnan(row["p99"]), row
        assert set(row["cpu"]) == {"orchestrator", "endpoint", "loadgen"}, row
        assert row["rss"]["orchestrator"] > 0 and row["rss"]["endpoint"] > 0, row
    reports = sorted(p.name for p in results.glob("*.wrk.txt"))
    assert len(reports) == 4 and all("Requests/sec" in (results / n).read_text() for n in reports)
