"""Leases under load: three orchestrators on one DynamoDB table (moto's serialized server),
default lease settings, wrk driving calls at every ingress at once; then what each
orchestrator measured of its own lease renewals (``GET /cluster``: ``renewals``).

Used by ``test_cluster.py`` (seconds) and by ``make lease-soak`` (minutes:
``python -m tests.integration._soak --seconds 600``).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.cluster import dynamo_cluster
from tests.procs import ROOT, cluster_view, wait_until

APPS = ROOT / "tests" / "apps"
LUA = """
wrk.method = "POST"
wrk.body = "[1, 2]"
wrk.headers["Content-Type"] = "application/json"
"""


def soak(tmp: Path, seconds: float, clients: int = 16) -> dict[str, Any]:
    """Run the load for ``seconds``; per orchestrator, its ``renewals`` and the coordination
    requests it sent per second, and the calls wrk counted."""
    with dynamo_cluster(tmp, "ritornello-soak", 8, APPS, "crashapp") as cluster:
        orchs = cluster.start(["s0", "s1", "s2"])  # the default lease settings
        cluster.deploy(orchs[0])

        def balanced() -> bool:
            return all(len(cluster_view(o)["leading"]) >= 2 for o in orchs)

        wait_until(balanced, 60, "8 partitions shared by 3 orchestrators")
        before = [cluster_view(o)["renewals"] for o in orchs]
        script = tmp / "post.lua"
        script.write_text(LUA)
        began = time.monotonic()
        loads = [
            subprocess.Popen(
                [
                    "wrk",
                    "-t1",
                    f"-c{clients}",
                    f"-d{seconds:g}s",
                    "-s",
                    str(script),
                    f"{o.ingress}/restate/call/Adder/add",
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            for o in orchs
        ]
        outputs = [p.communicate(timeout=seconds + 60)[0] for p in loads]
        spent = time.monotonic() - began
        after = [cluster_view(o)["renewals"] for o in orchs]
    calls = sum(_requests(out) for out in outputs)
    nodes = []
    for b, a in zip(before, after, strict=True):
        sent = {k: a["requests"].get(k, 0) - b["requests"].get(k, 0) for k in a["requests"]}
        nodes.append({**a, "requests_per_s": round(sum(sent.values()) / spent, 1)})
    return {
        "seconds": round(spent, 1),
        "calls": calls,
        "calls_per_s": round(calls / spent),
        "nodes": nodes,
    }


def _requests(wrk_output: str) -> int:
    for line in wrk_output.splitlines():
        if "requests in" in line:
            return int(line.split()[0])
    return 0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seconds", type=float, default=600)
    p.add_argument("--clients", type=int, default=16, help="wrk connections per ingress")
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ritornello-soak-"))
    try:
        result = soak(tmp, args.seconds, args.clients)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{result['calls']} calls in {result['seconds']} s ({result['calls_per_s']}/s)")
    for node in result["nodes"]:
        print(
            f"lapses {node['lapses']}, renewal rounds {node['rounds']} late p99 "
            f"{node['late_p99_ms']} ms max {node['late_max_ms']} ms, round trip p99 "
            f"{node['round_trip_p99_ms']} ms max {node['round_trip_max_ms']} ms, least margin "
            f"{node['margin_min_ms']} ms, coordination {node['requests_per_s']} requests/s"
        )
    if any(node["lapses"] for node in result["nodes"]):
        raise SystemExit("a lease lapsed under load")


if __name__ == "__main__":
    main()
