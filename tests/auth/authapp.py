"""The endpoint of the auth tests: ``Echo/headers`` answers with the request headers it sees;
``Steps/count`` runs ``n`` steps, one checkpoint each (what a replayed stream would run again).

Built at import, so ``RITORNELLO_SIGNING_SECRET`` in the process environment decides whether it
checks signatures (uvicorn ``authapp:app``, or the Lambda emulator's ``lambda_handler``)."""

from __future__ import annotations

from typing import Any

from ritornello import Context, Endpoint, Service

echo = Service("Echo")
steps = Service("Steps")


@echo.handler()
async def headers(ctx: Context, name: str) -> dict[str, Any]:
    return {"name": name, "headers": dict(ctx.headers)}


@steps.handler()
async def count(ctx: Context, n: int) -> int:
    total = 0
    for i in range(n):

        async def step(i: int = i) -> int:
            return i

        total += await ctx.run(f"step-{i}", step)
    return total


endpoint = Endpoint([echo, steps])
app = endpoint.asgi()
lambda_handler = endpoint.lambda_handler()
