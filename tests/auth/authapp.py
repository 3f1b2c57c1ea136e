"""The endpoint of the auth tests: ``Echo/headers`` answers with the request headers it sees.

Built at import, so ``RITORNELLO_SIGNING_SECRET`` in the process environment decides whether it
checks signatures (uvicorn ``authapp:app``, or the Lambda emulator's ``lambda_handler``)."""

from __future__ import annotations

from typing import Any

from ritornello import Context, Endpoint, Service

echo = Service("Echo")


@echo.handler()
async def headers(ctx: Context, name: str) -> dict[str, Any]:
    return {"name": name, "headers": dict(ctx.headers)}


endpoint = Endpoint([echo])
app = endpoint.asgi()
lambda_handler = endpoint.lambda_handler()
