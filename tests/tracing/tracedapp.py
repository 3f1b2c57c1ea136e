"""Handlers for the tracing tests: ``ritornello dev tests/tracing/tracedapp.py``. ``Trip/book``
runs a step, sleeps, and calls ``Hotel/reserve`` (which runs a step of its own)."""

from datetime import timedelta

from ritornello import Context, Endpoint, Service

trip = Service("Trip")
hotel = Service("Hotel")


@hotel.handler()
async def reserve(ctx: Context, city: str) -> str:
    return await ctx.run("pick_room", lambda: f"room in {city}")


@trip.handler()
async def book(ctx: Context, city: str) -> str:
    flight = await ctx.run("buy_flight", lambda: f"flight to {city}")
    await ctx.sleep(timedelta(milliseconds=50))
    room = await ctx.call(reserve, city)
    return f"{flight}, {room}"


@trip.handler()
async def wait(ctx: Context, seconds: float) -> str:
    """Sleep durably (an orchestrator restart in between resumes it), then run a step."""
    await ctx.sleep(timedelta(seconds=seconds))
    return await ctx.run("after_sleep", lambda: "woke")


endpoint = Endpoint([trip, hotel])
