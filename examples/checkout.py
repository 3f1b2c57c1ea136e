"""A checkout that calls two services: reserve stock, then charge, then confirm."""

from ritornello import Context, Service, TerminalError

inventory = Service("Inventory")
payments = Service("Payments")
checkout = Service("Checkout")

PRICES = {"apple": 50, "pear": 70, "fig": 120}


@inventory.handler()
async def reserve(ctx: Context, items: list[str]) -> int:
    """Price the items; unknown items are a terminal error (no retry)."""
    unknown = [i for i in items if i not in PRICES]
    if unknown:
        raise TerminalError(f"unknown items: {', '.join(unknown)}", status_code=400)
    return sum(PRICES[i] for i in items)


@payments.handler()
async def charge(ctx: Context, order: dict[str, object]) -> str:
    """Charge once: the payment id is deterministic (same on every replay) and the charge is a
    journaled step, so a retry never charges twice."""
    payment_id = f"pay-{ctx.uuid().hex[:12]}"
    return await ctx.run("charge", lambda: payment_id)


@checkout.handler()
async def place_order(ctx: Context, order: dict[str, object]) -> dict[str, object]:
    """Reserve, charge, confirm: each call is journaled, so a retry never charges twice."""
    items = order.get("items")
    if not isinstance(items, list) or not items:
        raise TerminalError("an order needs a non-empty list of items", status_code=400)
    total = await ctx.call(reserve, items)
    payment = await ctx.call(charge, {"customer": order.get("customer"), "amount": total})
    return {"total": total, "payment": payment, "status": "confirmed"}
