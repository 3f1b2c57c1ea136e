"""What every workload shares: the options, the result row, the stacks it starts, the wrk phase.

A workload module has ``NAME`` and ``run(opts) -> list[Row]``: one row per (label, client
count, run). ``benchmarks/run.py`` takes medians over the runs and prints the table.

Each workload starts its own processes (fresh SQLite file, fresh endpoint) and stops them by
PID, so CPU and peak RSS belong to that workload alone. A wrk phase runs one client count on a
started stack: a warm-up run (not recorded), then ``opts.runs`` measured runs; around each run
the CPU seconds of every process tree are read from /proc (and the whole machine's busy time:
what is not ours was taken by other processes, ``extra["others_cores"]``, in cores over the
window), and after the last run each tree's peak RSS (VmHWM). Client counts run in order 1
then 64, so the 1-client row's peak RSS is its own and the 64-client row's is the peak over both.
"""

from __future__ import annotations

import contextlib
import math
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import _wrk
from benchmarks._procs import (
    ROOT,
    Endpoint,
    Orchestrator,
    http,
    machine_busy_s,
    peak_rss_mb,
    tree_cpu_s,
)

CLIENTS = (1, 64)


@dataclass
class Options:
    duration_s: float = 10.0
    warmup_s: float = 2.0
    runs: int = 3
    sleepers: int = 100_000
    sleep_ms: int = 60_000
    recovery: int = 1_000
    step_ms: int = 50
    synchronous: str = "FULL"
    results: Path = ROOT / "benchmarks" / "results" / "adhoc"
    notes: list[str] = field(default_factory=list)  # printed under the table
    #: the ``src`` directory whose ``ritornello`` the orchestrator and endpoint import (first on
    #: their PYTHONPATH); None: whatever the venv imports (its editable install)
    src: Path | None = None

    def code_env(self) -> dict[str, str]:
        """Environment for the processes under test: ``src`` first on PYTHONPATH, if set."""
        return {} if self.src is None else {"PYTHONPATH": str(self.src)}

    def save(self, name: str, text: str) -> None:
        """Keep one raw output under the results directory."""
        self.results.mkdir(parents=True, exist_ok=True)
        (self.results / name).write_text(text)


@dataclass
class Row:
    """One measured run. Latencies in ms; ``cpu`` in CPU seconds per process role
    (orchestrator, endpoint, loadgen) over the measured window; ``rss`` peak MiB per role;
    ``extra`` holds a workload's own figures (lateness, recovery times, ...)."""

    workload: str
    clients: int
    rps: float = math.nan
    p50: float = math.nan
    p90: float = math.nan
    p99: float = math.nan
    cpu: dict[str, float] = field(default_factory=dict)
    rss: dict[str, float] = field(default_factory=dict)
    extra: dict[str, float] = field(default_factory=dict)
    errors: int = 0


@contextlib.contextmanager
def tempdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="ritornello-bench-") as name:
        yield Path(name)


@contextlib.contextmanager
def orchestrator_stack(opts: Options, tmp: Path) -> Iterator[tuple[Orchestrator, Endpoint]]:
    """``ritornello serve`` (SQLite at ``tmp``) and benchmarks/app.py under uvicorn, registered;
    both import ritornello from ``opts.src`` when it is set. Both are stopped on the way out,
    even when starting one fails or is interrupted (Ctrl-C while waiting for its port)."""
    env = opts.code_env()
    endpoint = Endpoint(tmp, ROOT / "benchmarks", "app", **env)
    orch = Orchestrator(tmp, RITORNELLO_SQLITE_SYNCHRONOUS=opts.synchronous, **env)
    try:
        endpoint.start()
        orch.start()
        status, body, _ = http("POST", f"{orch.admin}/deployments", {"uri": endpoint.uri})
        if status != 201:
            raise RuntimeError(f"registering the endpoint failed: {status} {body}")
        yield orch, endpoint
    finally:
        orch.terminate()
        endpoint.terminate()


def pid_of(proc: object) -> int:
    popen = getattr(proc, "proc", None)
    if popen is None:
        raise RuntimeError("process not started")
    return int(popen.pid)


def wrk_phase(
    opts: Options,
    label: str,
    url: str,
    script: str,
    pids: dict[str, int],
    tmp: Path,
) -> list[Row]:
    """Warm-up plus ``opts.runs`` wrk runs at each client count; one row per run."""
    lua = tmp / f"{label}.lua"
    lua.write_text(script)
    rows: list[Row] = []
    for clients in CLIENTS:
        if opts.warmup_s > 0:
            _wrk.run(url, clients, opts.warmup_s, lua)
        phase: list[Row] = []
        for n in range(opts.runs):
            before = {role: tree_cpu_s(pid) for role, pid in pids.items()}
            busy, started = machine_busy_s(), time.monotonic()
            result = _wrk.run(url, clients, opts.duration_s, lua)
            busy, window = machine_busy_s() - busy, time.monotonic() - started
            after = {role: tree_cpu_s(pid) for role, pid in pids.items()}
            opts.save(f"{label}-c{clients}-run{n}.wrk.txt", result.raw)
            cpu = {role: after[role] - before[role] for role in pids}
            cpu["loadgen"] = result.cpu_s
            others = max(0.0, busy - sum(cpu.values())) / window
            if not result.requests:
                opts.notes.append(f"{label}, {clients} clients: no request finished within the run")
            phase.append(
                Row(
                    workload=label,
                    clients=clients,
                    rps=result.rps,
                    p50=result.p50,
                    p90=result.p90,
                    p99=result.p99,
                    cpu=cpu,
                    extra={"requests": result.requests, "others_cores": others},
                    errors=result.non2xx + result.socket_errors,
                )
            )
        peaks = {role: peak_rss_mb(pid) for role, pid in pids.items()}
        for row in phase:
            row.rss = dict(peaks)
        rows.extend(phase)
    return rows


def wrk_against_serve(opts: Options, name: str, path: str, lua: str) -> list[Row]:
    """The wrk workloads (greet, ten, counter): ``ritornello serve`` on SQLite with
    benchmarks/app.py under uvicorn, wrk at 1 and 64 clients against ``path`` on the ingress
    (``""`` when the Lua script builds each request's path)."""
    with tempdir() as tmp, orchestrator_stack(opts, tmp) as (orch, endpoint):
        pids = {"orchestrator": pid_of(orch), "endpoint": pid_of(endpoint)}
        return wrk_phase(opts, name, f"{orch.ingress}{path}", lua, pids, tmp)
