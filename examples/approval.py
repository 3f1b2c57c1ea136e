"""Human-in-the-loop: ask for an approval and wait for it, but not forever.

The awakeable id goes out with the request (here: into the object's state, where a UI or an
e-mail job would pick it up); whoever decides calls the ingress:
``POST /restate/awakeables/{id}/resolve`` with ``true``/``false``. A durable timer races it.
"""

from datetime import timedelta

from ritornello import Context, TerminalError, VirtualObject, select

approvals = VirtualObject("Approvals")


@approvals.handler()
async def request(ctx: Context, request: dict[str, object]) -> str:
    """Wait for a decision on ``request``; give up after ``timeout_s`` seconds (default 1 h)."""
    aid, decision = ctx.awakeable()
    ctx.set("awakeable", aid)
    timeout = timedelta(seconds=float(str(request.get("timeout_s", 3600))))
    try:
        which, approved = await select(decision=decision, timeout=ctx.sleep(timeout))
    except TerminalError as exc:
        return f"rejected: {exc.message}"
    finally:
        ctx.clear("awakeable")
    if which == "timeout":
        return "expired"
    return "approved" if approved else "declined"


@approvals.handler(kind="shared")
async def pending(ctx: Context) -> str | None:
    """The awakeable id of the request waiting on this key, if any."""
    return await ctx.get("awakeable")
