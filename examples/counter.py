"""A virtual object: one counter per key, updated one call at a time."""

from ritornello import Context, VirtualObject

counter = VirtualObject("Counter")


@counter.handler()
async def add(ctx: Context, delta: int) -> int:
    """Add ``delta`` and return the new value (exclusive: one at a time per key)."""
    value = (await ctx.get("count") or 0) + delta
    ctx.set("count", value)
    return value


@counter.handler(kind="shared")
async def get(ctx: Context) -> int:
    """Read the value (shared: runs beside ``add``)."""
    return await ctx.get("count") or 0


@counter.handler()
async def reset(ctx: Context) -> None:
    """Forget the count."""
    ctx.clear("count")
