"""Ingress helpers that need no server: delay parsing (property-based and by example); the app
refusing a WebSocket."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ritornello.orchestrator import IngressApp, parse_delay
from ritornello.orchestrator.ingress import HttpError


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("10s", 10_000),
        ("500ms", 500),
        ("1m30s", 90_000),
        ("1h", 3_600_000),
        ("2d", 172_800_000),
        ("1m 30s", 90_000),
        ("PT10S", 10_000),
        ("pt0.5s", 500),
        ("PT1H2M3S", 3_723_000),
        ("P1D", 86_400_000),
        ("P1DT1S", 86_401_000),
    ],
)
def test_delays(text: str, ms: int) -> None:
    assert parse_delay(text) == ms


@pytest.mark.parametrize(
    "text", ["", "soon", "10", "s10", "10x", "-5s", "PT", "P", "PTS", "10s junk", "1.5.2s"]
)
def test_invalid_delays_are_400(text: str) -> None:
    with pytest.raises(HttpError) as info:
        parse_delay(text)
    assert info.value.status == 400


@given(st.text(max_size=20))
def test_parse_delay_never_crashes(text: str) -> None:
    try:
        assert parse_delay(text) >= 0
    except HttpError as exc:
        assert exc.status == 400


@given(st.integers(0, 10**6), st.sampled_from(["ms", "s", "m", "h"]))
def test_units(n: int, unit: str) -> None:
    assert parse_delay(f"{n}{unit}") == n * {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}[unit]


def test_a_websocket_is_closed_before_it_is_accepted() -> None:
    """Under a server that hands the app WebSockets (``ritornello serve`` refuses them before
    the app), the ingress closes one before accepting it: the server answers 403, and logs no
    error as it does for an app that returns without a word (and answers 500)."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    app = IngressApp(cast(Any, None))  # the engine is not reached
    scope = {"type": "websocket", "path": "/restate/call/Greeter/greet", "headers": []}
    asyncio.run(app(scope, receive, send))
    assert sent == [{"type": "websocket.close", "code": 1008}]
