"""benchmarks/compare.py without load: the side order, the table's arithmetic, and the probe
that says which ``src/`` the processes under test import. (The tool's runs themselves are real
benchmarks; docs/performance.md, "Comparing two versions".)"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from benchmarks.compare import (
    Run,
    Side,
    Spread,
    chance_disjoint,
    disturbed,
    in_order,
    table_lines,
    verdict,
    verified,
)
from benchmarks.workloads._common import Row

ROOT = Path(__file__).resolve().parent.parent


def test_abba_flips_every_other_round_and_ab_never() -> None:
    a, b = Side("base", Path("a"), "a"), Side("new", Path("b"), "b")
    abba = [side.name for r in range(4) for side in in_order(r, "abba", (a, b))]
    assert abba == ["base", "new", "new", "base", "base", "new", "new", "base"]
    assert [side.name for r in range(2) for side in in_order(r, "ab", (a, b))] == [
        "base",
        "new",
        "base",
        "new",
    ]


def test_verdict_overlap_or_the_better_side() -> None:
    base = Spread(100, 90, 110)
    assert verdict(base, Spread(105, 100, 120), higher_is_better=True) == "overlap"
    assert verdict(base, Spread(130, 120, 140), higher_is_better=True) == "new better"
    assert verdict(base, Spread(130, 120, 140), higher_is_better=False) == "new worse"
    assert verdict(base, Spread(math.nan, math.nan, math.nan), higher_is_better=True) == "-"


def test_chance_of_disjoint_ranges_for_the_same_code() -> None:
    assert chance_disjoint(1) == 1.0
    assert chance_disjoint(3) == pytest.approx(0.1)
    assert chance_disjoint(5) == pytest.approx(2 / 252)


def _runs(side: str, rps_at_64: list[float], others: float = 0.0) -> list[Run]:
    return [
        Run(
            side,
            n + 1,
            [
                Row("greet", 1, rps=600, p50=1.5, p99=3.0, extra={"others_cores": others}),
                Row(
                    "greet",
                    64,
                    rps=rps,
                    p50=18.0,
                    p99=30.0 + n,
                    cpu={"orchestrator": 2.0},
                    extra={"requests": 10_000, "others_cores": others},
                ),
            ],
        )
        for n, rps in enumerate(rps_at_64)
    ]


def test_table_medians_ratio_and_spread() -> None:
    runs = _runs("base", [3000, 3300, 3100]) + _runs("new", [3200, 3150, 3600])
    lines = table_lines(runs, ["greet"])
    rps = next(line for line in lines if line.split()[1:3] == ["req/s", "64"])
    # medians 3,100 and 3,200; new/base 1.032; the wider spread is new's 450 / 3,200 = 14.1 %
    assert rps.split() == [
        "greet",
        "req/s",
        "64",
        "3,100",
        "3,000-3,300",
        "3,200",
        "3,150-3,600",
        "1.032",
        "14.1%",
        "overlap",
    ]
    cpu = next(line for line in lines if "orch CPU us/req" in line)
    assert "200" in cpu.split() and "1.000" in cpu.split()  # 2.0 CPU s / 10,000 requests
    others = [line for line in lines if "others' cores" in line]
    assert len(others) == 2 and all(len(line.split()) == 8 for line in others)  # no ratio


def test_disturbed_runs_are_warned_about() -> None:
    quiet = _runs("base", [3000]) + _runs("new", [3000])
    assert disturbed(quiet) == []
    busy = _runs("base", [3000], others=0.8) + _runs("new", [3000])
    warning = " ".join(disturbed(busy))
    assert "(base 2 of 2; see others' cores)" in warning  # new was quiet: not named


def test_the_probe_finds_the_src_it_is_given(tmp_path: Path) -> None:
    side = verified(Side("new", ROOT / "src", "this tree"))
    assert Path(side.imported) == ROOT / "src" / "ritornello" / "__init__.py"
    empty = tmp_path / "src"
    empty.mkdir()
    with pytest.raises(SystemExit, match="not imported from"):
        verified(Side("base", empty, "empty"))
