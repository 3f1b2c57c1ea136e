"""A service with one durable step."""

from ritornello import Context, Service

greeter = Service("Greeter")


@greeter.handler()
async def greet(ctx: Context, name: str) -> str:
    """Say hello; the greeting is composed once, even if the handler is retried."""
    return await ctx.run("compose", lambda: f"Hello, {name}!")
