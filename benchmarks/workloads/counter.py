"""``counter``: the virtual object ``Counter/add`` (state read + write, exclusive per key), the
key going round 100 keys (``POST /restate/call/Counter/k{0..99}/add`` with body ``1``; a wrk Lua
script picks the key of each request).

wrk at 1 and 64 clients against ``ritornello serve`` (SQLite) with benchmarks/app.py under
uvicorn."""

from __future__ import annotations

from benchmarks._wrk import COUNTER_LUA
from benchmarks.workloads._common import (
    Options,
    Row,
    orchestrator_stack,
    pid_of,
    tempdir,
    wrk_phase,
)

NAME = "counter"


def run(opts: Options) -> list[Row]:
    with tempdir() as tmp, orchestrator_stack(opts, tmp) as (orch, endpoint):
        pids = {"orchestrator": pid_of(orch), "endpoint": pid_of(endpoint)}
        return wrk_phase(opts, NAME, orch.ingress, COUNTER_LUA, pids, tmp)
