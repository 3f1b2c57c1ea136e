"""Handlers for the types-through-a-crash test: steps, state, a call and an awakeable each
hand back a typed value (dataclass, pydantic model, TypedDict, enum, datetime, Decimal, bytes,
None); then a step kills the endpoint's process the first time it runs (a marker file in
RITORNELLO_TEST_DIR says it did), so the next attempt replays every typed value from the
journal. The handler answers, for each value, its type's name and whether it equals the
expected value: what the replayed attempt saw."""

import dataclasses
import enum
import os
import signal
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, TypedDict

import pydantic

from ritornello import Context, Endpoint, VirtualObject, Workflow

box = VirtualObject("TypesBox")
flow = Workflow("TypesFlow")


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclasses.dataclass
class Line:
    sku: str
    price: Decimal
    at: datetime


class Customer(pydantic.BaseModel):
    name: str
    since: datetime


class Totals(TypedDict):
    count: int
    amount: str


WHEN = datetime(2026, 12, 5, 1, 2, 3, 456789, tzinfo=timezone(timedelta(hours=2)))
EXPECTED: dict[str, Any] = {
    "dataclass": Line("A-1", Decimal("19.99"), WHEN),
    "pydantic": Customer(name="Ann", since=WHEN),
    "typeddict": Totals(count=2, amount="39.98"),
    "enum": Color.BLUE,
    "datetime": WHEN,
    "decimal": Decimal("0.1000000000000000055511151231257827"),
    "bytes": bytes(range(256)),
    "none": None,
}


def make_line() -> Line:
    return EXPECTED["dataclass"]


def make_customer() -> Customer:
    return EXPECTED["pydantic"]


def make_totals() -> Totals:
    return EXPECTED["typeddict"]


def make_color() -> Color:
    return EXPECTED["enum"]


def make_when() -> datetime:
    return EXPECTED["datetime"]


def make_decimal() -> Decimal:
    return EXPECTED["decimal"]


def make_bytes() -> bytes:
    return EXPECTED["bytes"]


def make_none() -> None:
    return None


def die_once(name: str = "died") -> str:
    marker = Path(os.environ["RITORNELLO_TEST_DIR"]) / name
    if not marker.exists():
        marker.write_text("x")
        os.kill(os.getpid(), signal.SIGKILL)
    return "survived"


@box.handler(kind="shared")
async def customer(ctx: Context) -> Customer:
    return EXPECTED["pydantic"]


@box.handler()
async def roundtrip(ctx: Context) -> dict[str, Any]:
    seen: dict[str, Any] = {
        "dataclass": await ctx.run("dataclass", make_line),
        "pydantic": await ctx.run("pydantic", make_customer),
        "typeddict": await ctx.run("typeddict", make_totals),
        "enum": await ctx.run("enum", make_color),
        "datetime": await ctx.run("datetime", make_when),
        "decimal": await ctx.run("decimal", make_decimal),
        "bytes": await ctx.run("bytes", make_bytes),
        "none": await ctx.run("none", make_none),
    }
    ctx.set("line", EXPECTED["dataclass"])
    seen["state"] = await ctx.get("line", type_hint=Line)
    seen["call"] = await ctx.call(customer, key=ctx.key)
    aid, promise = ctx.awakeable(type_hint=Color)
    ctx.resolve_awakeable(aid, Color.BLUE)
    seen["awakeable"] = await promise
    await ctx.run("die", die_once)
    expected = {**EXPECTED, "state": EXPECTED["dataclass"], "call": EXPECTED["pydantic"]}
    expected["awakeable"] = Color.BLUE
    return {
        name: [type(value).__name__, value == expected[name], ctx.attempt]
        for name, value in seen.items()
    }


@flow.main()
async def settle(ctx: Context, line: Line) -> dict[str, Any]:
    """A typed input, a promise resolved and read back typed, then the kill."""
    await ctx.promise("line").resolve(line)
    seen = {
        "input": line,
        "promise": await ctx.promise("line").value(type_hint=Line),
        "peek": await ctx.promise("line").peek(type_hint=Line),
    }
    await ctx.run("die", die_once, "died-flow")
    return {
        name: [type(value).__name__, value == EXPECTED["dataclass"], ctx.attempt]
        for name, value in seen.items()
    }


endpoint = Endpoint([box, flow])
app = endpoint.asgi()
lambda_handler = endpoint.lambda_handler()
