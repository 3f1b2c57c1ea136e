"""Ritornello-SDK services that call and are called by the Restate-SDK app (``py_app.py``):
one engine, two worlds."""

from ritornello import Context, Endpoint, Service

rgreeter = Service("RGreeter")


@rgreeter.handler()
async def greet(ctx: Context, name: str) -> str:
    return await ctx.run("rgreet", lambda: f"Hi {name} from Ritornello")


@rgreeter.handler()
async def call_restate(ctx: Context, name: str) -> str:
    """Greeter.greet of the Restate-SDK app, called from a Ritornello handler."""
    return await ctx.call("Greeter/greet", name)


@rgreeter.handler()
async def resolve_restate(ctx: Context, req: dict[str, str]) -> None:
    """Resolve a Restate SDK's awakeable (``sign_1...``) from a Ritornello handler."""
    ctx.resolve_awakeable(req["id"], req["value"])


endpoint = Endpoint([rgreeter])
app = endpoint.asgi()
