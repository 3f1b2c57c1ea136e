"""Two versions of ritornello side by side in one run: is the new one slower beyond the noise?

    .venv/bin/python benchmarks/compare.py [--base REV | --base-dir DIR]
        [--workloads greet,ten,counter] [--runs 3] [--order abba|ab] [--duration 10] [--quick]
    make bench-compare BASE=main WORKLOADS=greet,ten,counter RUNS=3

**What it measures**, per workload (greet, ten, counter: docs/performance.md), for BASE (a git
revision, exported with ``git archive`` into a temporary directory that is removed on exit, or
an existing checkout given with ``--base-dir``) and for this tree's ``src/`` (uncommitted
changes included): req/s and p99 at 64 clients, p50 at 1 client (wrk's figures, as
benchmarks/run.py reports them), and the orchestrator's CPU per request at 64 clients (its
process tree's utime + stime over the measured window, divided by the requests wrk counted).
Beside them, for the reader: the CPU other processes on the machine took during the measured
runs ("others' cores": /proc/stat's busy time minus ours), the disturbance on a shared machine.

**How.** The two sides differ only in which ``src/`` the processes under test import: the
orchestrator (``ritornello serve``) and the endpoint (this tree's benchmarks/app.py under
uvicorn) run with ``PYTHONPATH=<side>/src``; the venv, the interpreter, the workload code and
wrk are the same. Before anything is measured, a probe started the same way (same interpreter,
environment and working directory) prints ``ritornello.__file__``; the tool stops unless it
lies under that side's ``src/``. Each round runs every workload once on each side, each time on
a fresh stack (new SQLite file, new processes; run.py's warm-up, then one measured wrk run per
client count), and the order of the sides alternates: base then new in odd rounds, new then
base in even ones (ABBA; ``--order ab``: always base first), so a drift of this shared machine
over the run hits both sides alike. Printed: each side's median over the rounds, new/base,
each side's min-max (the noise), whether the two ranges overlap, and a warning when other
processes took a noticeable share of the machine during the runs.

Raw output: benchmarks/results/<stamp>-compare/: ``table.txt``, ``rows.json`` (every run of
every side, before medians) and the wrk reports under ``<side>/round<N>/``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import _wrk  # noqa: E402
from benchmarks._procs import Proc  # noqa: E402
from benchmarks.run import (  # noqa: E402
    add_common_arguments,
    build_options,
    run_workload,
    split_workloads,
)
from benchmarks.workloads._common import Options, Row  # noqa: E402

#: the wrk workloads on ``ritornello serve``: their processes take ``Options.src`` and their
#: rows have the metrics below (sleepers and recovery report other figures; embedded and proxy
#: start processes of their own)
COMPARABLE = ("greet", "ten", "counter")
PROBE = "import ritornello; print(ritornello.__file__)"
#: a measured run during which other processes took more CPU than this (cores) is "disturbed"
DISTURBED = 0.25


@dataclass(frozen=True)
class Side:
    name: str  # "base" or "new"
    src: Path  # the directory put first on the processes' PYTHONPATH
    label: str  # what it is, for the table's header
    imported: str = ""  # ritornello.__file__ as a probe started like the processes saw it


@dataclass(frozen=True)
class Metric:
    name: str
    clients: int
    get: Callable[[Row], float]
    higher_is_better: bool
    digits: int
    judged: bool = True  # False: context for the reader (no ratio, no verdict)


def _cpu_us_per_request(row: Row) -> float:
    requests = row.extra.get("requests", 0)
    cpu = row.cpu.get("orchestrator", math.nan)
    return cpu / requests * 1e6 if requests else math.nan


def _others_cores(row: Row) -> float:
    return row.extra.get("others_cores", math.nan)


METRICS = (
    Metric("req/s", 64, lambda r: r.rps, True, 0),
    Metric("p99 ms", 64, lambda r: r.p99, False, 2),
    Metric("p50 ms", 1, lambda r: r.p50, False, 2),
    Metric("orch CPU us/req", 64, _cpu_us_per_request, False, 0),
    Metric("others' cores", 1, _others_cores, False, 2, judged=False),
    Metric("others' cores", 64, _others_cores, False, 2, judged=False),
)


@dataclass(frozen=True)
class Run:
    """One workload run on one side (rows at 1 and 64 clients)."""

    side: str
    round: int
    rows: list[Row]


# --- the two sides --------------------------------------------------------------------------


def _git(*args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        sys.exit(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


def _export_src(sha: str, into: Path) -> Path:
    """``src/`` of commit ``sha`` written under ``into`` (git archive: no worktree to prune)."""
    tar = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", sha, "src"],
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        archive.extractall(into, filter="data")
    return into / "src"


@contextlib.contextmanager
def base_side(rev: str, base_dir: Path | None) -> Iterator[Side]:
    """The base: ``base_dir/src`` if given, else ``rev``'s ``src/`` in a temporary directory
    that is removed when the block exits (an exception or Ctrl-C included)."""
    if base_dir is not None:
        yield Side("base", base_dir.resolve() / "src", f"directory {base_dir}")
        return
    sha = _git("rev-parse", "--verify", f"{rev}^{{commit}}")
    with tempfile.TemporaryDirectory(prefix="ritornello-base-") as tmp:
        yield Side("base", _export_src(sha, Path(tmp)), f"{rev} = {sha[:10]}")


def new_side() -> Side:
    """This tree's ``src/``, flagged when it differs from the checked-out commit."""
    branch = _git("rev-parse", "--abbrev-ref", "HEAD")
    sha = _git("rev-parse", "HEAD")
    dirty = ", src/ with uncommitted changes" if _git("status", "--porcelain", "--", "src") else ""
    return Side("new", ROOT / "src", f"this tree, {branch} = {sha[:10]}{dirty}")


def verified(side: Side) -> Side:
    """``side`` with the file ``import ritornello`` loads in a process started as the
    orchestrator and endpoint are (``Proc``: same interpreter, environment and working
    directory); exits if that file is not under ``side.src``."""
    with tempfile.TemporaryDirectory(prefix="ritornello-probe-") as tmp:
        log = Path(tmp) / "probe.log"
        probe = Proc([sys.executable, "-c", PROBE], log, Options(src=side.src).code_env())
        probe.start()
        assert probe.proc is not None
        try:
            status = probe.proc.wait(60)
        finally:
            probe.kill9()  # only if it is still running (a timeout, Ctrl-C)
        text = log.read_text().strip()
    imported = Path(text.splitlines()[-1]).resolve() if status == 0 and text else None
    if imported is None or not imported.is_relative_to(side.src.resolve()):
        sys.exit(f"{side.name}: ritornello is not imported from {side.src}: {text[-2000:]}")
    return replace(side, imported=str(imported))


# --- running ---------------------------------------------------------------------------------


def in_order(round_no: int, order: str, sides: tuple[Side, Side]) -> tuple[Side, Side]:
    """The sides in the order they run in round ``round_no`` (from 0): ABBA flips every other."""
    return (sides[1], sides[0]) if order == "abba" and round_no % 2 else sides


def run_one(name: str, side: Side, round_no: int, opts: Options) -> Run | None:
    """One run of workload ``name`` on ``side``; None if it failed (a note says why)."""
    one = replace(
        opts,
        runs=1,
        src=side.src,
        results=opts.results / side.name / f"round{round_no + 1}",
        notes=[],
    )
    rows = run_workload(name, one, f" ({side.name}, round {round_no + 1}/{opts.runs})")
    opts.notes.extend(f"{side.name}, round {round_no + 1}: {note}" for note in one.notes)
    return None if rows is None else Run(side.name, round_no + 1, rows)


def run_rounds(
    names: list[str], sides: tuple[Side, Side], opts: Options, order: str
) -> tuple[list[Run], int]:
    """Every round: every workload on both sides, back to back. (runs, failures)."""
    runs: list[Run] = []
    failed = 0
    for round_no in range(opts.runs):
        for name in names:
            for side in in_order(round_no, order, sides):
                run = run_one(name, side, round_no, opts)
                if run is None:
                    failed += 1
                else:
                    runs.append(run)
    return runs, failed


# --- the table -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Spread:
    median: float
    low: float
    high: float

    @staticmethod
    def of(values: list[float]) -> Spread:
        real = [v for v in values if not math.isnan(v)]
        if not real:
            return Spread(math.nan, math.nan, math.nan)
        return Spread(statistics.median(real), min(real), max(real))

    def relative(self) -> float:
        """(max - min) / median."""
        return (self.high - self.low) / self.median if self.median else math.nan


def values(runs: list[Run], side: str, workload: str, metric: Metric) -> list[float]:
    return [
        metric.get(row)
        for run in runs
        if run.side == side
        for row in run.rows
        if row.workload == workload and row.clients == metric.clients
    ]


def verdict(base: Spread, new: Spread, higher_is_better: bool) -> str:
    """``overlap`` when the min-max ranges overlap, else which side is better."""
    if math.isnan(base.median) or math.isnan(new.median):
        return "-"
    if new.low <= base.high and base.low <= new.high:
        return "overlap"
    return "new better" if (new.low > base.high) == higher_is_better else "new worse"


def _f(value: float, digits: int) -> str:
    return "-" if math.isnan(value) else f"{value:,.{digits}f}"


def _range(s: Spread, digits: int) -> str:
    return f"{_f(s.low, digits)}-{_f(s.high, digits)}"


def _judgement(base: Spread, new: Spread, m: Metric) -> str:
    ratio = new.median / base.median if base.median else math.nan
    spread = max(base.relative(), new.relative())
    return (
        f"  {_f(ratio, 3):>8} {_f(spread * 100, 1):>6}%  {verdict(base, new, m.higher_is_better)}"
    )


def table_lines(runs: list[Run], names: list[str]) -> list[str]:
    head = (
        f"{'workload':<9} {'metric':<16} {'clients':>7}  {'base':>9} {'base min-max':>17}  "
        f"{'new':>9} {'new min-max':>17}  {'new/base':>8} {'spread':>7}  ranges"
    )
    lines = [head, "-" * len(head)]
    for name in names:
        for m in METRICS:
            base = Spread.of(values(runs, "base", name, m))
            new = Spread.of(values(runs, "new", name, m))
            line = (
                f"{name:<9} {m.name:<16} {m.clients:>7}  {_f(base.median, m.digits):>9} "
                f"{_range(base, m.digits):>17}  {_f(new.median, m.digits):>9} "
                f"{_range(new, m.digits):>17}"
            )
            lines.append(line + (_judgement(base, new, m) if m.judged else ""))
    return lines


def chance_disjoint(runs: int) -> float:
    """How often ``runs`` results of the same code on each side give disjoint min-max ranges
    by chance: every order of the 2 * runs results equally likely, one side all below."""
    return 2 / math.comb(2 * runs, runs)


def legend(runs: int) -> list[str]:
    chance = chance_disjoint(runs)
    return [
        "base, new: each side's median over its runs. new/base above 1 is faster for req/s,",
        "below 1 is faster for ms and CPU. spread: the wider side's (max - min) / median.",
        "ranges: 'overlap' when the two sides' min-max ranges overlap, else which side is better.",
        "others' cores: CPU other processes took during the measured runs (busy time of the",
        "machine, /proc/stat, minus ours), in cores of 2: a side that had more is disturbed.",
        f"The same code on both sides gives disjoint ranges by chance on {chance:.1%} of lines at",
        f"{runs} run(s) a side (10 % at 3, 0.8 % at 5): one disjoint line alone proves little.",
    ]


def disturbed(runs: list[Run]) -> list[str]:
    """A warning when other processes took more than ``DISTURBED`` cores during measured runs."""
    tally: dict[str, str] = {}
    for side in ("base", "new"):
        rows = [row for run in runs if run.side == side for row in run.rows]
        busy = sum(row.extra.get("others_cores", 0.0) > DISTURBED for row in rows)
        if busy:
            tally[side] = f"{side} {busy} of {len(rows)}"
    if not tally:
        return []
    text = (
        f"warning: other processes took more than {DISTURBED} core during measured runs "
        f"({', '.join(tally.values())}; see others' cores): that spread is the machine's, not "
        "the code's. req/s and p99 at 64 clients move most with it, p50 at 1 client and CPU "
        "per request least."
    )
    return textwrap.wrap(text, 92)


def render(header: list[str], runs: list[Run], names: list[str], opts: Options) -> str:
    errors = {
        side: sum(row.errors for run in runs if run.side == side for row in run.rows)
        for side in ("base", "new")
    }
    notes = [f"errors (non-2xx and socket): base {errors['base']}, new {errors['new']}"]
    notes += disturbed(runs)
    lines = [*header, "", *table_lines(runs, names), "", *legend(opts.runs), "", *notes]
    return "\n".join([*lines, *opts.notes])


def header_lines(args: argparse.Namespace, opts: Options, sides: tuple[Side, Side]) -> list[str]:
    lines = [
        f"Ritornello compare, {time.strftime('%Y-%m-%d %H:%M:%S')}: {opts.runs} runs per side, "
        f"order {args.order.upper()}, duration={opts.duration_s:g}s, warm-up={opts.warmup_s:g}s, "
        f"SQLite synchronous={opts.synchronous}"
        + (" (QUICK MODE: smoke test, not a result)" if args.quick else "")
    ]
    for side in sides:
        lines.append(f"  {side.name:<4} {side.label}; ritornello from {side.imported}")
    return lines


# --- main ------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, Options]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--base", default="main", help="git revision to compare against (main)")
    p.add_argument("--base-dir", type=Path, help="use DIR/src as the base instead of --base")
    p.add_argument("--workloads", default=",".join(COMPARABLE), help=",".join(COMPARABLE))
    p.add_argument(
        "--order", default="abba", choices=("abba", "ab"), help="side order per round (abba)"
    )
    add_common_arguments(p)
    args = p.parse_args(argv)
    args.workloads = split_workloads(p, args.workloads, COMPARABLE)
    return args, build_options(args, time.strftime("%Y%m%d-%H%M%S") + "-compare")


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def estimate_s(names: list[str], opts: Options) -> float:
    """Rough wall time: per side run, warm-up and measured run at two client counts, plus
    about 2 s to start and stop the processes."""
    per_run = 2 * (opts.warmup_s + max(1, round(opts.duration_s))) + 2
    return per_run * 2 * len(names) * opts.runs


def compare(args: argparse.Namespace, opts: Options) -> int:
    with base_side(args.base, args.base_dir) as base:
        sides = (verified(base), verified(new_side()))
        header = header_lines(args, opts, sides)
        print("\n".join(header), file=sys.stderr)
        print(f"about {estimate_s(args.workloads, opts) / 60:.1f} min", file=sys.stderr)
        runs, failed = run_rounds(args.workloads, sides, opts, args.order)
    text = render(header, runs, args.workloads, opts)
    print(text)
    opts.save("table.txt", text + "\n")
    dump = [{"side": r.side, "round": r.round, **asdict(row)} for r in runs for row in r.rows]
    opts.save("rows.json", json.dumps(dump, indent=1) + "\n")
    print(f"\nraw output: {opts.results}", file=sys.stderr)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    args, opts = parse_args(argv)
    if not _wrk.available():
        sys.exit("wrk not found: apt-get install wrk (make bench installs it)")
    signal.signal(signal.SIGTERM, _interrupt)  # clean up (processes, temporary base) as on ^C
    signal.signal(signal.SIGHUP, _interrupt)
    try:
        return compare(args, opts)
    except KeyboardInterrupt:
        print("\ninterrupted: processes stopped, temporary base removed", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
