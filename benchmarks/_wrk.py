"""wrk (Debian's package): Lua scripts for the workloads, one run, and parsing its report.

``-t1`` for one connection, ``-t2`` for more (the machine has two cores); ``--latency`` prints
the percentiles the table shows. Latencies are in milliseconds.
"""

from __future__ import annotations

import math
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from benchmarks._procs import run_measured

#: A POST of a small JSON body to the URL's path.
POST_LUA = """
wrk.method = "POST"
wrk.body = '"bench"'
wrk.headers["content-type"] = "application/json"
"""

#: ``Counter/add`` of 1, the key going round 100 keys (k0..k99) per wrk thread.
COUNTER_LUA = """
wrk.method = "POST"
wrk.body = "1"
wrk.headers["content-type"] = "application/json"
local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, "/restate/call/Counter/k" .. (n % 100) .. "/add")
end
"""


@dataclass(frozen=True)
class WrkResult:
    rps: float
    p50: float
    p90: float
    p99: float
    requests: int
    non2xx: int
    socket_errors: int
    cpu_s: float  # wrk's own user + system CPU
    raw: str


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def parse(out: str, cpu_s: float = math.nan) -> WrkResult:
    """The numbers of one wrk ``--latency`` report. Raises ValueError if it has none."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    if rps is None or total is None:
        raise ValueError(f"not a wrk report:\n{out[-2000:]}")
    lat: dict[str, float] = {}
    for pct in ("50", "90", "99") if int(total.group(1)) else ():  # no request: no latency
        m = re.search(rf"^\s+{pct}(?:\.000)?%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M)
        lat[pct] = _ms(m.group(1), m.group(2)) if m else math.nan
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return WrkResult(
        rps=float(rps.group(1)),
        p50=lat.get("50", math.nan),
        p90=lat.get("90", math.nan),
        p99=lat.get("99", math.nan),
        requests=int(total.group(1)),
        non2xx=int(non2xx.group(1)) if non2xx else 0,
        socket_errors=sum(int(g) for g in sock.groups()) if sock else 0,
        cpu_s=cpu_s,
        raw=out,
    )


def available() -> bool:
    return shutil.which("wrk") is not None


def run(url: str, conns: int, duration_s: float, script: Path) -> WrkResult:
    """One wrk run against ``url`` (its path is the request path unless the script sets one)."""
    threads = 1 if conns == 1 else 2
    secs = max(1, round(duration_s))
    args = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{secs}s", "--timeout", "30s", "--latency"]
    out, _, cpu = run_measured([*args, "-s", str(script), url], timeout=secs + 60)
    return parse(out, cpu)
