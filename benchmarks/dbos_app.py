"""The ``embedded`` workload's competitor: DBOS 3.4 running the same handlers as workflows.

Runs in the benchmark's own venv (benchmarks/.venv-dbos, made by benchmarks/workloads/
embedded.py), never in the project's:

    BENCH_DBOS_DB=sqlite:///PATH benchmarks/.venv-dbos/bin/python -m uvicorn dbos_app:app \
        --app-dir benchmarks

``POST /ten`` runs a workflow of ten sequential steps (each returns its index; the workflow
returns their sum, 45), ``POST /greet`` one step; the body is a JSON string. DBOS keeps its
system database in SQLite (``BENCH_DBOS_DB``). Steps are ``async`` (DBOS's cheapest path).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from dbos import DBOS, DBOSConfig
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

config: DBOSConfig = {
    "name": "ritornello-bench",
    "system_database_url": os.environ["BENCH_DBOS_DB"],
    "log_level": "WARNING",
}
DBOS(config=config)


@DBOS.step()
async def compose(name: str) -> str:
    return f"Hello, {name}!"


@DBOS.workflow()
async def greet_workflow(name: str) -> str:
    return await compose(name)


@DBOS.step()
async def step(i: int) -> int:
    return i


@DBOS.workflow()
async def ten_workflow(name: str) -> int:
    total = 0
    for i in range(10):
        total += await step(i)
    return total


async def greet(request: Request) -> JSONResponse:
    return JSONResponse(await greet_workflow(await request.json()))


async def ten(request: Request) -> JSONResponse:
    return JSONResponse(await ten_workflow(await request.json()))


@asynccontextmanager
async def lifespan(_: Starlette) -> AsyncIterator[None]:
    DBOS.launch()
    yield
    DBOS.destroy()


app = Starlette(
    routes=[Route("/greet", greet, methods=["POST"]), Route("/ten", ten, methods=["POST"])],
    lifespan=lifespan,
)
