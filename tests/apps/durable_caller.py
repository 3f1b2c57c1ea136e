"""A Ritornello service that calls and sends to an AWS durable function registered as service
``Orders`` (tests/integration/test_aws_durable.py): ``ctx.call`` and ``ctx.send`` by name."""

from __future__ import annotations

from typing import Any

from ritornello import Context, Endpoint, Service

caller = Service("Caller")


@caller.handler()
async def order(ctx: Context, event: dict[str, Any]) -> Any:
    result = await ctx.call("Orders/run", event)
    return {"via": "ctx.call", "result": result}


app = Endpoint([caller]).asgi()
