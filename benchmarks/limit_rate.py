"""How close a rate limit's achieved rate comes to the configured one (docs/limits.md).

    .venv/bin/python benchmarks/limit_rate.py [--rates 50,2000] [--seconds 10] [--burst 1]

For each rate R: ``ritornello serve`` (SQLite) and benchmarks/app.py under uvicorn; R x
seconds one-way sends of ``Bench/stamp`` fired from a thread pool while the limit ``rate`` is
shut (1 per 1,000 s), so every one waits for a permit; then the limit set to R per second
(``--burst``) through the admin API, which takes effect at once. Each invocation's step appends
the time it ran to a file. Read from the stamps: the achieved rate over the steady middle (the
first and last 10 % dropped), the most steps in any half-open 1 s window (the grants' bound is
R + the bucket), and how long the whole took against ``count / R``.
"""

from __future__ import annotations

import argparse
import bisect
import json
import math
import sqlite3
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks._procs import Endpoint, Orchestrator, http  # noqa: E402


def max_in_window(stamps: list[float], window_s: float) -> int:
    """The most stamps in any half-open window [t, t + window_s) starting at a stamp."""
    return max(
        (bisect.bisect_left(stamps, t + window_s) - i for i, t in enumerate(stamps)), default=0
    )


def _grant_times(db: Path) -> list[float]:
    """When each permit was granted: the commit time (``at``, ms) of each ``permit`` entry's
    completion (index 1: the step's entry follows it)."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT completion FROM completions WHERE idx = 1").fetchall()
    return sorted(json.loads(text)["at"] / 1000 for (text,) in rows)


def measure(rate: float, seconds: float, burst: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        stamps_file = tmp / "stamps.txt"
        stamps_file.touch()
        endpoint = Endpoint(tmp, ROOT / "benchmarks", "app", BENCH_STAMPS=str(stamps_file))
        orch = Orchestrator(tmp)
        try:
            endpoint.start()
            orch.start()
            status, body, _ = http("POST", f"{orch.admin}/deployments", {"uri": endpoint.uri})
            assert status == 201, body
            shut = {"rate": 1, "per": "1h", "burst": 1}
            status, body, _ = http("PUT", f"{orch.admin}/limits/rate", shut)
            assert status in (200, 201), body
            count = int(rate * seconds)
            url = f"{orch.ingress}/restate/send/Bench/stamp"
            began = time.time()
            with ThreadPoolExecutor(32) as pool:
                statuses = list(pool.map(lambda _: http("POST", url)[0], range(count)))
            sent = time.time() - began
            assert all(s == 202 for s in statuses), set(statuses)
            while http("GET", f"{orch.admin}/limits/rate")[1]["waiting"] < count - 1:
                time.sleep(0.2)  # every one asked (the first may have had the one token)
            spec = {"rate": rate, "per": "1s", "burst": burst}
            status, body, _ = http("PUT", f"{orch.admin}/limits/rate", spec)
            assert status == 200, body
            deadline = time.time() + seconds * 3 + 30
            while time.time() < deadline:
                stamps = sorted(float(x) for x in stamps_file.read_text().split())
                if len(stamps) >= count:
                    break
                time.sleep(0.2)
        finally:
            orch.terminate()
            endpoint.terminate()
        grants = _grant_times(tmp / "ritornello.db")
    cut = len(stamps) // 10
    middle = stamps[cut : len(stamps) - cut]
    steady = (len(middle) - 1) / (middle[-1] - middle[0]) if len(middle) > 1 else 0.0
    return {
        "rate": rate,
        "burst": burst,
        "invocations": count,
        "send_s": round(sent, 2),
        "ran": len(stamps),
        "achieved_per_s": round(steady, 1),
        "achieved/configured": round(steady / rate, 3),
        "max_in_1s_window": max_in_window(stamps, 1.0),
        "grants_max_in_1s_window": max_in_window(grants, 1.0),
        "bound_rate_plus_bucket": rate + max(burst, math.ceil(rate * 0.005)),
        "total_s": round(stamps[-1] - stamps[0], 2),
        "ideal_s": round((count - 1) / rate, 2),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rates", default="50,2000")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--burst", type=int, default=1)
    args = p.parse_args()
    for rate in (float(r) for r in args.rates.split(",")):
        print(json.dumps(measure(rate, args.seconds, args.burst)), flush=True)


if __name__ == "__main__":
    main()
