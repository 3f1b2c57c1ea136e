"""examples/checkout.py: a handler that calls two services."""

from __future__ import annotations

import pytest
from checkout import charge, checkout, inventory, payments, place_order, reserve

from ritornello import TerminalError
from ritornello.testing import Harness

from ._run import run

SERVICES = (checkout, inventory, payments)


def test_an_order_is_priced_charged_and_confirmed() -> None:
    async def test(env: Harness) -> None:
        ref = await env.send(place_order, {"items": ["apple", "fig"], "customer": "ann"})
        out = await env.result(ref)
        assert out["total"] == 170 and out["status"] == "confirmed"
        assert out["payment"].startswith("pay-")
        kinds = [(e["kind"], e.get("name")) for e in await env.journal(ref)]
        assert kinds == [
            ("input", None),
            ("call", "Inventory/reserve"),
            ("call", "Payments/charge"),
            ("output", None),
        ]
        await env.check_replay(ref)

    run(test, *SERVICES)


def test_bad_orders_fail_without_retry() -> None:
    async def test(env: Harness) -> None:
        with pytest.raises(TerminalError, match="non-empty list") as raised:
            await env.call(place_order, {"items": []})
        assert raised.value.status_code == 400
        with pytest.raises(TerminalError, match="unknown items: kiwi"):
            await env.call(place_order, {"items": ["kiwi"]})
        with pytest.raises(TerminalError, match="unknown items"):
            await env.call(reserve, ["apple", "kiwi"])

    run(test, *SERVICES)


def test_a_crash_anywhere_journals_one_charge_with_one_payment_id() -> None:
    async def test(env: Harness) -> None:
        order = {"items": ["pear"], "customer": "bo"}
        # place_order: input 0, call reserve 1, call charge 2, output 3
        for crash in ({"crash_after": 1}, {"crash_after": 2}, {"crash_before": 2}):
            ref = await env.send(place_order, order, **crash)
            out = await env.result(ref)
            calls = [e for e in await env.journal(ref) if e["kind"] == "call"]
            assert [c["name"] for c in calls] == ["Inventory/reserve", "Payments/charge"]
            charged = await env.journal(calls[1]["id"])  # the callee: input, run, output
            assert [e["kind"] for e in charged] == ["input", "run", "output"]
            assert charged[1]["value"] == out["payment"]
        # the charge itself dies after running its step, before committing it: the step
        # runs again and makes the same payment id (drawn from the invocation's seed)
        env.crash_next(charge, before=1)
        ref = await env.send(place_order, order)
        out = await env.result(ref)
        charge_id = [e for e in await env.journal(ref) if e["kind"] == "call"][1]["id"]
        assert (await env.journal(charge_id))[1]["value"] == out["payment"]
        assert env.crashes[-1].invocation_id == charge_id
        await env.check_replay(charge_id)

    run(test, *SERVICES)
