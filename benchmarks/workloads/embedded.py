"""``embedded``: the ``ten`` workload with the in-process endpoint, beside DBOS 3.4 in the same run.

- ``embedded`` rows: ``ritornello dev benchmarks/app.py`` (orchestrator and endpoint in one
  process, SQLite), ``POST /restate/call/Bench/ten``.
- ``dbos`` rows: benchmarks/dbos_app.py (Starlette on uvicorn, DBOS with a SQLite system
  database) in its own venv, benchmarks/.venv-dbos, made here on first use with
  ``pip install dbos==3.4.*``; ``POST /ten`` runs a ten-step workflow.

Both get the same wrk phases, one after the other. If the DBOS venv cannot be made (no network,
pip refuses), the ``dbos`` rows are missing and a note in the report says why.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from benchmarks._procs import ROOT, DevServer, Proc, free_port, wait_port
from benchmarks._wrk import POST_LUA
from benchmarks.workloads._common import Options, Row, pid_of, tempdir, wrk_phase

NAME = "embedded"
DBOS_VENV = ROOT / "benchmarks" / ".venv-dbos"
DBOS_SPEC = "dbos==3.4.*"


def dbos_python() -> Path:
    """The DBOS venv's python, creating the venv and installing DBOS if needed. Raises
    RuntimeError with pip's own words when that fails."""
    python = DBOS_VENV / "bin" / "python"
    check = [str(python), "-c", "import dbos, uvicorn, starlette"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    steps = [
        [sys.executable, "-m", "venv", str(DBOS_VENV)],
        [str(python), "-m", "pip", "install", "-q", DBOS_SPEC, "uvicorn[standard]", "starlette"],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            raise RuntimeError(
                f"could not install {DBOS_SPEC} into {DBOS_VENV}: "
                + (done.stderr or done.stdout).strip()[-600:]
            )
    return python


def _dbos_rows(opts: Options, tmp: Path) -> list[Row]:
    python = dbos_python()
    version = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('dbos'))"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    opts.notes.append(f"embedded: DBOS {version} from {DBOS_VENV.relative_to(ROOT)}")
    port = free_port()
    app = Proc(
        [
            str(python),
            "-m",
            "uvicorn",
            "dbos_app:app",
            "--app-dir",
            str(ROOT / "benchmarks"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        tmp / "dbos.log",
        {"BENCH_DBOS_DB": f"sqlite:///{tmp / 'dbos.sqlite'}"},
    ).start()
    try:
        assert app.proc is not None
        wait_port(port, app.proc, timeout=60)
        pids = {"orchestrator": pid_of(app)}
        return wrk_phase(opts, "dbos", f"http://127.0.0.1:{port}/ten", POST_LUA, pids, tmp)
    finally:
        app.terminate()


def run(opts: Options) -> list[Row]:
    rows: list[Row] = []
    with tempdir() as tmp:
        dev = DevServer(
            tmp, ROOT / "benchmarks" / "app.py", RITORNELLO_SQLITE_SYNCHRONOUS=opts.synchronous
        )
        dev.start()
        try:
            pids = {"orchestrator": pid_of(dev)}
            url = f"{dev.ingress}/restate/call/Bench/ten"
            rows += wrk_phase(opts, NAME, url, POST_LUA, pids, tmp)
        finally:
            dev.terminate()
        try:
            rows += _dbos_rows(opts, tmp)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            opts.notes.append(f"embedded: DBOS NOT MEASURED: {exc}")
    return rows
