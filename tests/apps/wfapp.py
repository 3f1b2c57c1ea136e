"""A workflow for the workflow tests: ``run`` sleeps, then waits on promise ``p``."""

from datetime import timedelta

from ritornello import Context, Endpoint, Service, TerminalError, Workflow

flow = Workflow("Flow")
starter = Service("Starter")


@flow.main()
async def run(ctx: Context, delay_ms: int) -> str:
    ctx.set("stage", "sleeping")
    await ctx.sleep(timedelta(milliseconds=delay_ms))
    ctx.set("stage", "waiting")
    try:
        value = await ctx.promise("p").value()
    except TerminalError as exc:
        return f"rejected: {exc.message}"
    ctx.set("stage", "done")
    return f"got {value}"


@flow.handler()
async def resolve(ctx: Context, value: str) -> str:
    await ctx.promise("p").resolve(value)
    return "resolved"


@flow.handler()
async def reject(ctx: Context, why: str) -> str:
    await ctx.promise("p").reject(why)
    return "rejected"


@flow.handler()
async def peek(ctx: Context) -> object:
    return {"promise": await ctx.promise("p").peek(), "stage": await ctx.get("stage")}


@starter.handler()
async def start_twice(ctx: Context, wf_id: str) -> list[object]:
    """Start a workflow from a handler, then again: the second call is refused."""
    first = ctx.send(run, 0, key=wf_id).invocation_id
    try:
        await ctx.call(run, 0, key=wf_id)
    except TerminalError as exc:
        return [first.startswith("inv_"), exc.status_code]
    return [first.startswith("inv_"), "second call accepted"]


endpoint = Endpoint([flow, starter])
app = endpoint.asgi()
