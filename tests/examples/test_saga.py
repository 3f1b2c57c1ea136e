"""examples/saga.py: book a flight, a hotel and a car, or undo what was booked, in reverse."""

from __future__ import annotations

from datetime import timedelta

import pytest
from saga import book_trip, cars, events, flights, hotels, itinerary, suppliers, trips

from ritornello import TerminalError
from ritornello.testing import Harness, NotFinished

from ._run import run

SERVICES = (trips, flights, hotels, cars, suppliers, itinerary)


def test_a_trip_books_everything() -> None:
    async def test(env: Harness) -> None:
        ref = await env.send(book_trip, {"id": "t1"})
        assert await env.result(ref) == {"flight": "FL-t1", "hotel": "HT-t1", "car": "CR-t1"}
        assert await env.call(events, key="t1") == ["flight booked", "hotel booked", "car booked"]
        await env.check_replay(ref)

    run(test, *SERVICES)


def test_no_car_undoes_the_hotel_and_the_flight_in_reverse_order() -> None:
    async def test(env: Harness) -> None:
        with pytest.raises(TerminalError, match="no cars left") as raised:
            await env.call(book_trip, {"id": "t2", "car": "none-left"})
        assert raised.value.status_code == 409
        assert await env.call(events, key="t2") == [
            "flight booked",
            "hotel booked",
            "car cancelled",
            "hotel cancelled",
            "flight cancelled",
        ]

    run(test, *SERVICES)


def test_a_slow_car_takes_an_hour_of_fake_time() -> None:
    async def test(env: Harness) -> None:
        ref = await env.send(book_trip, {"id": "t3", "car": "slow"})
        with pytest.raises(NotFinished):
            await env.result(ref)
        await env.advance(timedelta(minutes=59))
        assert (await env.status(ref)).status == "suspended"
        await env.advance(timedelta(minutes=1))
        assert (await env.result(ref))["car"] == "CR-t3"

    run(test, *SERVICES)


def test_cancelling_a_trip_while_the_car_is_slow_undoes_everything() -> None:
    async def test(env: Harness) -> None:
        ref = await env.send(book_trip, {"id": "t4", "car": "slow"})
        await env.cancel(ref)
        with pytest.raises(TerminalError, match="cancelled"):
            await env.result(ref)
        assert await env.call(events, key="t4") == [
            "flight booked",
            "hotel booked",
            "car cancelled",
            "hotel cancelled",
            "flight cancelled",
        ]

    run(test, *SERVICES)


def test_a_trip_needs_an_id() -> None:
    async def test(env: Harness) -> None:
        with pytest.raises(TerminalError, match="string id") as raised:
            await env.call(book_trip, {"id": 7})
        assert raised.value.status_code == 400

    run(test, *SERVICES)


def test_crashes_in_every_booking_neither_lose_nor_repeat_one() -> None:
    async def test(env: Harness) -> None:
        for target in (flights, hotels, cars):
            handler = next(h for h in target.handlers if h.name.startswith("book"))
            env.crash_next(handler.fn, before=1)  # its call to the itinerary, lost once
        ref = await env.send(book_trip, {"id": "t5"}, crash_after=2)
        assert (await env.result(ref))["hotel"] == "HT-t5"
        assert await env.call(events, key="t5") == ["flight booked", "hotel booked", "car booked"]
        assert len(env.crashes) == 4

    run(test, *SERVICES)
