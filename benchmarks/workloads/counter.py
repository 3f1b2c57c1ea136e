"""``counter``: the virtual object ``Counter/add`` (state read + write, exclusive per key), the
key going round 100 keys (``POST /restate/call/Counter/k{0..99}/add`` with body ``1``; a wrk Lua
script picks the key of each request).

wrk at 1 and 64 clients against ``ritornello serve`` (SQLite) with benchmarks/app.py under
uvicorn."""

from __future__ import annotations

from benchmarks._wrk import COUNTER_LUA
from benchmarks.workloads._common import Options, Row, wrk_against_serve

NAME = "counter"


def run(opts: Options) -> list[Row]:
    return wrk_against_serve(opts, NAME, "", COUNTER_LUA)
