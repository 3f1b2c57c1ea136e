"""Services, handlers, inputs and outputs, discovery, malformed requests, exported names."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any

import pytest

import ritornello
import ritornello.sdk
from ritornello import Context, Endpoint, Service
from ritornello.protocol import DiscoveryResponse
from ritornello.sdk._serde import type_hints
from ritornello.sdk._service import handler_spec

from ._handlers import ALL_SERVICES, greet

shapes = Service("Shapes")


@dataclass
class Point:
    x: int
    y: int = 0


@dataclass
class Polygon:
    name: str
    points: list[Point] = field(default_factory=list)
    closed: bool | None = None


@shapes.handler()
async def centroid(ctx: Context, polygon: Polygon) -> Point:
    n = len(polygon.points) or 1
    return Point(sum(p.x for p in polygon.points) // n, sum(p.y for p in polygon.points) // n)


@shapes.handler()
async def nothing(ctx: Context) -> str:
    return "no input"


@shapes.handler()
async def optional(ctx: Context, value: int = 7) -> int:
    return value


@shapes.handler()
async def typed(ctx: Context, value: float) -> float:
    return value * 2


def _invoke(target: str, value: Any, **request: Any) -> dict[str, Any]:
    service, handler = target.split("/")
    body = {
        "version": 1,
        "type": "invoke",
        "id": "inv_s",
        "service": service,
        "handler": handler,
        "key": None,
        "attempt": 1,
        "journal": [{"kind": "input", "value": value}],
        "completions": [],
        "state": None,
        **request,
    }
    return _raw(json.dumps(body).encode())


def _raw(body: bytes) -> dict[str, Any]:
    endpoint = Endpoint([shapes, *ALL_SERVICES]).inprocess()
    answer: dict[str, Any] = json.loads(asyncio.run(endpoint.invoke(body)))
    return answer


def _output(answer: dict[str, Any]) -> Any:
    assert answer["status"] == "done", answer
    return answer["entries"][-1].get("value", answer["entries"][-1].get("failure"))


# -- inputs and outputs ----------------------------------------------------------------------


def test_dataclass_input_is_built_and_dataclass_output_becomes_an_object() -> None:
    polygon = {"name": "tri", "points": [{"x": 0, "y": 0}, {"x": 3}, {"x": 0, "y": 3}]}
    assert _output(_invoke("Shapes/centroid", polygon)) == {"x": 1, "y": 1}


@pytest.mark.parametrize(
    ("target", "value"),
    [
        ("Shapes/centroid", {"name": "tri", "colour": "red"}),
        ("Shapes/centroid", {"points": []}),
        ("Shapes/centroid", {"name": "tri", "points": [{"x": "one"}]}),
        ("Shapes/centroid", [1, 2]),
        ("Shapes/nothing", 5),
        ("Shapes/typed", "two"),
        ("Shapes/typed", True),
    ],
)
def test_input_that_does_not_fit_is_a_terminal_400(target: str, value: Any) -> None:
    failure = _output(_invoke(target, value))
    assert failure["code"] == 400
    assert target in failure["message"]


def test_inputs_that_fit() -> None:
    assert _output(_invoke("Shapes/nothing", None)) == "no input"
    assert _output(_invoke("Shapes/optional", None)) == 7
    assert _output(_invoke("Shapes/optional", 3)) == 3
    assert _output(_invoke("Shapes/typed", 2)) == 4.0


def test_pydantic_models_in_and_out() -> None:
    pytest.importorskip("pydantic")
    from ._pydantic_handlers import users

    endpoint = Endpoint([users]).inprocess()
    body = {
        "version": 1,
        "type": "invoke",
        "id": "inv_p",
        "service": "Users",
        "handler": "older",
        "key": None,
        "attempt": 1,
        "journal": [{"kind": "input", "value": {"name": "Ada", "age": 36}}],
    }
    answer = json.loads(asyncio.run(endpoint.invoke(json.dumps(body).encode())))
    assert _output(answer) == {"name": "Ada", "age": 37}
    body["journal"] = [{"kind": "input", "value": {"name": "Ada"}}]
    answer = json.loads(asyncio.run(endpoint.invoke(json.dumps(body).encode())))
    assert _output(answer)["code"] == 400


async def _partly(ctx: NotImported, point: Point) -> Point:  # type: ignore[name-defined]  # noqa: F821
    return point


def test_annotations_resolve_one_by_one_when_one_cannot_be() -> None:
    assert type_hints(_partly) == {"point": Point, "return": Point}


# -- definitions -----------------------------------------------------------------------------


def test_the_decorator_returns_the_function_with_its_handler_attached() -> None:
    svc = Service("Plain")

    async def hello(ctx: Context) -> str:
        return "hi"

    assert svc.handler()(hello) is hello
    spec = handler_spec(hello)
    assert spec is not None and spec.target == "Plain/hello" and spec.kind == "exclusive"
    assert handler_spec(greet) is not None and handler_spec(greet).target == "Greeter/greet"  # type: ignore[union-attr]


def test_duplicates_and_bad_definitions_are_refused() -> None:
    svc = Service("Dup")

    @svc.handler()
    async def one(ctx: Context) -> None: ...

    with pytest.raises(ValueError, match="already has a handler 'one'"):

        @svc.handler(name="one")
        async def other(ctx: Context) -> None: ...

    with pytest.raises(ValueError, match="two services named 'Dup'"):
        Endpoint([svc, Service("Dup")])
    with pytest.raises(ValueError, match="shared"):
        svc.handler(kind="shared")
    with pytest.raises(TypeError, match="async"):

        @svc.handler()  # type: ignore[type-var]
        def sync(ctx: Context) -> None: ...

    with pytest.raises(TypeError, match=r"\(ctx\) or \(ctx, input\)"):

        @svc.handler()
        async def too_many(ctx: Context, a: int, b: int) -> None: ...

    with pytest.raises(ValueError, match="service name"):
        Service("a/b")


def test_discovery_lists_services_and_handler_kinds() -> None:
    raw = asyncio.run(Endpoint(ALL_SERVICES).inprocess().discover())
    discovery = DiscoveryResponse.decode(raw)
    by_name = {s.name: s for s in discovery.services}
    assert by_name["Greeter"].kind == "service"
    assert by_name["Counter"].kind == "object"
    counter = by_name["Counter"]
    assert counter.handler("peek") is not None and counter.handler("peek").kind == "shared"  # type: ignore[union-attr]
    assert counter.handler("add") is not None and counter.handler("add").kind == "exclusive"  # type: ignore[union-attr]
    assert json.loads(raw)["protocol"] == {"min": 1, "max": 1}


# -- malformed requests ----------------------------------------------------------------------


def _protocol_error(answer: dict[str, Any]) -> str:
    assert answer["status"] == "error" and answer["entries"] == []
    assert answer["error"]["kind"] == "protocol"
    message: str = answer["error"]["message"]
    return message


def test_malformed_requests_are_protocol_errors() -> None:
    assert "not JSON" in _protocol_error(_raw(b"{nope"))
    assert "version" in _protocol_error(_raw(b'{"version": 9}'))
    assert "no handler" in _protocol_error(_invoke("Nope/nothing", None))
    assert "needs a key" in _protocol_error(_invoke("Counter/add", 1))
    message = _protocol_error(_invoke("Greeter/greet", "x", completions=[{"index": 1}]))
    assert "index 1" in message
    journal = [{"kind": "input", "value": 1}, {"kind": "output", "value": 1}]
    assert "already complete" in _protocol_error(_invoke("Greeter/greet", "x", journal=journal))
    journal = [
        {"kind": "input", "value": 1},
        {"kind": "sleep", "name": "", "duration_ms": 1, "wake_at": 1},
    ]
    bad = [{"index": 1, "value": None, "failure": {"code": 1, "message": ""}}]
    assert "exactly one" in _protocol_error(
        _invoke("Greeter/greet", "x", journal=journal, completions=bad)
    )
    assert "attempt" in _protocol_error(_invoke("Greeter/greet", "x", attempt=0))


# -- the package surface ---------------------------------------------------------------------

PUBLIC = [
    "ALL_COMPLETED",
    "AsgiApp",
    "BatchItem",
    "BatchResult",
    "BytesSerde",
    "CallHandle",
    "Context",
    "DurableFuture",
    "DurablePromise",
    "Endpoint",
    "FIRST_COMPLETED",
    "FIRST_ERROR",
    "InProcessEndpoint",
    "JournalMismatchError",
    "JsonSerde",
    "Limit",
    "RetryPolicy",
    "SendHandle",
    "Serde",
    "Service",
    "Suspended",
    "TerminalError",
    "VirtualObject",
    "Workflow",
    "as_completed",
    "gather",
    "select",
    "step_retry",
    "wait",
]


def test_exported_names_are_pinned() -> None:
    assert sorted(ritornello.__all__) == PUBLIC
    assert sorted(ritornello.sdk.__all__) == PUBLIC
    for name in PUBLIC:
        assert getattr(ritornello, name) is getattr(ritornello.sdk, name)


def test_importing_ritornello_loads_only_the_sdk_and_the_protocol() -> None:
    code = (
        "import sys, ritornello\n"
        "ours = sorted(m for m in sys.modules if m.startswith('ritornello.'))\n"
        "bad = [m for m in ours if not m.startswith(('ritornello.sdk', 'ritornello.protocol'))]\n"
        "third = [m for m in ('starlette', 'uvicorn', 'pydantic', 'fastapi') if m in sys.modules]\n"
        "print(bad, third)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30
    )
    assert result.stdout.strip() == "[] []"


def test_limits_are_declared_in_discovery() -> None:
    """A service's and a handler's limits, and the limits defined in code, travel in
    discovery exactly as ``PUT /limits/{name}`` would take them (docs/limits.md)."""
    from ritornello import Limit
    from ritornello.protocol import DiscoveryResponse

    mail = Service("Mail", limit=Limit("smtp", concurrency=4), limits=[Limit("r", rate=5)])

    @mail.handler()
    async def send(ctx: Context) -> None: ...

    @mail.handler(limit=Limit("per_key", concurrency=1, per_key=True))
    async def keyed(ctx: Context) -> None: ...

    @mail.handler(limit="r")
    async def rated(ctx: Context) -> None: ...

    info = DiscoveryResponse.decode(Endpoint([mail]).discovery().encode()).services[0]
    assert info.limit == "smtp"
    assert {h.name: h.limit for h in info.handlers} == {
        "send": None,
        "keyed": "per_key",
        "rated": "r",
    }
    assert dict(info.limits) == {
        "per_key": {"concurrency": 1, "per_key": True},
        "r": {"rate": 5, "per": "1s", "burst": 1},
        "smtp": {"concurrency": 4},
    }
    with pytest.raises(ValueError, match="defined twice"):
        Service("X", limit=Limit("a", concurrency=1), limits=[Limit("a", concurrency=2)])
    with pytest.raises(ValueError, match="give concurrency, rate, or both"):
        Limit("empty")
    with pytest.raises(TypeError, match="limit must be"):
        Service("Y", limit=5)  # type: ignore[arg-type]
