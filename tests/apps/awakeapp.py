"""Handlers waiting on awakeables, for the awakeable tests."""

from ritornello import Context, Endpoint, TerminalError, VirtualObject

approvals = VirtualObject("Approval")


@approvals.handler()
async def request(ctx: Context, what: str) -> str:
    """Wait for a decision from outside; the awakeable id is published in state."""
    aid, decision = ctx.awakeable()
    ctx.set("aid", aid)
    try:
        verdict = await decision
    except TerminalError as exc:
        return f"{what}: rejected ({exc.message})"
    return f"{what}: {verdict}"


@approvals.handler(kind="shared")
async def pending(ctx: Context) -> str | None:
    return await ctx.get("aid")


@approvals.handler(kind="shared")
async def decide(ctx: Context, verdict: dict[str, str]) -> None:
    """Resolve another key's awakeable from inside a handler."""
    ctx.resolve_awakeable(verdict["aid"], verdict["verdict"])


endpoint = Endpoint([approvals])
app = endpoint.asgi()
