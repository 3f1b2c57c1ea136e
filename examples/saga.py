"""A trip-booking saga: book a flight, a hotel and a car; if any step fails for good (or the
booking is cancelled), undo what was done, in reverse order.

Each compensation is registered before its action, so an action that failed half-way (or was
cancelled while it ran) is undone too; compensations are idempotent. Every booking and undo is
logged in the trip's ``Itinerary`` object, which is how the tests check the order.
"""

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from ritornello import Context, Service, TerminalError, VirtualObject

itinerary = VirtualObject("Itinerary")
flights = Service("Flights")
hotels = Service("Hotels")
cars = Service("Cars")
suppliers = Service("CarSupplier")
trips = Service("Trips")


@itinerary.handler()
async def log(ctx: Context, event: str) -> None:
    ctx.set("events", [*(await ctx.get("events") or []), event])


@itinerary.handler(kind="shared")
async def events(ctx: Context) -> list[str]:
    return await ctx.get("events") or []


@flights.handler()
async def book_flight(ctx: Context, trip: dict[str, Any]) -> str:
    await ctx.call(log, "flight booked", key=trip["id"])
    return f"FL-{trip['id']}"


@flights.handler()
async def cancel_flight(ctx: Context, trip_id: str) -> None:
    await ctx.call(log, "flight cancelled", key=trip_id)


@hotels.handler()
async def book_hotel(ctx: Context, trip: dict[str, Any]) -> str:
    await ctx.call(log, "hotel booked", key=trip["id"])
    return f"HT-{trip['id']}"


@hotels.handler()
async def cancel_hotel(ctx: Context, trip_id: str) -> None:
    await ctx.call(log, "hotel cancelled", key=trip_id)


@suppliers.handler()
async def confirm(ctx: Context, trip: dict[str, Any]) -> str:
    """The rental company confirms; a slow one takes its time (a durable timer)."""
    if trip.get("car") == "none-left":
        raise TerminalError("no cars left", status_code=409)
    if trip.get("car") == "slow":
        await ctx.sleep(timedelta(hours=1))
    return f"CR-{trip['id']}"


@cars.handler()
async def book_car(ctx: Context, trip: dict[str, Any]) -> str:
    car = await ctx.call(confirm, trip)
    await ctx.call(log, "car booked", key=trip["id"])
    return car


@cars.handler()
async def cancel_car(ctx: Context, trip_id: str) -> None:
    await ctx.call(log, "car cancelled", key=trip_id)


@trips.handler()
async def book_trip(ctx: Context, trip: dict[str, Any]) -> dict[str, str]:
    """Book everything or nothing."""
    if not isinstance(trip.get("id"), str):
        raise TerminalError("a trip needs a string id", status_code=400)
    undo: list[Callable[[], Awaitable[Any]]] = []
    try:
        undo.append(lambda: ctx.call(cancel_flight, trip["id"]))
        flight = await ctx.call(book_flight, trip)
        undo.append(lambda: ctx.call(cancel_hotel, trip["id"]))
        hotel = await ctx.call(book_hotel, trip)
        undo.append(lambda: ctx.call(cancel_car, trip["id"]))
        car = await ctx.call(book_car, trip)
    except TerminalError:
        for compensate in reversed(undo):
            await compensate()
        raise
    return {"flight": flight, "hotel": hotel, "car": car}
