"""examples/app.py and lambda_app.py: every example behind one endpoint."""

from __future__ import annotations

import pytest
from app import SERVICES, endpoint
from greeter import greet
from lambda_app import selected_services

from ritornello.testing import Harness

from ._run import run


def test_the_whole_app_serves_every_example() -> None:
    async def test(env: Harness) -> None:
        assert await env.call(greet, "all") == "Hello, all!"
        assert await env.call("Counter/add", 1, key="x") == 1
        out = await env.call("Checkout/place_order", {"items": ["apple"]})
        assert out["status"] == "confirmed"

    run(test, endpoint)


def test_lambda_app_picks_services_by_name() -> None:
    assert [s.name for s in selected_services("Greeter, Counter")] == ["Greeter", "Counter"]
    assert selected_services("") == list(SERVICES)
    with pytest.raises(RuntimeError, match="unknown services"):
        selected_services("Greeter,Nope")
