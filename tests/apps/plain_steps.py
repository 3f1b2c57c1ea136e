"""Handlers of plain steps (``ctx.run`` after ``ctx.run``, each adding one to a running total):
the one-step and ten-step handlers the cost benchmarks price (benchmarks/dynamo_cost.py,
benchmarks/lambda_cost_app.py) and the DynamoDB journal-tail tests drive
(tests/store/test_dynamodb_tail.py).

Step ``i`` is named ``step-I`` and journals the total after it, so a replay that diverged
fails by name and a lost or repeated step shows in the result: ``n`` in, ``n + steps`` out.
"""

from __future__ import annotations

from ritornello import Context, Service


async def add_steps(ctx: Context, n: int, steps: int) -> int:
    """``steps`` plain steps ``step-0``, ``step-1``, ... each adding one to ``n``: ``n + steps``."""
    total = n
    for i in range(steps):
        total = await ctx.run(f"step-{i}", lambda t=total: t + 1)  # type: ignore[misc]
    return total


def one_and_ten(name: str) -> Service:
    """A new service ``name`` with handlers ``one`` (one step, named ``step``) and ``ten``
    (``add_steps`` ten times); its caller may add more handlers."""
    svc = Service(name)

    @svc.handler()
    async def one(ctx: Context, n: int) -> int:
        return await ctx.run("step", lambda: n + 1)

    @svc.handler()
    async def ten(ctx: Context, n: int) -> int:
        return await add_steps(ctx, n, 10)

    return svc
