"""Medians over runs, the printed table, and the issue's targets beside the measured values.

Rows are keyed by (workload, clients). A figure a run does not have stays NaN and prints as
``-``; a target whose figure is missing is ``n/a``, never a pass.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass

from benchmarks.workloads._common import Options, Row

Key = tuple[str, int]

ROLES = ("orchestrator", "endpoint", "loadgen")


def _median(values: list[float]) -> float:
    real = [v for v in values if not math.isnan(v)]
    return statistics.median(real) if real else math.nan


def medians(rows: list[Row]) -> dict[Key, Row]:
    """One row per (workload, clients): the median of every figure over its runs (errors are
    summed, so a single failing run shows)."""
    groups: dict[Key, list[Row]] = {}
    for row in rows:
        groups.setdefault((row.workload, row.clients), []).append(row)
    out: dict[Key, Row] = {}
    for key, group in groups.items():

        def med(get: Callable[[Row], float], group: list[Row] = group) -> float:
            return _median([get(r) for r in group])

        def keys(attr: str, group: list[Row] = group) -> list[str]:
            return sorted({k for r in group for k in getattr(r, attr)})

        out[key] = Row(
            workload=key[0],
            clients=key[1],
            rps=med(lambda r: r.rps),
            p50=med(lambda r: r.p50),
            p90=med(lambda r: r.p90),
            p99=med(lambda r: r.p99),
            cpu={k: med(lambda r, k=k: r.cpu.get(k, math.nan)) for k in keys("cpu")},
            rss={k: med(lambda r, k=k: r.rss.get(k, math.nan)) for k in keys("rss")},
            extra={k: med(lambda r, k=k: r.extra.get(k, math.nan)) for k in keys("extra")},
            errors=sum(r.errors for r in group),
        )
        out[key].extra["runs"] = len(group)
    return out


def _f(value: float, digits: int = 1) -> str:
    if math.isnan(value):
        return "-"
    return f"{value:,.{digits}f}"


def _table(res: dict[Key, Row]) -> list[str]:
    head = (
        f"{'workload':<10} {'clients':>7} {'req/s':>9} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8}"
        f"  {'CPU s orch/endp/load':>22}  {'peak RSS MiB orch/endp':>22} {'errors':>6}"
    )
    lines = [head, "-" * len(head)]
    for (name, clients), r in res.items():
        cpu = "/".join(_f(r.cpu.get(k, math.nan), 2) for k in ROLES)
        rss = "/".join(_f(r.rss.get(k, math.nan), 0) for k in ROLES[:2])
        lines.append(
            f"{name:<10} {clients:>7} {_f(r.rps, 0):>9} {_f(r.p50, 2):>8} {_f(r.p90, 2):>8} "
            f"{_f(r.p99, 2):>8}  {cpu:>22}  {rss:>22} {r.errors:>6}"
        )
    return lines


def _details(res: dict[Key, Row]) -> list[str]:
    out: list[str] = []
    for (name, _), r in res.items():
        e = r.extra
        if name == "sleepers":
            out.append(
                f"sleepers: {_f(e.get('submitted', math.nan), 0)} sent, each sleeping "
                f"{_f(e.get('sleep_ms', math.nan), 0)} ms; submit {_f(r.rps, 0)}/s; orchestrator "
                f"RSS while they sleep {_f(e.get('rss_sleeping_mb', math.nan), 0)} MiB "
                f"(peak {_f(r.rss.get('orchestrator', math.nan), 0)}); timers late p50/p99/max "
                f"{_f(e.get('late_p50', math.nan))}/{_f(e.get('late_p99', math.nan))}/"
                f"{_f(e.get('late_max', math.nan))} ms (vs the handler's own expectation: p99 "
                f"{_f(e.get('handler_late_p99', math.nan))} ms); "
                f"{_f(e.get('completed', math.nan), 0)} completed"
            )
        elif name == "recovery":
            out.append(
                f"recovery: {_f(e.get('in_flight', math.nan), 0)} in flight at kill -9; after "
                f"restart: listening {_f(e.get('t_listen_ms', math.nan), 0)} ms, all running "
                f"again {_f(e.get('t_running_ms', math.nan), 0)} ms "
                f"({_f(e.get('t_running_after_listen_ms', math.nan), 0)} ms after listening; "
                f"the first at {_f(e.get('t_first_ms', math.nan), 0)} ms; orchestrator CPU by "
                f"then {_f(e.get('cpu_running_s', math.nan), 2)} s), "
                f"all done {_f(e.get('t_done_ms', math.nan), 0)} ms (step "
                f"{_f(e.get('step_ms', math.nan), 0)} ms)"
            )
    if ("greet", 64) in res and ("proxy", 64) in res:
        shares = [f"{c} clients {_f(_share(res, c), 2)}" for c in (1, 64) if ("greet", c) in res]
        out.append("greet / proxy req/s: " + ", ".join(shares))
    return out


def _share(res: dict[Key, Row], clients: int) -> float:
    g, p = res.get(("greet", clients)), res.get(("proxy", clients))
    if g is None or p is None or not p.rps:
        return math.nan
    return g.rps / p.rps


def _get(res: dict[Key, Row], key: Key, get: Callable[[Row], float]) -> float:
    row = res.get(key)
    return get(row) if row is not None else math.nan


@dataclass(frozen=True)
class Target:
    what: str
    goal: str
    value: Callable[[dict[Key, Row]], float]
    ok: Callable[[float], bool]
    digits: int = 1


TARGETS = [
    Target(
        "greet req/s, 64 clients",
        ">= 2,000 (2x Restate 780-1,000)",
        lambda r: _get(r, ("greet", 64), lambda x: x.rps),
        lambda v: v >= 2000,
        0,
    ),
    Target(
        "ten req/s, 64 clients",
        ">= 500 (2x Restate 180-250)",
        lambda r: _get(r, ("ten", 64), lambda x: x.rps),
        lambda v: v >= 500,
        0,
    ),
    Target(
        "counter req/s, 64 clients",
        ">= 2,000 (2x Restate 700-1,000)",
        lambda r: _get(r, ("counter", 64), lambda x: x.rps),
        lambda v: v >= 2000,
        0,
    ),
    Target(
        "greet p99 ms, 64 clients",
        "< 160 (Restate)",
        lambda r: _get(r, ("greet", 64), lambda x: x.p99),
        lambda v: v < 160,
    ),
    Target(
        "ten p99 ms, 64 clients",
        "< 547 (Restate)",
        lambda r: _get(r, ("ten", 64), lambda x: x.p99),
        lambda v: v < 547,
    ),
    Target(
        "greet p50 ms, 1 client",
        "< 3.6 (Restate)",
        lambda r: _get(r, ("greet", 1), lambda x: x.p50),
        lambda v: v < 3.6,
        2,
    ),
    Target(
        "ten p50 ms, 1 client",
        "< 15 (Restate)",
        lambda r: _get(r, ("ten", 1), lambda x: x.p50),
        lambda v: v < 15,
        2,
    ),
    Target(
        "sleepers: orchestrator peak RSS MiB",
        "< 500 with 100,000 sleeping",
        lambda r: _get(r, ("sleepers", 64), lambda x: x.rss.get("orchestrator", math.nan)),
        lambda v: v < 500,
        0,
    ),
    Target(
        "sleepers: timer lateness p99 ms",
        "<= 100",
        lambda r: _get(r, ("sleepers", 64), lambda x: x.extra.get("late_p99", math.nan)),
        lambda v: v <= 100,
    ),
    Target(
        "recovery: all running again, ms",
        "<= 1,000 after the restart",
        lambda r: _get(r, ("recovery", 64), lambda x: x.extra.get("t_running_ms", math.nan)),
        lambda v: v <= 1000,
        0,
    ),
    Target(
        "embedded / DBOS req/s, 64 clients",
        ">= 10",
        lambda r: (
            _get(r, ("embedded", 64), lambda x: x.rps) / _get(r, ("dbos", 64), lambda x: x.rps)
        ),
        lambda v: v >= 10,
    ),
    Target(
        "greet / proxy req/s, 64 clients", ">= 0.5", lambda r: _share(r, 64), lambda v: v >= 0.5, 2
    ),
]


def _targets(res: dict[Key, Row], opts: Options) -> list[str]:
    head = f"{'target (issue 8)':<36} {'goal':<34} {'measured':>10}  result"
    lines = [head, "-" * len(head)]
    for t in TARGETS:
        try:
            value = t.value(res)
        except ZeroDivisionError:
            value = math.nan
        verdict = "n/a" if math.isnan(value) else ("pass" if t.ok(value) else "MISS")
        if t.what.startswith("sleepers") and ("sleepers", 64) in res and opts.sleepers != 100_000:
            verdict += f" (at {opts.sleepers:,} sleepers)"
        lines.append(f"{t.what:<36} {t.goal:<34} {_f(value, t.digits):>10}  {verdict}")
    return lines


def render(header: str, res: dict[Key, Row], opts: Options) -> str:
    """The whole printed report: header, table, per-workload details, targets, notes."""
    parts = [header, "", *_table(res)]
    details = _details(res)
    if details:
        parts += ["", *details]
    parts += ["", *_targets(res, opts)]
    if opts.notes:
        parts += ["", "notes:", *(f"- {n}" for n in opts.notes)]
    parts += [
        "",
        "CPU s: utime+stime over the measured window (orch = the process in the orchestrator's "
        "place: ritornello serve, ritornello dev, the proxy or the DBOS app).",
    ]
    return "\n".join(parts)
