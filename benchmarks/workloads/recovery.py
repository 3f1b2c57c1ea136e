"""``recovery``: kill -9 the orchestrator with N ten-step invocations in flight, restart it.

1. N invocations of ``Bench/slow_ten`` (ten ``ctx.run`` steps of ``step_ms`` each) are sent with
   ``/restate/send`` (64 at a time); right after the last 202 the orchestrator gets SIGKILL.
   The endpoint keeps running.
2. From the SQLite file (read-only) the suite takes every invocation that is not completed:
   these are *in flight*, each with its journal length at the kill.
3. The orchestrator is started again on the same file; t0 is just before the process is spawned
   (so Python's start-up counts). The file is polled every 10 ms.
   - *running again*: every in-flight invocation has committed at least one journal entry more
     than it had at the kill (or has completed). A committed entry proves the invocation was
     re-driven: recovered from the store, invoked on the endpoint, and its answer committed.
   - *done*: every in-flight invocation is completed.
   Also reported: when the new process listened on its ingress port, when the first in-flight
   invocation moved, and the CPU seconds the new process had used when all were running again
   (a figure that a busy machine disturbs less than the times).

A step killed half-way runs again after the restart (its result was never committed), so
"running again" is at least one step long (``step_ms``), plus the wait for one of the invoker's
256 connections when more invocations than that are in flight.
"""

from __future__ import annotations

import math
import socket
import time
from pathlib import Path

from benchmarks._procs import Orchestrator, Proc, peak_rss_mb, tree_cpu_s
from benchmarks.workloads._common import Options, Row, orchestrator_stack, pid_of, tempdir
from benchmarks.workloads.sleepers import CONCURRENCY, open_ro, submit

NAME = "recovery"


def _journal_lens(db: Path) -> dict[str, tuple[int, str]]:
    """id -> (journal length, status) of every ``slow_ten`` invocation."""
    with open_ro(db) as conn:
        rows = conn.execute(
            "SELECT id, journal_len, status FROM invocations WHERE handler='slow_ten'"
        ).fetchall()
    return {inv: (int(n), status) for inv, n, status in rows}


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.05):
            return True
    except OSError:
        return False


def _one(opts: Options, n: int) -> Row:
    with tempdir() as tmp, orchestrator_stack(opts, tmp) as (orch, endpoint):
        db = tmp / "ritornello.db"
        sent = submit(
            f"{orch.ingress}/restate/send/Bench/slow_ten",
            opts.recovery,
            {"step_ms": opts.step_ms},
            timeout=600,
        )
        orch.kill9()
        at_kill = {
            inv: length
            for inv, (length, status) in _journal_lens(db).items()
            if status != "completed"
        }
        # The same ports and file: a restart of the same orchestrator.
        again = Orchestrator(tmp, RITORNELLO_SQLITE_SYNCHRONOUS=opts.synchronous, **opts.code_env())
        again.ingress_port, again.admin_port = orch.ingress_port, orch.admin_port
        i = again.args.index("--ingress-port")
        again.args[i + 1] = str(orch.ingress_port)
        again.args[i + 3] = str(orch.admin_port)
        endpoint_cpu = tree_cpu_s(pid_of(endpoint))
        t0 = time.monotonic()
        Proc.start(again)  # spawn only: the clock runs from here
        t_listen = t_first = t_running = t_done = cpu_running = float("nan")
        deadline = t0 + 120 + opts.recovery * opts.step_ms * 10 / 1000
        try:
            while time.monotonic() < deadline:
                now = time.monotonic()
                if math.isnan(t_listen) and _listening(orch.ingress_port):
                    t_listen = now - t0
                lens = _journal_lens(db)
                moved = [
                    inv
                    for inv, before in at_kill.items()
                    if lens[inv][1] == "completed" or lens[inv][0] > before
                ]
                if math.isnan(t_first) and moved:
                    t_first = now - t0
                if math.isnan(t_running) and len(moved) == len(at_kill):
                    t_running = now - t0
                    cpu_running = tree_cpu_s(pid_of(again))
                if all(lens[inv][1] == "completed" for inv in at_kill):
                    t_done = now - t0
                    break
                time.sleep(0.01)
            rss = {
                "orchestrator": peak_rss_mb(pid_of(again)),
                "endpoint": peak_rss_mb(pid_of(endpoint)),
            }
            cpu = {
                "orchestrator": tree_cpu_s(pid_of(again)),
                "endpoint": tree_cpu_s(pid_of(endpoint)) - endpoint_cpu,
                "loadgen": sent["cpu_s"],
            }
        finally:
            again.terminate()
        if math.isnan(t_done):
            opts.notes.append(f"recovery run {n}: not all in-flight invocations completed")
        return Row(
            workload=NAME,
            clients=CONCURRENCY,
            rps=sent["rate"],
            p50=sent["p50"],
            p90=sent["p90"],
            p99=sent["p99"],
            cpu=cpu,
            rss=rss,
            extra={
                "in_flight": len(at_kill),
                "step_ms": opts.step_ms,
                "t_listen_ms": t_listen * 1000,
                "t_first_ms": t_first * 1000,
                "cpu_running_s": cpu_running,
                "t_running_ms": t_running * 1000,
                "t_running_after_listen_ms": (t_running - t_listen) * 1000,
                "t_done_ms": t_done * 1000,
            },
            errors=int(sent["failed"]),
        )


def run(opts: Options) -> list[Row]:
    return [_one(opts, n) for n in range(opts.runs)]
