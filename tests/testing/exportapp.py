"""The app ``test_export`` serves with ``ritornello dev``: a shipping handler as it was when
the invocations were recorded (the test replays them against changed code)."""

from datetime import timedelta

from ritornello import Context, Endpoint, Service

shipping = Service("Shipping")


@shipping.handler()
async def ship(ctx: Context, order: dict[str, object]) -> str:
    label = await ctx.run("label", lambda: f"label-{order['id']}")
    if order.get("wait"):
        await ctx.sleep(timedelta(hours=1))
    await ctx.run("notify", lambda: None)
    return label


endpoint = Endpoint([shipping])
