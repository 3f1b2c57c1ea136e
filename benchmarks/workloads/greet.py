"""``greet``: ``POST /restate/call/Bench/greet`` (a service handler with one ``ctx.run``).

wrk at 1 and 64 clients against ``ritornello serve`` (SQLite) with benchmarks/app.py under
uvicorn."""

from __future__ import annotations

from benchmarks._wrk import POST_LUA
from benchmarks.workloads._common import (
    Options,
    Row,
    orchestrator_stack,
    pid_of,
    tempdir,
    wrk_phase,
)

NAME = "greet"


def run(opts: Options) -> list[Row]:
    with tempdir() as tmp, orchestrator_stack(opts, tmp) as (orch, endpoint):
        pids = {"orchestrator": pid_of(orch), "endpoint": pid_of(endpoint)}
        url = f"{orch.ingress}/restate/call/Bench/{NAME}"
        return wrk_phase(opts, NAME, url, POST_LUA, pids, tmp)
