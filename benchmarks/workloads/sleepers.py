"""``sleepers``: N invocations sent with ``/restate/send`` that each sleep on a durable timer.

1. ``benchmarks/_submit.py`` sends ``POST /restate/send/Bench/sleeper`` ``{"sleep_ms": S}`` N
   times, 64 at a time: submit rate and latency (the row's req/s and percentiles).
2. Right after the last 202, and again just before the first timer is due, the orchestrator's
   RSS (VmRSS) is read; the larger is "RSS while they sleep". The row's peak RSS is VmHWM at the
   end (it includes the wake-up burst).
3. Once every invocation has completed (read from the SQLite file, read-only), the lateness of
   each timer is ``woke - wake_at``: ``wake_at`` is the time the orchestrator stamped on the
   sleep entry when it committed it (Unix ms, its clock: when the timer was due), ``woke`` the
   time the handler journaled in the ``ctx.run`` right after the sleep returned (same machine,
   same clock). It covers firing the timer, committing the completion, invoking the endpoint,
   replaying the journal, up to the handler's next line. The handler also journals the wake
   time it expected before sleeping (``expected``); ``woke - expected`` is reported beside it
   (it adds the time from the step to the sleep entry's commit).

If submitting takes longer than the sleep, the first timers fire while others are still being
sent; a note says so, and another gives the lateness of the timers due before the last send.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import time
from pathlib import Path

from benchmarks._procs import peak_rss_mb, rss_mb, run_measured, tree_cpu_s
from benchmarks.workloads._common import Options, Row, orchestrator_stack, pid_of, tempdir

NAME = "sleepers"
CONCURRENCY = 64


def submit(url: str, count: int, body: dict[str, object], timeout: float) -> dict[str, float]:
    """Run the fixed-count load generator; its JSON summary plus ``cpu_s`` (its own CPU)."""
    args = [sys.executable, "-m", "benchmarks._submit", url, str(count), str(CONCURRENCY)]
    out, _, cpu = run_measured([*args, json.dumps(body)], timeout=timeout)
    result: dict[str, float] = json.loads(out)
    result["cpu_s"] = cpu
    return result


def open_ro(db: Path) -> sqlite3.Connection:
    """A read-only connection beside the running orchestrator (WAL: it sees every commit)."""
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)


def _count_done(db: Path, handler: str) -> int:
    with open_ro(db) as conn:
        row = conn.execute(
            "SELECT count(*) FROM invocations WHERE service='Bench' AND handler=? "
            "AND status='completed'",
            (handler,),
        ).fetchone()
    return int(row[0])


def lateness(
    db: Path, sent_until_ms: float = float("inf")
) -> tuple[list[float], list[float], list[float]]:
    """(woke - wake_at, woke - expected, woke - wake_at of only the timers due before
    ``sent_until_ms``), each sorted, in ms for every completed sleeper, from the journal:
    index 1 is the ``expected`` run, 2 the sleep, 3 the ``woke`` run."""
    entries: dict[str, dict[int, dict[str, object]]] = {}
    with open_ro(db) as conn:
        for inv, idx, text in conn.execute(
            "SELECT j.invocation_id, j.idx, j.entry FROM journal j JOIN invocations i "
            "ON i.id = j.invocation_id WHERE i.handler='sleeper' AND j.idx IN (1, 2, 3)"
        ):
            entries.setdefault(inv, {})[idx] = json.loads(text)
    vs_timer, vs_expected, while_sending = [], [], []
    for journal in entries.values():
        if len(journal) < 3:
            continue
        woke = float(journal[3]["value"])  # type: ignore[arg-type]
        wake_at = float(journal[2]["wake_at"])  # type: ignore[arg-type]
        vs_timer.append(woke - wake_at)
        vs_expected.append(woke - float(journal[1]["value"]))  # type: ignore[arg-type]
        if wake_at < sent_until_ms:
            while_sending.append(woke - wake_at)
    return sorted(vs_timer), sorted(vs_expected), sorted(while_sending)


def pct(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def _one(opts: Options, n: int) -> Row:
    with tempdir() as tmp, orchestrator_stack(opts, tmp) as (orch, endpoint):
        pids = {"orchestrator": pid_of(orch), "endpoint": pid_of(endpoint)}
        db = tmp / "ritornello.db"
        before = {role: tree_cpu_s(pid) for role, pid in pids.items()}
        started = time.monotonic()
        sent = submit(
            f"{orch.ingress}/restate/send/Bench/sleeper",
            opts.sleepers,
            {"sleep_ms": opts.sleep_ms},
            timeout=3600,
        )
        sent_until_ms = time.time() * 1000  # the orchestrator's clock: same machine
        after = {role: tree_cpu_s(pid) for role, pid in pids.items()}
        rss_sleeping = rss_mb(pids["orchestrator"])
        submit_s = time.monotonic() - started
        overlap = submit_s * 1000 > opts.sleep_ms
        if overlap:
            opts.notes.append(
                f"sleepers: submitting took {submit_s:.1f} s, longer than the sleep "
                f"({opts.sleep_ms} ms): early timers fired while others were still sent"
            )
        else:  # read RSS again just before the first timers are due
            time.sleep(max(0.0, opts.sleep_ms / 1000 - submit_s - 0.5))
            rss_sleeping = max(rss_sleeping, rss_mb(pids["orchestrator"]))
        deadline = time.monotonic() + opts.sleep_ms / 1000 + 120 + opts.sleepers / 200
        done = 0
        while time.monotonic() < deadline:
            done = _count_done(db, "sleeper")
            if done >= sent["ok"]:
                break
            time.sleep(0.5)
        if done < sent["ok"]:
            opts.notes.append(f"sleepers run {n}: only {done} of {sent['ok']:.0f} completed")
        late, late_expected, late_sending = lateness(db, sent_until_ms)
        if overlap and late_sending:
            opts.notes.append(
                f"sleepers run {n}: {len(late_sending):,} of the timers were due while sends "
                f"still arrived: late p50/p99 {pct(late_sending, 0.5):,.1f}/"
                f"{pct(late_sending, 0.99):,.1f} ms"
            )
        opts.save(f"sleepers-run{n}.json", json.dumps({"submit": sent, "lateness_ms": late}))
        cpu = {role: after[role] - before[role] for role in pids}
        cpu["loadgen"] = sent["cpu_s"]
        return Row(
            workload=NAME,
            clients=CONCURRENCY,
            rps=sent["rate"],
            p50=sent["p50"],
            p90=sent["p90"],
            p99=sent["p99"],
            cpu=cpu,
            rss={role: peak_rss_mb(pid) for role, pid in pids.items()},
            extra={
                "submitted": sent["ok"],
                "sleep_ms": opts.sleep_ms,
                "rss_sleeping_mb": rss_sleeping,
                "late_p50": pct(late, 0.50),
                "late_p99": pct(late, 0.99),
                "late_max": late[-1] if late else float("nan"),
                "handler_late_p99": pct(late_expected, 0.99),
                "completed": done,
            },
            errors=int(sent["failed"]),
        )


def run(opts: Options) -> list[Row]:
    return [_one(opts, n) for n in range(opts.runs)]
