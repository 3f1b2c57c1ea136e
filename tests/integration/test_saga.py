"""The trip-booking saga over loopback: compensations run in reverse order on a terminal error,
and a cancel reaches a grandchild call (the car supplier's durable timer) and unwinds it."""

from __future__ import annotations

import time

from tests.integration.conftest import Stack


def _events(stack: Stack, trip: str) -> list[str]:
    return stack.call(f"/restate/call/Itinerary/{trip}/events")[1]  # type: ignore[return-value]


def test_saga_books_everything(stack: Stack) -> None:
    status, body, _ = stack.call("/restate/call/Trips/book_trip", {"id": "t1", "car": "any"})
    assert (status, body) == (200, {"flight": "FL-t1", "hotel": "HT-t1", "car": "CR-t1"})
    assert _events(stack, "t1") == ["flight booked", "hotel booked", "car booked"]


def test_saga_compensates_in_reverse_order(stack: Stack) -> None:
    status, body, _ = stack.call("/restate/call/Trips/book_trip", {"id": "t2", "car": "none-left"})
    assert (status, body) == (409, {"message": "no cars left"})
    assert _events(stack, "t2") == [
        "flight booked",
        "hotel booked",
        "car cancelled",
        "hotel cancelled",
        "flight cancelled",
    ]


def test_cancel_reaches_the_grandchild_and_compensates(stack: Stack) -> None:
    _, body, _ = stack.call("/restate/send/Trips/book_trip", {"id": "t3", "car": "slow"})
    trip = body["invocationId"]  # type: ignore[index]
    # Wait until the car supplier (trip -> car booking -> supplier) sleeps on its timer.
    supplier = None
    for _ in range(200):
        listed = stack.admin("GET", "/invocations?service=CarSupplier&status=suspended")[1]
        if listed["invocations"]:  # type: ignore[index]
            supplier = listed["invocations"][-1]["id"]  # type: ignore[index]
            break
        time.sleep(0.02)
    assert supplier is not None
    status, body, _ = stack.admin("PATCH", f"/invocations/{trip}/cancel")
    assert status == 200, body
    assert stack.get(f"/restate/attach/{trip}")[:2] == (409, {"message": "cancelled"})
    # The grandchild was cancelled at its timer, not left sleeping for an hour.
    assert stack.get(f"/restate/attach/{supplier}")[:2] == (409, {"message": "cancelled"})
    assert _events(stack, "t3") == [
        "flight booked",
        "hotel booked",
        "car cancelled",
        "hotel cancelled",
        "flight cancelled",
    ]
    assert stack.admin("PATCH", f"/invocations/{trip}/cancel")[0] == 409
