"""``greet``: ``POST /restate/call/Bench/greet`` (a service handler with one ``ctx.run``).

wrk at 1 and 64 clients against ``ritornello serve`` (SQLite) with benchmarks/app.py under
uvicorn."""

from __future__ import annotations

from benchmarks._wrk import POST_LUA
from benchmarks.workloads._common import Options, Row, wrk_against_serve

NAME = "greet"


def run(opts: Options) -> list[Row]:
    return wrk_against_serve(opts, NAME, f"/restate/call/Bench/{NAME}", POST_LUA)
