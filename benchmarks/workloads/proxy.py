"""``proxy``: greet's hops with no journaling, the ceiling for ``greet``.

wrk -> benchmarks/proxy.py (raw ASGI on uvicorn + httptools + uvloop with the ingress's own
protocol class, which sends an answer's head and body in one write, forwarding through the
orchestrator's own ``HttpInvoker``) -> benchmarks/app.py under uvicorn, ``Bench/greet``. The
endpoint does exactly the work it does for the orchestrator; nothing is stored. The table shows
greet's share of it (greet req/s / proxy req/s at the same client count)."""

from __future__ import annotations

from benchmarks._procs import ROOT, Endpoint
from benchmarks._wrk import POST_LUA
from benchmarks.workloads._common import Options, Row, pid_of, tempdir, wrk_phase

NAME = "proxy"
INGRESS_HTTP = "ritornello.cli._listen:HttpToolsProtocol"
"""The ingress's uvicorn protocol class (``cli/_listen.py``): the proxy serves HTTP as it does."""


def run(opts: Options) -> list[Row]:
    with tempdir() as tmp:
        endpoint = Endpoint(tmp, ROOT / "benchmarks", "app").start()
        proxy: Endpoint | None = None
        try:
            proxy = Endpoint(
                tmp,
                ROOT / "benchmarks",
                "proxy",
                http=INGRESS_HTTP,
                BENCH_UPSTREAM=endpoint.uri,
            )
            proxy.start()
            pids = {"orchestrator": pid_of(proxy), "endpoint": pid_of(endpoint)}
            return wrk_phase(opts, NAME, f"{proxy.uri}/Bench/greet", POST_LUA, pids, tmp)
        finally:
            if proxy is not None:
                proxy.terminate()
            endpoint.terminate()
