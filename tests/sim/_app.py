"""The handlers the simulation drives: one service that runs a scripted list of operations,
one virtual object that keeps a running total per key.

Steps are async (``ctx.run`` with a coroutine function): a sync step would go to a worker
thread, and threads are real time, which the simulation does not have.

``flow`` runs ``ops``, a list of ``[kind, *args]``; its result is one item per operation, each
computable from the scenario alone (``expected_item``), so the harness knows every result in
advance. Awakeable ids are published in ``AWAKEABLES`` (by label) for the harness to resolve
from outside; the publication is a side effect, repeated on every replay, with the same id
(the journal's).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from ritornello import Context, Service, VirtualObject

sim_svc = Service("SimSvc")
sim_obj = VirtualObject("SimObj")

#: awakeable label -> awakeable id, filled by running handlers (the harness resets it).
AWAKEABLES: dict[str, str] = {}


async def _value(v: Any) -> Any:
    return v


@sim_svc.handler()
async def echo(ctx: Context, value: Any) -> Any:
    return await ctx.run("echo", _value, value)


@sim_svc.handler()
async def flow(ctx: Context, ops: list[list[Any]]) -> list[Any]:
    out: list[Any] = []
    for op in ops:
        kind = op[0]
        if kind == "run":
            out.append(await ctx.run("step", _value, op[1]))
        elif kind == "sleep":
            await ctx.sleep(timedelta(milliseconds=op[1]))
            out.append(None)
        elif kind == "call":
            out.append(await ctx.call(echo, op[1]))
        elif kind == "add":
            amount, _total = await ctx.call(add, op[2], key=op[1])
            out.append(amount)
        elif kind == "send":
            ctx.send(add, op[2], key=op[1], delay=timedelta(milliseconds=op[3]))
            out.append("sent")
        elif kind == "awake":
            awakeable_id, fut = ctx.awakeable()
            AWAKEABLES[op[1]] = awakeable_id
            out.append(await fut)
        else:
            raise ValueError(f"unknown op {kind!r}")
    return out


def expected_item(op: list[Any]) -> Any:
    """What ``flow`` returns for ``op``."""
    kind = op[0]
    if kind in ("run", "call"):
        return op[1]
    if kind == "add":
        return op[2]
    if kind == "send":
        return "sent"
    if kind == "awake":
        return awake_value(op[1])
    return None


def awake_value(label: str) -> str:
    return "woken-" + label


@sim_obj.handler()
async def add(ctx: Context, amount: int) -> list[int]:
    """Add ``amount`` to the key's total; returns [amount, new total]. Totals returned on one
    key are all different when its exclusive handlers never overlap."""
    total = await ctx.get("total") or 0
    if amount % 3 == 0:  # a suspension in the middle of the read-modify-write
        await ctx.sleep(timedelta(milliseconds=50 * amount))
    ctx.set("total", total + amount)
    return [amount, total + amount]


@sim_obj.handler(kind="shared")
async def peek(ctx: Context) -> int:
    return int(await ctx.get("total") or 0)
