"""A ten-step handler on the Lambda path, two versions side by side: Lambda requests per
invocation and latency (docs/protocol.md, "Checkpoint channel").

    .venv/bin/python benchmarks/lambda_channel.py [--base main] [--calls 30] [--rounds 3]

For BASE (a git revision exported with ``git archive`` into a temporary directory) and this
tree's ``src/``: ``ritornello lambda-emulator tests/apps/channel_app.py`` and ``ritornello
serve`` as processes on loopback, both importing that side's ``src/`` (checked: a probe prints
``ritornello.__file__``), the function registered by ARN. Each round makes ``--calls``
sequential calls of ``Steps/ten`` (ten steps of no work: what is measured is the orchestration)
after five warm-up calls, on a fresh stack per side; the sides alternate (ABBA over rounds).
Printed per side: Lambda requests per invocation (counted by the app), p50 and mean latency of
a call (client side), medians over the rounds, and new/base.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.procs import ROOT, LambdaEmulatorProcess, Orchestrator, aws_env, http

ARN = "arn:aws:lambda:us-east-1:123456789012:function:steps:1"


def _probe(src: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", "import ritornello; print(ritornello.__file__)"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(src), "PATH": "/usr/bin:/bin"},
        check=True,
    ).stdout.strip()
    if not out.startswith(str(src)):
        raise SystemExit(f"{src}: ritornello imported from {out}")


def one_round(src: Path, calls: int) -> tuple[float, float, float]:
    """(Lambda requests per invocation, p50 ms, mean ms) of ``calls`` calls."""
    with tempfile.TemporaryDirectory(prefix="ritornello-chan-") as tmp_name:
        tmp = Path(tmp_name)
        invokes = tmp / "invokes.txt"
        side = {"PYTHONPATH": str(src), "PYTHONUNBUFFERED": "1"}
        emulator = LambdaEmulatorProcess(
            tmp, "tests/apps/channel_app.py", CHANNEL_INVOKES=str(invokes), **side
        ).start()
        orch = Orchestrator(tmp, **aws_env(emulator.port, tmp), **side).start()
        try:
            status, body, _ = http("POST", f"{orch.admin}/deployments", {"arn": ARN})
            assert status == 201, body
            url = f"{orch.ingress}/restate/call/Steps/ten"
            for _ in range(5):
                assert http("POST", url, {})[0] == 200
            before = invokes.read_text().splitlines().count("invoke")
            times = []
            for _ in range(calls):
                started = time.perf_counter()
                status, body, _ = http("POST", url, {})
                times.append((time.perf_counter() - started) * 1000)
                assert (status, body) == (200, [i * i for i in range(10)]), body
            requests = invokes.read_text().splitlines().count("invoke") - before
            return requests / calls, statistics.median(times), statistics.fmean(times)
        finally:
            orch.terminate()
            emulator.terminate()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="main")
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ritornello-base-") as base_dir:
        archive = subprocess.run(
            ["git", "archive", args.base, "src"], cwd=ROOT, capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", base_dir], input=archive, check=True)
        sides = {"base": Path(base_dir) / "src", "new": ROOT / "src"}
        for src in sides.values():
            _probe(src)
        rows: dict[str, list[tuple[float, float, float]]] = {"base": [], "new": []}
        for n in range(args.rounds):
            order = ["base", "new"] if n % 2 == 0 else ["new", "base"]
            for name in order:
                rows[name].append(one_round(sides[name], args.calls))
                print(f"round {n + 1} {name}: {rows[name][-1]}", flush=True)
    med = {k: [statistics.median(r[i] for r in v) for i in range(3)] for k, v in rows.items()}
    print(f"\n{'':6}{'requests/inv':>14}{'p50 ms':>10}{'mean ms':>10}")
    for name in ("base", "new"):
        print(f"{name:6}{med[name][0]:>14.2f}{med[name][1]:>10.1f}{med[name][2]:>10.1f}")
    ratio = [med["new"][i] / med["base"][i] for i in range(3)]
    print(f"{'new/base':6}{ratio[0]:>12.2f}{ratio[1]:>10.2f}{ratio[2]:>10.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
