"""The benchmark suite (docs/performance.md): run workloads, print one table and the targets.

    .venv/bin/python benchmarks/run.py [--workloads greet,ten,...] [--duration 10] [--runs 3]
                                       [--sleepers 100000] [--sleep-ms 60000] [--quick]

Every figure is the median over ``--runs`` runs; every run's raw output (wrk reports, JSON rows)
is kept under benchmarks/results/<timestamp>/, with the printed table (table.txt).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Collection
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import _wrk  # noqa: E402
from benchmarks._report import medians, render  # noqa: E402
from benchmarks.workloads import ALL  # noqa: E402
from benchmarks.workloads._common import Options, Row  # noqa: E402


def add_common_arguments(p: argparse.ArgumentParser) -> None:
    """The options benchmarks/run.py and benchmarks/compare.py share."""
    p.add_argument("--duration", type=float, help="seconds per measured wrk run (10; quick: 1)")
    p.add_argument("--warmup", type=float, help="seconds of warm-up per client count (2; quick: 0)")
    p.add_argument(
        "--runs", type=int, help="runs per measurement; medians are printed (3; quick: 1)"
    )
    p.add_argument("--synchronous", default="FULL", choices=("FULL", "NORMAL"))
    p.add_argument(
        "--quick", action="store_true", help="short runs and small counts (a smoke test)"
    )
    p.add_argument(
        "--results", type=Path, help="where raw output goes (benchmarks/results/<stamp>)"
    )


def pick(args: argparse.Namespace, name: str, full: float, quick: float) -> float:
    """``args.name`` if given, else its full or ``--quick`` default."""
    value = getattr(args, name, None)
    if value is not None:
        return float(value)
    return quick if args.quick else full


def build_options(args: argparse.Namespace, stamp: str) -> Options:
    """Options from parsed arguments (those a parser lacks take their defaults)."""
    return Options(
        duration_s=pick(args, "duration", 10, 1),
        warmup_s=pick(args, "warmup", 2, 0),
        runs=int(pick(args, "runs", 3, 1)),
        sleepers=int(pick(args, "sleepers", 100_000, 200)),
        sleep_ms=int(pick(args, "sleep_ms", 60_000, 2_000)),
        recovery=int(pick(args, "recovery", 1_000, 100)),
        step_ms=int(pick(args, "step_ms", 50, 50)),
        synchronous=args.synchronous,
        results=args.results or ROOT / "benchmarks" / "results" / stamp,
    )


def split_workloads(p: argparse.ArgumentParser, text: str, known: Collection[str]) -> list[str]:
    """The comma-separated workload names, each checked against ``known``."""
    names = text.split(",")
    unknown = [w for w in names if w not in known]
    if unknown:
        p.error(f"unknown workload(s): {', '.join(unknown)} (known: {', '.join(known)})")
    return names


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, Options]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--workloads", default=",".join(ALL), help="comma-separated, from: " + ",".join(ALL)
    )
    add_common_arguments(p)
    p.add_argument("--sleepers", type=int, help="sleeper invocations (100000; quick: 200)")
    p.add_argument("--sleep-ms", type=int, help="how long each sleeper sleeps (60000; quick: 2000)")
    p.add_argument(
        "--recovery", type=int, help="in-flight invocations to recover (1000; quick: 100)"
    )
    p.add_argument("--step-ms", type=int, help="duration of each recovery step (50)")
    args = p.parse_args(argv)
    args.workloads = split_workloads(p, args.workloads, ALL)
    return args, build_options(args, time.strftime("%Y%m%d-%H%M%S"))


def run_workload(name: str, opts: Options, label: str = "") -> list[Row] | None:
    """Run one workload (progress on stderr); its rows, or None if it failed (the error goes to
    ``opts.notes``: one broken workload must not hide the others' numbers)."""
    print(f"... {name}{label}", file=sys.stderr, flush=True)
    started = time.monotonic()
    rows: list[Row] | None = None
    try:
        rows = ALL[name].run(opts)
    except Exception as exc:
        opts.notes.append(f"{name}: FAILED: {type(exc).__name__}: {exc}")
    print(f"    {name}: {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    args, opts = parse_args(argv)
    if not _wrk.available():
        sys.exit("wrk not found: apt-get install wrk (make bench installs it)")
    rows: list[Row] = []
    failed: list[str] = []
    for name in args.workloads:
        got = run_workload(name, opts)
        if got is None:
            failed.append(name)
        rows.extend(got or [])
    header = (
        f"Ritornello benchmark, {time.strftime('%Y-%m-%d %H:%M:%S')}: runs={opts.runs}, "
        f"duration={opts.duration_s:g}s, warm-up={opts.warmup_s:g}s, SQLite "
        f"synchronous={opts.synchronous}"
        + (" (QUICK MODE: smoke test, not a result)" if args.quick else "")
    )
    table = render(header, medians(rows), opts)
    print(table)
    opts.save("table.txt", table + "\n")
    opts.save("rows.json", json.dumps([asdict(r) for r in rows], indent=1) + "\n")
    print(f"\nraw output: {opts.results}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
