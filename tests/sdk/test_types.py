"""Types everywhere (issue 19): typed JSON and serdes in ``ritornello.sdk._serde``, and typed
handler inputs and outputs, raw bytes and custom serdes through an endpoint.

The round trip ``decode(encode(v, T), T) == v`` is checked by property for every supported
type, nested, through real JSON text (what the journal keeps); the representations are pinned
by example; bad values name where they are wrong; handlers are driven through the in-process
endpoint, replayed at every step (``always_replay``), and must answer the same as without.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import functools
import json
import subprocess
import sys
import typing
import uuid
from collections.abc import Awaitable, Coroutine
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import (
    Annotated,
    Any,
    Generic,
    Literal,
    NamedTuple,
    NewType,
    NotRequired,
    Optional,
    Required,
    TypeVar,
)

import pydantic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typing_extensions import TypedDict

from ritornello import (
    BytesSerde,
    Context,
    Endpoint,
    JsonSerde,
    Serde,
    Service,
    VirtualObject,
)
from ritornello.protocol import DiscoveryResponse
from ritornello.sdk._serde import decode, encode, return_hint
from ritornello.sdk._service import handler_spec

from ._driver import Driver

# -- the types the tests use (module level: annotations resolve here) -------------------------


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Size(enum.IntEnum):
    S = 1
    M = 2


class Corner(enum.Enum):  # values that are not JSON themselves
    TOP = (0, 1)
    DAY = date(2024, 1, 1)


@dataclass(frozen=True)
class Item:
    name: str
    price: Decimal
    tags: frozenset[str] = frozenset()
    when: datetime | None = None


@dataclass
class Order:
    items: list[Item]
    color: Color = Color.RED
    notes: dict[str, str] = field(default_factory=dict)
    total: Decimal = field(init=False, default=Decimal(0))

    def __post_init__(self) -> None:
        self.total = sum((i.price for i in self.items), Decimal(0))


class Line(TypedDict):
    sku: str
    qty: int
    note: NotRequired[str]


class StdLine(typing.TypedDict):  # typing's own (typing_extensions has another on 3.11)
    sku: str
    qty: int
    note: typing.NotRequired[str]


class Partial(TypedDict, total=False):
    sku: Required[str]
    qty: int


class Customer(pydantic.BaseModel):
    name: str
    since: date
    balance: Decimal


class Point(NamedTuple):
    x: int
    y: int = 0


T = TypeVar("T")


@dataclass
class Box(Generic[T]):
    value: T
    others: list[T] = field(default_factory=list)


UserId = NewType("UserId", int)


# -- representations, by example ---------------------------------------------------------------

TZ = timezone(timedelta(hours=2))
UID = uuid.UUID("12345678-1234-5678-1234-567812345678")

EXAMPLES: list[tuple[Any, Any, Any]] = [
    (None, type(None), None),
    (datetime(2024, 5, 6, 7, 8, 9, 10, tzinfo=TZ), datetime, "2024-05-06T07:08:09.000010+02:00"),
    (datetime(2024, 5, 6, 7, 8), datetime, "2024-05-06T07:08:00"),
    (date(2024, 5, 6), date, "2024-05-06"),
    (time(7, 8, 9), time, "07:08:09"),
    (Decimal("1.10"), Decimal, "1.10"),
    (Decimal("-2E+3"), Decimal, "-2E+3"),
    (b"\x00\xffhi", bytes, "AP9oaQ=="),
    (bytearray(b"hi"), bytearray, "aGk="),
    (Color.GREEN, Color, "green"),
    (Size.M, Size, 2),
    (Corner.TOP, Corner, [0, 1]),
    (Corner.DAY, Corner, "2024-01-01"),
    (UID, uuid.UUID, "12345678-1234-5678-1234-567812345678"),
    ((1, "a"), tuple[int, str], [1, "a"]),
    ({3, 1, 2}, set[int], [1, 2, 3]),
    (frozenset({Color.RED, Color.GREEN}), frozenset[Color], ["green", "red"]),
    ({1: "a", 2: "b"}, dict[int, str], {"1": "a", "2": "b"}),
    ({Color.RED: UID}, dict[Color, uuid.UUID], {"red": str(UID)}),
    ({date(2024, 1, 1): 1}, dict[date, int], {"2024-01-01": 1}),
    (Point(1, 2), Point, [1, 2]),
    (UserId(5), UserId, 5),
    (
        Item("a", Decimal("1.5"), frozenset({"y", "x"}), datetime(2024, 1, 1)),
        Item,
        {"name": "a", "price": "1.5", "tags": ["x", "y"], "when": "2024-01-01T00:00:00"},
    ),
    (
        Order([Item("a", Decimal("1.5"))], notes={"k": "v"}),
        Order,
        {
            "items": [{"name": "a", "price": "1.5", "tags": [], "when": None}],
            "color": "red",
            "notes": {"k": "v"},
            "total": "1.5",
        },
    ),
    ({"sku": "x", "qty": 2}, Line, {"sku": "x", "qty": 2}),
    (
        Customer(name="ann", since=date(2020, 2, 3), balance=Decimal("9.99")),
        Customer,
        {"name": "ann", "since": "2020-02-03", "balance": "9.99"},
    ),
    (Box(Decimal(1), [Decimal("2.5")]), Box[Decimal], {"value": "1", "others": ["2.5"]}),
    ("b", Literal["a", "b"], "b"),
    (Color.RED, Literal[Color.RED, 3], "red"),
    (Decimal("3"), Annotated[Decimal, "money"], "3"),
    (None, Optional[Decimal], None),  # noqa: UP045 - Optional itself is what is tested
    ([Decimal("1"), None], list[Decimal | None], ["1", None]),
]


@pytest.mark.parametrize(("value", "hint", "expected"), EXAMPLES)
def test_each_type_has_one_json_representation(value: Any, hint: Any, expected: Any) -> None:
    encoded = encode(value, hint)
    assert encoded == expected
    assert json.loads(json.dumps(encoded)) == encoded  # JSON, nothing else
    decoded = decode(encoded, hint)
    assert decoded == value and type(decoded) is type(value)
    assert encode(decoded, hint) == encoded  # the same again on every replay


def test_untyped_decode_is_a_deep_copy_of_the_json() -> None:
    journaled = {"a": [1, {"b": 2}]}
    seen = decode(journaled)
    assert seen == journaled and seen is not journaled
    seen["a"][1]["b"] = 3
    assert journaled == {"a": [1, {"b": 2}]}
    assert decode("2024-01-01") == "2024-01-01"  # no hint: the JSON as it is
    assert decode(None, Any) is None


def test_encode_returns_a_fresh_value_and_decode_a_fresh_one() -> None:
    order = Order([Item("a", Decimal(1))], notes={"k": "v"})
    encoded = encode(order)
    order.notes["k"] = "changed"
    order.items.append(Item("b", Decimal(2)))
    assert encoded["notes"] == {"k": "v"} and len(encoded["items"]) == 1
    plain = {"xs": [1, 2]}
    copy = encode(plain)
    plain["xs"].append(3)
    assert copy == {"xs": [1, 2]}
    decoded = decode(copy, dict[str, list[int]])
    decoded["xs"].append(9)
    assert copy == {"xs": [1, 2]}


def test_fields_outside_init_come_back_as_they_were() -> None:
    order = Order([Item("a", Decimal(1))])
    order.total = Decimal("99")  # changed after __post_init__
    assert decode(encode(order), Order).total == Decimal("99")


@pytest.mark.parametrize("line", [Line, StdLine])
def test_typed_dicts_check_required_and_optional_keys(line: Any) -> None:
    name = line.__name__
    assert decode({"sku": "x", "qty": 1, "note": "n"}, line) == {"sku": "x", "qty": 1, "note": "n"}
    assert decode({"sku": "x", "qty": 1}, line) == {"sku": "x", "qty": 1}
    assert decode({"sku": "x"}, Partial) == {"sku": "x"}
    with pytest.raises(TypeError, match=f"{name} is missing key 'qty'"):
        decode({"sku": "x"}, line)
    with pytest.raises(TypeError, match="Partial is missing key 'sku'"):
        decode({"qty": 1}, Partial)
    with pytest.raises(TypeError, match=f"{name} has no key 'colour'"):
        decode({"sku": "x", "qty": 1, "colour": "red"}, line)
    with pytest.raises(TypeError, match=rf"^{name}\.qty: expected int, got a string$"):
        decode({"sku": "x", "qty": "1"}, line)


@pytest.mark.parametrize(
    ("value", "hint", "error", "message"),
    [
        (
            {
                "items": [
                    {"name": "a", "price": "1"},
                    {"name": "b", "price": "2"},
                    {"name": "c", "price": 3},
                ]
            },
            Order,
            TypeError,
            "Order.items[2].price: expected a decimal string, got a number",
        ),
        ({"items": [], "extra": 1}, Order, TypeError, "Order has no field 'extra'"),
        ({}, Order, TypeError, "Order is missing field 'items'"),
        ("nope", Order, TypeError, "expected an object for Order, got a string"),
        ("x", Decimal, ValueError, "expected a decimal string, got 'x'"),
        (5, datetime, TypeError, "expected an ISO 8601 datetime string, got a number"),
        ("monday", date, ValueError, "expected an ISO 8601 date string, got 'monday'"),
        ("not base64!", bytes, ValueError, "expected base64 text, got 'not base64!'"),
        ("aGk", bytes, ValueError, "expected base64 text, got 'aGk'"),
        (1, bytes, TypeError, "expected a base64 string, got a number"),
        ("blue", Color, ValueError, "expected one of Color ['red', 'green'], got 'blue'"),
        ("c", Literal["a", "b"], ValueError, "expected one of ['a', 'b'], got 'c'"),
        (True, int, TypeError, "expected int, got a boolean"),
        ("1", float, TypeError, "expected a number, got a string"),
        ([1, 2, 3], tuple[int, int], TypeError, "expected an array of 2 items, got 3"),
        ([1, "x"], list[int], TypeError, "[1]: expected int, got a string"),
        ({"a": "x"}, dict[str, int], TypeError, "['a']: expected int, got a string"),
        ({"x": 1}, dict[int, int], ValueError, "key 'x' is not a int"),
        ({"01": 1}, dict[int, int], ValueError, "key '01' is not a int"),
        ([1.5], Optional[list[int]], TypeError, "[0]: expected int, got a number"),  # noqa: UP045
        ("x", int | None | bool, TypeError, "expected int | None | bool, got a string"),
        (1, type(None), TypeError, "expected null, got a number"),
        ("no-uuid", uuid.UUID, ValueError, "expected a UUID string, got 'no-uuid'"),
        ([[1]], set[list[int]], TypeError, "set items must be hashable"),
        (
            {"name": "a", "since": "x", "balance": "1"},
            Customer,
            ValueError,
            "validation error for Customer",
        ),
    ],
)
def test_a_value_that_does_not_fit_says_where_and_why(
    value: Any, hint: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as info:
        decode(value, hint)
    assert message in str(info.value)
    if hint is Order and "items[2]" in message:
        assert str(info.value) == message


def test_unions_try_their_options_in_order() -> None:
    assert decode(1, int | str) == 1
    assert decode("1", int | Decimal) == Decimal(1)
    assert decode("2024-01-01", date | str) == date(2024, 1, 1)
    assert decode("2024-01-01", str | date) == "2024-01-01"  # first fit wins
    assert decode({"x": 1}, Point | dict[str, int]) == {"x": 1}
    assert decode(None, Optional[Item]) is None  # noqa: UP045


def test_values_json_cannot_hold_are_refused_with_their_path() -> None:
    with pytest.raises(TypeError, match=r"^\['a'\]\[0\]: Object of type object is not JSON"):
        encode({"a": [object()]})
    with pytest.raises(ValueError, match="nan is not a JSON number"):
        encode([1.0, float("nan")])
    cycle: list[Any] = []
    cycle.append(cycle)
    with pytest.raises(ValueError, match=r"\[0\]: circular reference"):
        encode(cycle)
    with pytest.raises(TypeError, match="a key of type tuple cannot be JSON"):
        encode({(1, 2): 3})
    with pytest.raises(TypeError, match="not JSON serializable"):
        encode(timedelta(seconds=1))  # no representation chosen: refused, not guessed


def test_unorderable_sets_are_journaled_in_a_fixed_order() -> None:
    items = {Item("b", Decimal(1)), Item("a", Decimal(2)), Item("c", Decimal(0))}
    encoded = encode(items)
    assert [i["name"] for i in encoded] == ["a", "b", "c"]  # by JSON text: deterministic
    assert decode(encoded, set[Item]) == items


# -- the round trip, by property ---------------------------------------------------------------

_TEXT = st.text(st.characters(codec="utf-8"), max_size=8)
_OFFSETS = st.timedeltas(min_value=timedelta(hours=-23), max_value=timedelta(hours=23)).map(
    timezone
)
_ITEMS = st.builds(
    Item,
    name=_TEXT,
    price=st.decimals(allow_nan=False),
    tags=st.frozensets(_TEXT, max_size=3),
    when=st.none() | st.datetimes(timezones=st.none() | _OFFSETS),
)
_SCALARS: list[tuple[Any, st.SearchStrategy[Any]]] = [
    (int, st.integers(-(2**63), 2**64 - 1)),
    (float, st.floats(allow_nan=False, allow_infinity=False)),
    (str, _TEXT),
    (bool, st.booleans()),
    (type(None), st.none()),
    (bytes, st.binary(max_size=16)),
    (Decimal, st.decimals(allow_nan=False)),
    (datetime, st.datetimes(timezones=st.none() | _OFFSETS)),
    (date, st.dates()),
    (time, st.times(timezones=st.none() | _OFFSETS)),
    (uuid.UUID, st.uuids()),
    (Color, st.sampled_from(Color)),
    (Size, st.sampled_from(Size)),
    (Corner, st.sampled_from(Corner)),
    (Literal["a", 2, None], st.sampled_from(["a", 2, None])),
    (Item, _ITEMS),
    (Point, st.builds(Point, st.integers(), st.integers())),
    (
        Line,
        st.fixed_dictionaries({"sku": _TEXT, "qty": st.integers()}, optional={"note": _TEXT}),
    ),
    (
        Customer,
        st.builds(
            Customer,
            name=_TEXT,
            since=st.dates(),
            balance=st.decimals(allow_nan=False, allow_infinity=False, places=2),
        ),
    ),
    (
        Box[Decimal],
        st.builds(
            Box, st.decimals(allow_nan=False), st.lists(st.decimals(allow_nan=False), max_size=3)
        ),
    ),
]
_HASHABLE = [int, str, Decimal, date, uuid.UUID, Color, Item]
_KEYS = [(str, _TEXT), (int, st.integers()), (Color, st.sampled_from(Color)), (date, st.dates())]


def _typed(depth: int) -> st.SearchStrategy[tuple[Any, st.SearchStrategy[Any]]]:
    """(hint, strategy of values of it), nested up to ``depth``."""
    base = st.sampled_from(_SCALARS)
    if depth == 0:
        return base
    inner = _typed(depth - 1)
    hashable = st.sampled_from([s for s in _SCALARS if s[0] in _HASHABLE])
    return st.one_of(
        base,
        inner.map(lambda t: (list[t[0]], st.lists(t[1], max_size=4))),
        inner.map(lambda t: (tuple[t[0], ...], st.lists(t[1], max_size=3).map(tuple))),
        st.tuples(inner, inner).map(
            lambda p: (tuple[p[0][0], p[1][0]], st.tuples(p[0][1], p[1][1]))
        ),
        st.tuples(st.sampled_from(_KEYS), inner).map(
            lambda p: (dict[p[0][0], p[1][0]], st.dictionaries(p[0][1], p[1][1], max_size=3))
        ),
        hashable.map(lambda t: (set[t[0]], st.sets(t[1], max_size=4))),
        hashable.map(lambda t: (frozenset[t[0]], st.frozensets(t[1], max_size=4))),
        inner.map(lambda t: (Optional[t[0]], st.none() | t[1])),  # noqa: UP045
        inner.map(lambda t: (Annotated[t[0], "meta"], t[1])),
    )


def _journaled(value: Any) -> Any:
    """What a replay reads: the value through JSON text as the protocol writes it (UTF-8)."""
    return json.loads(json.dumps(value, ensure_ascii=False, allow_nan=False).encode())


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.data())
def test_every_supported_value_comes_back_equal_after_a_replay(data: st.DataObject) -> None:
    hint, values = data.draw(_typed(2), label="type")
    value = data.draw(values, label="value")
    journaled = _journaled(encode(value, hint))
    seen = decode(journaled, hint)
    assert seen == value
    assert _journaled(encode(seen, hint)) == journaled  # and so on, at every replay
    assert decode(journaled, hint) == seen  # pure: the same JSON, the same value


@given(st.binary(max_size=64))
def test_a_custom_serde_is_journaled_as_base64_of_its_bytes(data: bytes) -> None:
    serde = Reversed()
    journaled = encode(data, serde=serde)
    assert isinstance(journaled, str)
    assert decode(_journaled(journaled), serde=serde) == data
    assert encode(data, serde=BytesSerde()) == encode(data, bytes)  # the same representation


# -- serdes ------------------------------------------------------------------------------------


class Reversed:
    """A serde that is not JSON: the bytes reversed (stands for msgpack, protobuf, ...)."""

    content_type = "application/x-reversed"

    def serialize(self, value: Any) -> bytes:
        return bytes(value)[::-1]

    def deserialize(self, data: bytes) -> bytes:
        return data[::-1]


class Text:
    """UTF-8 text, with no content type of its own."""

    def serialize(self, value: Any) -> bytes:
        return str(value).encode()

    def deserialize(self, data: bytes) -> str:
        return data.decode()


def test_serdes_implement_the_protocol() -> None:
    for serde in (JsonSerde(), JsonSerde(int), BytesSerde(), Reversed(), Text()):
        assert isinstance(serde, Serde)
    assert not isinstance("json", Serde)
    assert JsonSerde.content_type == "application/json"
    assert BytesSerde().content_type == "application/octet-stream"
    assert BytesSerde("image/png").content_type == "image/png"


def test_json_serde_is_the_default_behaviour_and_journals_json() -> None:
    item = Item("a", Decimal("1.5"))
    assert encode(item, serde=JsonSerde()) == encode(item)
    assert decode(encode(item), serde=JsonSerde(Item)) == item
    assert decode(encode(item), Any, JsonSerde(Item)) == item  # the serde's hint wins
    assert decode(encode(item), Item, JsonSerde()) == item
    assert JsonSerde(Item).serialize(item) == b'{"name":"a","price":"1.5","tags":[],"when":null}'
    assert JsonSerde(Item).deserialize(JsonSerde().serialize(item)) == item
    assert JsonSerde().deserialize(b"") is None


def test_custom_serdes_journal_base64_text() -> None:
    assert encode("héllo", serde=Text()) == "aMOpbGxv"
    assert decode("aMOpbGxv", serde=Text()) == "héllo"
    assert decode(None, serde=Text()) is None  # null (absent state, a void result) is None
    assert encode(b"abc", serde=BytesSerde()) == "YWJj"
    assert decode("YWJj", serde=BytesSerde()) == b"abc"
    with pytest.raises(TypeError, match="BytesSerde serializes bytes, not str"):
        encode("abc", serde=BytesSerde())
    with pytest.raises(TypeError, match="expected a base64 string, got an object"):
        decode({"a": 1}, serde=Text())

    class Broken:
        def serialize(self, value: Any) -> Any:
            return "not bytes"

        def deserialize(self, data: bytes) -> Any:
            return data

    with pytest.raises(TypeError, match=r"Broken.serialize returned str, not bytes"):
        encode(1, serde=Broken())
    with pytest.raises(TypeError, match="serde must have serialize"):
        encode(1, serde="msgpack")


# -- step return types -------------------------------------------------------------------------


def _sync() -> Item:
    raise NotImplementedError


async def _async(n: int) -> list[Decimal]:
    raise NotImplementedError


def _awaitable() -> Awaitable[date]:
    raise NotImplementedError


def _coroutine() -> Coroutine[Any, Any, Color]:
    raise NotImplementedError


def _none() -> None:
    pass


def _untyped():  # untyped on purpose
    pass


def _unresolvable() -> NotDefinedAnywhere:  # noqa: F821 - unresolvable on purpose
    raise NotImplementedError


class _Steps:
    def method(self) -> Decimal:
        raise NotImplementedError

    def __call__(self) -> Point:
        raise NotImplementedError


@pytest.mark.parametrize(
    ("fn", "hint"),
    [
        (_sync, Item),
        (_async, list[Decimal]),
        (_awaitable, date),
        (_coroutine, Color),
        (_none, type(None)),
        (functools.partial(_async, 1), list[Decimal]),
        (functools.partial(functools.partial(_sync)), Item),
        (_Steps().method, Decimal),
        (_Steps(), Point),
        (_untyped, None),
        (_unresolvable, None),
        (lambda: 1, None),
        (len, None),
        (print, None),
        (Item, None),
        (str.upper, None),
    ],
)
def test_a_steps_type_is_its_return_annotation(fn: Any, hint: Any) -> None:
    assert return_hint(fn) == hint
    assert return_hint(fn) == hint  # cached: the same answer


# -- handlers: typed input and output, raw bytes, serdes ---------------------------------------

shop = Service("Shop")
files = Service("Files")
ledger = VirtualObject("TypedLedger")


async def price_of(item: Item) -> Decimal:
    return item.price * 2


@shop.handler()
async def checkout(ctx: Context, order: Order) -> dict[str, Any]:
    doubled = [await ctx.run(f"price-{i}", price_of, item) for i, item in enumerate(order.items)]
    stamp = await ctx.run("stamp", lambda: datetime(2024, 1, 2, tzinfo=TZ), type_hint=datetime)
    return {
        "total": sum(doubled, Decimal(0)),
        "types": sorted({type(p).__name__ for p in doubled} | {type(stamp).__name__}),
        "color": order.color,
        "at": stamp,
    }


@shop.handler()
async def echo_point(ctx: Context, point: Point) -> Point:
    return Point(point.y, point.x)


@ledger.handler()
async def remember(ctx: Context, item: Item) -> list[Item]:
    ctx.set("last", item)
    seen: Item = await ctx.get("last", type_hint=Item)
    return [seen, item]


@files.handler()
async def upper(ctx: Context, data: bytes) -> bytes:
    return data.upper()


@files.handler(input_serde=Text(), output_serde=Reversed())
async def reverse(ctx: Context, text: str) -> bytes:
    return text.encode()


@files.handler(output_serde=BytesSerde("image/png"))
async def render(ctx: Context, size: int) -> bytes:
    return b"\x89PNG" + bytes(size)


@files.handler(input_serde=BytesSerde())
async def size(ctx: Context, data: bytes) -> int:
    return len(data)


def _run(
    services: list[Any], target: str, value: Any, *, replay: bool, key: str | None = None
) -> Any:
    driver = Driver(Endpoint(services, always_replay=replay).inprocess())
    return asyncio.run(driver.run(target, value, key=key)).output


ORDER = {
    "items": [
        {"name": "a", "price": "1.25", "tags": ["x"], "when": "2024-01-01T00:00:00+00:00"},
        {"name": "b", "price": "0.10"},
    ],
    "color": "green",
}


@pytest.mark.parametrize("replay", [False, True])
def test_a_typed_handler_sees_typed_values_on_every_replay(replay: bool) -> None:
    output = _run([shop], "Shop/checkout", ORDER, replay=replay)
    assert output == {
        "kind": "output",
        "value": {
            "total": "2.70",
            "types": ["Decimal", "datetime"],
            "color": "green",
            "at": "2024-01-02T00:00:00+02:00",
        },
    }


@pytest.mark.parametrize("replay", [False, True])
def test_named_tuples_and_state_round_trip(replay: bool) -> None:
    assert _run([shop], "Shop/echo_point", [1, 2], replay=replay)["value"] == [2, 1]
    item = {"name": "n", "price": "1E+2", "tags": ["b", "a"], "when": None}
    output = _run([ledger], "TypedLedger/remember", item, replay=replay, key="k")
    normalized = {**item, "tags": ["a", "b"]}
    assert output["value"] == [normalized, normalized]


def test_bad_input_is_a_terminal_400_that_names_the_path() -> None:
    bad = {
        "items": [
            {"name": "a", "price": "1"},
            {"name": "b", "price": "2"},
            {"name": "c", "price": 3},
        ]
    }
    output = _run([shop], "Shop/checkout", bad, replay=False)
    assert output["failure"] == {
        "code": 400,
        "message": "bad input for Shop/checkout: "
        "Order.items[2].price: expected a decimal string, got a number",
    }
    output = _run([files], "Files/upper", "not base64!", replay=False)
    assert output["failure"]["code"] == 400
    assert "expected base64 text" in output["failure"]["message"]


@pytest.mark.parametrize("replay", [False, True])
def test_raw_bytes_and_custom_serdes_in_and_out(replay: bool) -> None:
    assert _run([files], "Files/upper", "aGk=", replay=replay)["value"] == "SEk="  # hi -> HI
    assert _run([files], "Files/upper", "", replay=replay)["value"] == ""  # no body
    # Text in (base64 of UTF-8), Reversed out (base64 of the reversed bytes)
    out = _run([files], "Files/reverse", encode("abc", serde=Text()), replay=replay)["value"]
    assert decode(out, serde=Reversed()) == b"abc"
    assert out == encode(b"cba", bytes)
    png = _run([files], "Files/render", 2, replay=replay)["value"]
    assert decode(png, bytes) == b"\x89PNG\x00\x00"
    assert _run([files], "Files/size", "AAEC", replay=replay)["value"] == 3


def test_discovery_carries_the_content_types_of_raw_handlers() -> None:
    discovery = DiscoveryResponse.decode(Endpoint([files, shop]).discovery().encode())
    types = {
        (s.name, h.name): (h.input_content_type, h.output_content_type)
        for s in discovery.services
        for h in s.handlers
    }
    assert types == {
        ("Files", "upper"): ("application/octet-stream", "application/octet-stream"),
        ("Files", "reverse"): ("application/octet-stream", "application/x-reversed"),
        ("Files", "render"): (None, "image/png"),
        ("Files", "size"): ("application/octet-stream", None),
        ("Shop", "checkout"): (None, None),
        ("Shop", "echo_point"): (None, None),
    }
    wire = json.loads(Endpoint([files]).discovery().encode())
    render_info = wire["services"][0]["handlers"][2]
    assert render_info == {
        "name": "render",
        "kind": "exclusive",
        "output_content_type": "image/png",
        "input_schema": {"type": "integer"},  # JSON in: its schema (docs/sdk.md, "JSON schemas")
        "input_required": True,
    }
    json_only = json.loads(Endpoint([shop]).discovery().encode())["services"][0]["handlers"][0]
    # JSON handlers: no content types; their schemas instead
    assert set(json_only) == {"name", "kind", "input_schema", "output_schema", "input_required"}


def test_handler_specs_expose_their_types_and_serdes() -> None:
    spec = handler_spec(reverse)
    assert spec is not None
    assert (spec.input_hint, spec.output_hint) == (str, bytes)
    assert isinstance(spec.input_serde, Text) and isinstance(spec.output_serde, Reversed)
    plain = handler_spec(checkout)
    assert plain is not None and plain.input_serde is None and plain.output_serde is None
    assert plain.input_hint is Order


def test_bad_serdes_are_refused_when_the_handler_is_defined() -> None:
    svc = Service("Refused")

    async def takes(ctx: Context, value: str) -> str:
        return value

    async def nothing(ctx: Context) -> None:
        return None

    with pytest.raises(TypeError, match="input_serde must have serialize"):
        svc.handler(input_serde=typing.cast(Any, "msgpack"))(takes)
    with pytest.raises(TypeError, match="takes no input: it has no use for input_serde"):
        svc.handler(input_serde=Text())(nothing)

    class Newline(Text):
        content_type = "text/plain\r\nx-evil: 1"

    with pytest.raises(ValueError, match=r"output_serde\.content_type must be a content type"):
        svc.handler(output_serde=Newline())(takes)


def test_discovery_refuses_a_content_type_that_is_no_header_value() -> None:
    from ritornello.protocol import ProtocolError

    raw = json.loads(Endpoint([files]).discovery().encode())
    raw["services"][0]["handlers"][0]["input_content_type"] = "a\nb"
    with pytest.raises(ProtocolError, match="input_content_type of handler 'upper'"):
        DiscoveryResponse.decode(json.dumps(raw))


# -- what it costs: nothing for handlers that do not use it ------------------------------------


def test_the_sdk_imports_no_module_for_types_it_does_not_see() -> None:
    code = (
        "import sys, ritornello.sdk\n"
        "from dataclasses import dataclass\n"
        "from ritornello.sdk._serde import decode, encode\n"
        "@dataclass\n"
        "class P:\n"
        "    x: int\n"
        "assert decode(encode(P(1)), P) == P(1)\n"
        "print(sorted(m for m in ('decimal', 'pydantic', 'zoneinfo') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30
    )
    assert result.stdout.strip() == "[]"


def test_dataclass_fields_compare_by_value_after_a_round_trip() -> None:
    item = Item("a", Decimal("1.0"), frozenset({"t"}), datetime(2024, 1, 1, tzinfo=TZ))
    again = decode(_journaled(encode(item)), Item)
    assert dataclasses.astuple(again) == dataclasses.astuple(item)
    assert str(again.price) == "1.0"  # exactly the digits that went in
