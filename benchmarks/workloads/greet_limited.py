"""``greet_limited``: ``greet`` with its step under a limit that never binds (docs/limits.md):
what a permit costs a step, side by side with ``greet`` in one run.

wrk at 1 and 64 clients against ``ritornello serve`` (SQLite) with benchmarks/app.py under
uvicorn; the limit ``bench`` (concurrency 1,000,000) is set through the admin API first."""

from __future__ import annotations

from benchmarks._wrk import POST_LUA
from benchmarks.workloads._common import (
    Options,
    Row,
    http,
    orchestrator_stack,
    pid_of,
    tempdir,
    wrk_phase,
)

NAME = "greet_limited"


def run(opts: Options) -> list[Row]:
    with tempdir() as tmp, orchestrator_stack(opts, tmp) as (orch, endpoint):
        status, body, _ = http("PUT", f"{orch.admin}/limits/bench", {"concurrency": 1_000_000})
        if status not in (200, 201):
            raise RuntimeError(f"setting the limit failed: {status} {body}")
        pids = {"orchestrator": pid_of(orch), "endpoint": pid_of(endpoint)}
        path = f"{orch.ingress}/restate/call/Bench/{NAME}"
        return wrk_phase(opts, NAME, path, POST_LUA, pids, tmp)
