"""JSON Schemas from type hints (``ritornello.sdk._json_schema``): for each type the typed-JSON
walker round-trips, the exact schema; every schema is a valid draft 2020-12 schema; the JSON
``encode`` writes for sample values validates against it, and JSON the walker refuses (a
missing or unknown field, a wrong type, an unknown member) does not. Handlers: what discovery
carries (input, output, required), raw-bytes handlers none; the module is imported only when
discovery is answered."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import enum
import json
import subprocess
import sys
import uuid
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import (
    Annotated,
    Any,
    Generic,
    Literal,
    NamedTuple,
    NewType,
    NotRequired,
    Required,
    TypedDict,
    TypeVar,
)

import pydantic
import pytest
from jsonschema import Draft202012Validator

from ritornello import BytesSerde, Context, Endpoint, JsonSerde, Service
from ritornello.protocol import DiscoveryResponse, ProtocolError
from ritornello.sdk._json_schema import json_schema
from ritornello.sdk._serde import decode, encode

T = TypeVar("T")


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


@dataclasses.dataclass
class Item:
    """A line of an order."""

    sku: str
    price: Decimal
    note: str | None = None
    tags: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Box(Generic[T]):
    value: T
    label: str = "box"


@dataclasses.dataclass
class Tree:
    name: str
    children: list[Tree] = dataclasses.field(default_factory=list)


class Movie(TypedDict, total=False):
    title: Required[str]
    year: int
    rating: NotRequired[float]


class Point(NamedTuple):
    x: int
    y: int = 0


class Customer(pydantic.BaseModel):
    name: str
    since: dt.date
    best: Item | None = None


UserId = NewType("UserId", str)

ITEM = {
    "title": "Item",
    "description": "A line of an order.",
    "type": "object",
    "properties": {
        "sku": {"type": "string"},
        "price": {"type": "string", "format": "decimal"},
        "note": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "additionalProperties": False,
    "required": ["sku", "price"],
}


def _ref(name: str, **defs: Any) -> dict[str, Any]:
    return {"$ref": f"#/$defs/{name}", "$defs": defs}


EXACT: list[tuple[Any, dict[str, Any]]] = [
    (str, {"type": "string"}),
    (int, {"type": "integer"}),
    (float, {"type": "number"}),
    (bool, {"type": "boolean"}),
    (None, {"type": "null"}),
    (type(None), {"type": "null"}),
    (Any, {}),
    (object, {}),
    (bytes, {"type": "string", "contentEncoding": "base64"}),
    (dt.datetime, {"type": "string", "format": "date-time"}),
    (dt.date, {"type": "string", "format": "date"}),
    (dt.time, {"type": "string", "format": "time"}),
    (Decimal, {"type": "string", "format": "decimal"}),
    (uuid.UUID, {"type": "string", "format": "uuid"}),
    (list[int], {"type": "array", "items": {"type": "integer"}}),
    (Sequence[str], {"type": "array", "items": {"type": "string"}}),
    (list, {"type": "array"}),
    (set[int], {"type": "array", "items": {"type": "integer"}, "uniqueItems": True}),
    (frozenset[str], {"type": "array", "items": {"type": "string"}, "uniqueItems": True}),
    (tuple[int, ...], {"type": "array", "items": {"type": "integer"}}),
    (
        tuple[int, str],
        {
            "type": "array",
            "prefixItems": [{"type": "integer"}, {"type": "string"}],
            "minItems": 2,
            "maxItems": 2,
        },
    ),
    (dict[str, float], {"type": "object", "additionalProperties": {"type": "number"}}),
    (Mapping[str, Any], {"type": "object", "additionalProperties": {}}),
    (dict, {"type": "object"}),
    (
        dict[int, bool],
        {
            "type": "object",
            "propertyNames": {"pattern": "^-?[0-9]+$"},
            "additionalProperties": {"type": "boolean"},
        },
    ),
    (
        dict[Color, int],
        {
            "type": "object",
            "propertyNames": {"enum": ["red", "blue"]},
            "additionalProperties": {"type": "integer"},
        },
    ),
    (int | None, {"anyOf": [{"type": "integer"}, {"type": "null"}]}),
    (int | str, {"anyOf": [{"type": "integer"}, {"type": "string"}]}),
    (int | Any, {}),
    (Literal["a"], {"const": "a"}),
    (Literal["a", 1, None, True], {"enum": ["a", 1, None, True]}),
    (Literal[Color.RED], {"const": "red"}),
    (Annotated[int, "a note"], {"type": "integer"}),
    (UserId, {"type": "string"}),
    (Color, _ref("Color", Color={"title": "Color", "enum": ["red", "blue"]})),
    (Level, _ref("Level", Level={"title": "Level", "enum": [1, 2]})),
    (Item, _ref("Item", Item=ITEM)),
    (
        Box[int],
        _ref(
            "Box_int",
            Box_int={
                "title": "Box[int]",
                "type": "object",
                "properties": {
                    "value": {"type": "integer"},
                    "label": {"type": "string", "default": "box"},
                },
                "additionalProperties": False,
                "required": ["value"],
            },
        ),
    ),
    (
        Tree,
        _ref(
            "Tree",
            Tree={
                "title": "Tree",
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "children": {"type": "array", "items": {"$ref": "#/$defs/Tree"}},
                },
                "additionalProperties": False,
                "required": ["name"],
            },
        ),
    ),
    (
        Movie,
        _ref(
            "Movie",
            Movie={
                "title": "Movie",
                "type": "object",
                "properties": {
                    "title": {"type": "string"},
                    "year": {"type": "integer"},
                    "rating": {"type": "number"},
                },
                "additionalProperties": False,
                "required": ["title"],
            },
        ),
    ),
    (
        Point,
        _ref(
            "Point",
            Point={
                "title": "Point",
                "type": "array",
                "minItems": 1,
                "maxItems": 2,
                "prefixItems": [{"type": "integer"}, {"type": "integer"}],
            },
        ),
    ),
]


@pytest.mark.parametrize(("hint", "expected"), EXACT, ids=[str(h) for h, _ in EXACT])
def test_each_type_has_its_schema(hint: Any, expected: dict[str, Any]) -> None:
    schema = json_schema(hint)
    assert schema == expected
    Draft202012Validator.check_schema(schema)


#: (hint, values of it) whose encoded JSON must validate against the hint's schema
SAMPLES: list[tuple[Any, list[Any]]] = [
    (Item, [Item("a", Decimal("1.50")), Item("b", Decimal("-2"), "gift", ["x", "y"])]),
    (Box[Item], [Box(Item("a", Decimal("0")))]),
    (Tree, [Tree("root", [Tree("a"), Tree("b", [Tree("c")])])]),
    (Movie, [{"title": "Up"}, {"title": "Heat", "year": 1995, "rating": 8.3}]),
    (Point, [Point(1), Point(1, 2)]),
    (Customer, [Customer(name="Ada", since=dt.date(2020, 1, 2), best=Item("a", Decimal("1")))]),
    (list[Color], [[Color.RED, Color.BLUE]]),
    (dict[Level, list[dt.datetime]], [{Level.LOW: [dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC)]}]),
    (set[uuid.UUID], [{uuid.UUID(int=1), uuid.UUID(int=2)}]),
    (tuple[bytes, dt.time], [(b"\x00\xff", dt.time(1, 2, 3))]),
    (Item | None, [None, Item("z", Decimal("9"))]),
]


@pytest.mark.parametrize(("hint", "values"), SAMPLES, ids=[str(h) for h, _ in SAMPLES])
def test_what_encode_writes_validates_and_round_trips(hint: Any, values: list[Any]) -> None:
    for mode in ("validation", "serialization"):
        validator = Draft202012Validator(json_schema(hint, mode))
        for value in values:
            encoded = encode(value)
            validator.validate(encoded)
            assert decode(encoded, hint) == value


REFUSED: list[tuple[Any, Any]] = [
    (Item, {"sku": "a"}),  # missing field
    (Item, {"sku": "a", "price": "1", "colour": "red"}),  # unknown field
    (Item, {"sku": "a", "price": 1}),  # a decimal is a string
    (Movie, {"year": 1999}),  # its required key missing
    (Movie, {"title": "x", "extra": 1}),
    (Point, [1, 2, 3]),
    (Color, "green"),
    (Literal["a", "b"], "c"),
    (tuple[int, str], [1]),
    (int, True),
    (list[int], [1, "2"]),
    (Tree, {"name": "r", "children": [{"children": []}]}),  # a nested node without a name
]


@pytest.mark.parametrize(("hint", "value"), REFUSED, ids=[f"{h}-{j}" for h, j in REFUSED])
def test_what_the_walker_refuses_the_schema_refuses(hint: Any, value: Any) -> None:
    assert not Draft202012Validator(json_schema(hint)).is_valid(value)
    with pytest.raises((TypeError, ValueError)):
        decode(value, hint)


def test_a_pydantic_model_brings_its_own_schema_with_its_defs_merged() -> None:
    schema = json_schema(list[Customer])
    assert schema["items"] == {"$ref": "#/$defs/Customer"}
    customer = schema["$defs"]["Customer"]
    assert customer["properties"]["since"] == {"format": "date", "title": "Since", "type": "string"}
    # pydantic's own nested definition of Item, under $defs, referred to where it is used
    assert customer["properties"]["best"]["anyOf"][0] == {"$ref": "#/$defs/Item"}
    assert schema["$defs"]["Item"]["properties"]["sku"] == {"title": "Sku", "type": "string"}
    Draft202012Validator.check_schema(schema)


def test_two_classes_of_one_name_get_two_definitions() -> None:
    def make() -> type:
        @dataclasses.dataclass
        class Item:
            other: int

        return Item

    other = make()
    schema = json_schema(tuple[Item, other])  # type: ignore[valid-type]
    assert schema["prefixItems"] == [{"$ref": "#/$defs/Item"}, {"$ref": "#/$defs/Item2"}]
    assert schema["$defs"]["Item2"]["properties"] == {"other": {"type": "integer"}}


def test_annotations_it_does_not_know_take_any_json() -> None:
    class Opaque:
        pass

    assert json_schema(Opaque) == {}
    assert json_schema("NotResolved") == {}
    assert json_schema(T) == {}
    assert json_schema(list[Opaque]) == {"type": "array", "items": {}}


svc = Service("Shapes")


@svc.handler()
async def typed(ctx: Context, item: Item) -> list[Item]:
    return [item]


@svc.handler()
async def optional(ctx: Context, n: int = 1) -> None:
    return None


@svc.handler()
async def untyped(ctx, value):  # type: ignore[no-untyped-def]
    return value


@svc.handler()
async def nothing(ctx: Context) -> str:
    return ""


@svc.handler()
async def raw(ctx: Context, data: bytes) -> bytes:
    return data


@svc.handler(input_serde=JsonSerde(Point), output_serde=BytesSerde("image/png"))
async def serdes(ctx: Context, p: Any) -> Any:
    return b""


def test_discovery_carries_each_handlers_schemas() -> None:
    (info,) = Endpoint([svc]).discovery().services
    got = {h.name: (h.input_schema, h.output_schema, h.input_required) for h in info.handlers}
    assert got["typed"] == (
        _ref("Item", Item=ITEM),
        {"type": "array", "items": {"$ref": "#/$defs/Item"}, "$defs": {"Item": ITEM}},
        True,
    )
    assert got["optional"] == ({"type": "integer"}, {"type": "null"}, False)
    assert got["untyped"] == ({}, {}, True)
    assert got["nothing"] == (None, {"type": "string"}, False)
    assert got["raw"] == (None, None, True)  # raw bytes: the content types say it
    point = json_schema(Point)
    assert got["serdes"] == (point, None, True)  # a JsonSerde's hint wins; bytes out: none
    by_name = {h.name: h for h in info.handlers}
    assert by_name["raw"].input_content_type == "application/octet-stream"
    assert by_name["serdes"].output_content_type == "image/png"


def test_the_schema_module_is_imported_only_when_discovery_is_answered() -> None:
    code = (
        "import sys\n"
        "from ritornello import Context, Endpoint, Service\n"
        "s = Service('S')\n"
        "@s.handler()\n"
        "async def h(ctx: Context, x: int) -> int:\n"
        "    return x\n"
        "endpoint = Endpoint([s])\n"
        "app = endpoint.asgi()\n"
        "print('ritornello.sdk._json_schema' in sys.modules)\n"
        "endpoint.discovery()\n"
        "print('ritornello.sdk._json_schema' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert done.stdout.split() == ["False", "True"], done.stderr


def test_the_schemas_survive_the_discovery_codec_and_malformed_ones_are_refused() -> None:
    discovery = Endpoint([svc]).discovery()
    raw = json.loads(discovery.encode())
    typed = raw["services"][0]["handlers"][0]
    assert typed["input_schema"]["$ref"] == "#/$defs/Item" and typed["input_required"] is True
    assert "input_schema" not in raw["services"][0]["handlers"][4]  # raw: no schema sent
    assert DiscoveryResponse.decode(discovery.encode()) == discovery
    for name, value, message in [
        ("input_schema", ["not", "a", "schema"], "input_schema of handler 'typed' must be a JSON"),
        ("output_schema", "text", "output_schema of handler 'typed' must be a JSON"),
        ("input_required", "yes", "input_required of handler 'typed' must be true or false"),
    ]:
        bad = copy.deepcopy(raw)
        bad["services"][0]["handlers"][0][name] = value
        with pytest.raises(ProtocolError, match=message):
            DiscoveryResponse.decode(json.dumps(bad))
    older = copy.deepcopy(raw)  # an SDK from before the schemas: none known
    for field in ("input_schema", "output_schema", "input_required"):
        older["services"][0]["handlers"][0].pop(field)
    (handler, *_) = DiscoveryResponse.decode(json.dumps(older)).services[0].handlers
    assert (handler.input_schema, handler.output_schema, handler.input_required) == (None,) * 3
