"""Ingress throughput and latency: one-step and ten-step handlers at 1 and 64 clients.

Starts an endpoint (uvicorn, benchmarks/app.py) and an orchestrator (``ritornello serve``, SQLite
with synchronous=FULL) on loopback, registers the endpoint, then drives each workload with wrk
(Debian's package: apt-get install wrk) and prints one table. Raw wrk output goes to
benchmarks/results/. Usage: python benchmarks/ingress.py [--duration 10] [--runs 1]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.procs import Endpoint, Orchestrator, http  # noqa: E402

LUA = """
wrk.method = "POST"
wrk.body = '"bench"'
wrk.headers["content-type"] = "application/json"
"""


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def parse_wrk(out: str) -> dict[str, float]:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    lat = {}
    for pct in ("50", "90", "99"):
        m = re.search(rf"\s{pct}(?:\.000)?%\s+([\d.]+)(us|ms|s)", out)
        lat[pct] = _ms(m.group(1), m.group(2)) if m else float("nan")
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return {
        "rps": rps,
        "p50": lat["50"],
        "p90": lat["90"],
        "p99": lat["99"],
        "non2xx": float(errors.group(1)) if errors else 0.0,
    }


def run_wrk(url: str, conns: int, duration: int, script: Path) -> str:
    threads = 1 if conns == 1 else 2
    args = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{duration}s", "--latency", "-s", str(script)]
    return subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--synchronous", default="FULL")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install wrk")
    results_dir = ROOT / "benchmarks" / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        script = tmp / "post.lua"
        script.write_text(LUA)
        endpoint = Endpoint(tmp, ROOT / "benchmarks", "app").start()
        orch = Orchestrator(tmp, RITORNELLO_SQLITE_SYNCHRONOUS=args.synchronous).start()
        try:
            status, body, _ = http("POST", f"{orch.admin}/deployments", {"uri": endpoint.uri})
            assert status == 201, body
            rows = []
            for workload in ("greet", "ten"):
                url = f"{orch.ingress}/restate/call/Bench/{workload}"
                for conns in (1, 64):
                    run_wrk(url, conns, 2, script)  # warm-up
                    samples = []
                    for n in range(args.runs):
                        out = run_wrk(url, conns, args.duration, script)
                        stamp = time.strftime("%Y%m%d-%H%M%S")
                        (results_dir / f"{stamp}-{workload}-c{conns}-{n}.txt").write_text(out)
                        samples.append(parse_wrk(out))
                    med = {k: statistics.median(s[k] for s in samples) for k in samples[0]}
                    rows.append((workload, conns, med))
        finally:
            orch.terminate()
            endpoint.terminate()
    print(f"{'workload':<8} {'conns':>5} {'req/s':>9} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8}")
    for workload, conns, m in rows:
        print(
            f"{workload:<8} {conns:>5} {m['rps']:>9.0f} {m['p50']:>8.2f} {m['p90']:>8.2f} "
            f"{m['p99']:>8.2f}" + (f"  non-2xx: {m['non2xx']:.0f}" if m["non2xx"] else "")
        )
    print(json.dumps({f"{w}-c{c}": m for w, c, m in rows}), file=sys.stderr)


if __name__ == "__main__":
    main()
