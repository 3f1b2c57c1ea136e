"""A fixed-count load generator: POST one body ``count`` times, ``concurrency`` at a time.

    python -m benchmarks._submit URL COUNT CONCURRENCY BODY_JSON

wrk runs for a duration, not a count; the ``sleepers`` and ``recovery`` workloads need exactly
COUNT invocations. This client is as cheap as Python gets: the orchestrator's own keep-alive
HTTP/1.1 pool (httptools) on uvloop, with every request built once. It prints one JSON line:
``{"count", "ok", "failed", "elapsed_s", "rate", "p50", "p90", "p99", "statuses"}``
(latencies in ms; ``ok`` counts 2xx answers; ``rate`` is ok / elapsed).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from urllib.parse import urlsplit

from ritornello.orchestrator.invokers._client_errors import HttpClientError
from ritornello.orchestrator.invokers._pool import HttpPool


def _pct(sorted_ms: list[float], q: float) -> float:
    if not sorted_ms:
        return float("nan")
    return sorted_ms[min(len(sorted_ms) - 1, int(q * len(sorted_ms)))]


async def submit(url: str, count: int, concurrency: int, body: bytes) -> dict[str, object]:
    parts = urlsplit(url)
    pool = HttpPool(f"{parts.scheme}://{parts.netloc}", limit=concurrency)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    headers = {"content-type": "application/json"}
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    remaining = count

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            t0 = time.perf_counter()
            try:
                status, _, _ = await pool.request("POST", path, body, headers)
            except HttpClientError as exc:
                statuses[type(exc).__name__] += 1
                continue
            latencies.append((time.perf_counter() - t0) * 1000.0)
            statuses[str(status)] += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(min(concurrency, count))))
    elapsed = time.perf_counter() - start
    await pool.close()
    latencies.sort()
    ok = sum(n for s, n in statuses.items() if s.startswith("2"))
    return {
        "count": count,
        "ok": ok,
        "failed": count - ok,
        "elapsed_s": elapsed,
        "rate": ok / elapsed if elapsed > 0 else 0.0,
        "p50": _pct(latencies, 0.50),
        "p90": _pct(latencies, 0.90),
        "p99": _pct(latencies, 0.99),
        "statuses": dict(statuses),
    }


def main() -> None:
    url, count, concurrency, body = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    try:
        import uvloop

        result = uvloop.run(submit(url, count, concurrency, body.encode()))
    except ImportError:  # pragma: no cover - uvloop comes with the server extra
        result = asyncio.run(submit(url, count, concurrency, body.encode()))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
