"""A handler for the schedule tests: answers its input (a label) and its invocation id."""

from ritornello import Context, Endpoint, Service

tick = Service("Tick")


@tick.handler()
async def beat(ctx: Context, label: str) -> dict[str, str]:
    return {"label": label, "id": ctx.invocation_id}


app = Endpoint([tick]).asgi()
