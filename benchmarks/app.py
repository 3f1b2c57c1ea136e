"""Benchmark handlers: ``greet`` (one ctx.run) and ``ten`` (ten sequential ctx.run steps)."""

from ritornello import Context, Endpoint, Service

bench = Service("Bench")


@bench.handler()
async def greet(ctx: Context, name: str) -> str:
    return await ctx.run("compose", lambda: f"Hello, {name}!")


@bench.handler()
async def ten(ctx: Context, name: str) -> int:
    total = 0
    for i in range(10):
        total += await ctx.run(f"step-{i}", lambda i=i: i)
    return total


endpoint = Endpoint([bench])
app = endpoint.asgi()
