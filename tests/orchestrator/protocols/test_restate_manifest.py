"""Restate's endpoint manifest (``orchestrator/protocols/restate/_manifest.py``) and the
discovery answer of a Restate deployment (``_adapter.read_discovery``): kinds map as Restate
reads them, retry policies become ``RetryPolicy``, the version is negotiated as Restate 1.7
does (V6 for the current SDKs), a manifest that is not one is refused with a message saying
why, and the ``DiscoveryResponse`` a deployment record keeps round-trips with its wire."""

from __future__ import annotations

import copy
import json
import re
from datetime import timedelta
from typing import Any

import pytest

from ritornello.orchestrator.protocols.restate import RestateProtocol, read_discovery
from ritornello.orchestrator.protocols.restate._adapter import lazy_handlers
from ritornello.orchestrator.protocols.restate._manifest import (
    MAX_VERSION,
    MIN_VERSION,
    content_type,
    is_manifest,
    negotiate,
    read_manifest,
)
from ritornello.protocol import (
    DiscoveryResponse,
    HandlerInfo,
    ProtocolError,
    RetryPolicy,
    ServiceInfo,
)

#: A manifest as the TypeScript and Python SDKs serve it (manifest v4, protocol V5..V7).
MANIFEST: dict[str, Any] = {
    "protocolMode": "REQUEST_RESPONSE",
    "minProtocolVersion": 5,
    "maxProtocolVersion": 7,
    "services": [
        {
            "name": "Greeter",
            "ty": "SERVICE",
            "handlers": [
                {
                    "name": "greet",
                    "input": {"required": False, "contentType": "application/json"},
                    "output": {"contentType": "application/json", "setContentTypeIfEmpty": False},
                    "documentation": "says hello",
                    "metadata": {"team": "a"},
                },
                {"name": "ping", "input": {}, "output": {"setContentTypeIfEmpty": False}},
                {
                    "name": "flaky",
                    "input": {},
                    "retryPolicyInitialInterval": 100,
                    "retryPolicyMaxInterval": 5000,
                    "retryPolicyMaxAttempts": 4,
                    "retryPolicyExponentiationFactor": 1.5,
                    "retryPolicyOnMaxAttempts": "KILL",
                },
            ],
        },
        {
            "name": "Counter",
            "ty": "VIRTUAL_OBJECT",
            "enableLazyState": True,
            "handlers": [
                {"name": "add", "ty": "EXCLUSIVE", "input": {}},
                {"name": "get", "ty": "SHARED", "input": {}, "enableLazyState": False},
                {"name": "plain", "input": {}},
            ],
        },
        {
            "name": "Flow",
            "ty": "WORKFLOW",
            "handlers": [
                {"name": "run", "ty": "WORKFLOW", "input": {}},
                {"name": "signal", "input": {}},
                {"name": "peek", "ty": "SHARED", "input": {}, "retryPolicyOnMaxAttempts": "PAUSE"},
            ],
        },
    ],
}


def _manifest(**changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(MANIFEST)
    out.update(changes)
    return out


def _service(name: str, kind: Any = "SERVICE", **handler: Any) -> dict[str, Any]:
    """A service ``name`` of type ``kind`` with one handler ``h`` (``handler``: its fields)."""
    return {"name": name, "ty": kind, "handlers": [{"name": "h", "input": {}, **handler}]}


def test_kinds_map_as_restate_reads_them() -> None:
    d = read_manifest(_manifest())
    assert d.wire == "restate" and not d.stream
    kinds = {(s.name, h.name): (s.kind, h.kind) for s in d.services for h in s.handlers}
    assert kinds == {
        ("Greeter", "greet"): ("service", "exclusive"),  # a service's handler has no ty
        ("Greeter", "ping"): ("service", "exclusive"),
        ("Greeter", "flaky"): ("service", "exclusive"),
        ("Counter", "add"): ("object", "exclusive"),
        ("Counter", "get"): ("object", "shared"),
        ("Counter", "plain"): ("object", "exclusive"),
        ("Flow", "run"): ("workflow", "workflow"),
        ("Flow", "signal"): ("workflow", "shared"),  # a workflow's handler without ty
        ("Flow", "peek"): ("workflow", "shared"),
    }
    assert [s.name for s in d.services] == ["Greeter", "Counter", "Flow"]
    assert [h.name for h in d.services[0].handlers] == ["greet", "ping", "flaky"]


def test_the_manifest_is_kept_as_served() -> None:
    served = _manifest()
    d = read_manifest(served)
    assert d.wire_info == {"version": 6, "mode": "REQUEST_RESPONSE", "manifest": served}
    assert d.wire_info is not None and d.wire_info["manifest"] == MANIFEST  # not altered
    assert read_manifest(_manifest(protocolMode="BIDI_STREAM")).wire_info["mode"] == "BIDI_STREAM"  # type: ignore[index]
    no_mode = _manifest()
    del no_mode["protocolMode"]
    assert read_manifest(no_mode).wire_info["mode"] == "BIDI_STREAM"  # type: ignore[index]


def test_retry_policy_fields_become_a_retry_policy() -> None:
    handlers = {
        (s.name, h.name): h for s in read_manifest(_manifest()).services for h in s.handlers
    }
    assert handlers["Greeter", "flaky"].retry == RetryPolicy(
        initial_interval_ms=100,
        max_interval_ms=5000,
        max_attempts=4,
        factor=1.5,
        on_max_attempts="kill",
    )
    assert handlers["Flow", "peek"].retry == RetryPolicy(on_max_attempts="pause")
    assert handlers["Greeter", "greet"].retry is None
    assert handlers["Counter", "add"].retry is None


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (
            "retryPolicyMaxAttempts",
            -1,
            "retry policy max_attempts must be a positive integer, not -1",
        ),
        ("retryPolicyInitialInterval", -5, "retry policy initial_interval_ms must be a positive"),
        ("retryPolicyMaxInterval", "1s", "retry policy max_interval_ms must be a positive"),
        ("retryPolicyExponentiationFactor", 0.5, "retry policy factor must be a number >= 1"),
        ("retryPolicyOnMaxAttempts", "RETRY", "on_max_attempts must be 'pause' or 'kill'"),
    ],
)
def test_a_bad_retry_policy_is_refused(field: str, value: Any, message: str) -> None:
    with pytest.raises(ProtocolError, match=f"^handler 'h': {re.escape(message)}"):
        read_manifest(_manifest(services=[_service("S", **{field: value})]))


def test_a_service_level_retry_policy_applies_to_its_handlers() -> None:
    service = {
        "name": "S",
        "ty": "SERVICE",
        "retryPolicyInitialInterval": 100,
        "retryPolicyMaxAttempts": 3,
        "retryPolicyOnMaxAttempts": "KILL",
        "handlers": [{"name": "h", "input": {}}],
    }
    (h,) = read_manifest(_manifest(services=[service])).services[0].handlers
    assert h.retry == RetryPolicy(initial_interval_ms=100, max_attempts=3, on_max_attempts="kill")


def test_the_python_sdks_own_manifest_is_read() -> None:
    """The manifest restate-sdk (installed) serves, as its ``/discover`` would."""
    restate = pytest.importorskip("restate")
    from restate.discovery import compute_discovery_json
    from restate.endpoint import Endpoint
    from restate.retry_policy import InvocationRetryPolicy

    greeter = restate.Service("Greeter")

    @greeter.handler()
    async def greet(ctx: Any, name: str) -> str:
        return name

    @greeter.handler(invocation_retry_policy=InvocationRetryPolicy(max_attempts=9))
    async def noinput(ctx: Any) -> None:
        return None

    counter = restate.VirtualObject("Counter", enable_lazy_state=True)

    @counter.handler()
    async def add(ctx: Any, n: int) -> int:
        return n

    @counter.handler(kind="shared", enable_lazy_state=False)
    async def get(ctx: Any) -> int:
        return 1

    flow = restate.Workflow("Flow")

    @flow.main()
    async def run(ctx: Any, x: int) -> int:
        return x

    @flow.handler()
    async def signal(ctx: Any, x: int) -> None:
        return None

    endpoint = Endpoint()
    endpoint.bind(greeter, counter, flow)
    raw = compute_discovery_json(endpoint, 4, "request_response").encode()
    served = json.loads(raw)
    assert served["services"][0]["handlers"][1]["input"] == {}  # no input: "input": {}

    d = read_discovery(raw)
    assert d.wire == "restate"
    assert d.wire_info == {"version": 6, "mode": "REQUEST_RESPONSE", "manifest": served}
    text, number = {"type": "string"}, {"type": "integer"}
    optional = {"input_required": False}
    assert d.services == (
        ServiceInfo(
            "Greeter",
            "service",
            (
                HandlerInfo("greet", input_schema=text, output_schema=text, **optional),
                HandlerInfo("noinput", retry=RetryPolicy(max_attempts=9), **optional),
            ),
        ),
        ServiceInfo(
            "Counter",
            "object",
            (
                HandlerInfo("add", input_schema=number, output_schema=number, **optional),
                HandlerInfo("get", "shared", output_schema=number, **optional),
            ),
        ),
        ServiceInfo(
            "Flow",
            "workflow",
            (
                HandlerInfo(
                    "run", "workflow", input_schema=number, output_schema=number, **optional
                ),
                HandlerInfo("signal", "shared", input_schema=number, **optional),
            ),
        ),
    )
    assert lazy_handlers(d.wire_info) == {("Counter", "add")}


def test_input_and_output_json_schemas_are_read() -> None:
    """``input.jsonSchema``/``output.jsonSchema`` become the handler's schemas; JSON without
    one is any JSON (``{}``); a boolean schema (the Python SDK's ``true`` for ``-> object``)
    is ``{}`` or ``{"not": {}}``; no content type (or another) has none; ``input: {}`` (no
    input) is not required. What is not a schema is left out: it never refuses the endpoint."""
    point = {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}
    service = {
        "name": "S",
        "ty": "SERVICE",
        "handlers": [
            {
                "name": "typed",
                "input": {"required": True, "contentType": "application/json", "jsonSchema": point},
                "output": {"contentType": "application/json", "jsonSchema": {"type": "null"}},
            },
            {
                "name": "untyped",
                "input": {"contentType": "application/vnd.x+json; charset=utf-8"},
                "output": {"contentType": "application/json", "jsonSchema": True},
            },
            {"name": "never", "input": {"jsonSchema": False}, "output": {}},
            {"name": "raw", "input": {"contentType": "image/png"}, "output": {}},
            {"name": "none", "input": {}},
            {"name": "unsaid"},
            {"name": "odd", "input": {"jsonSchema": [1], "required": "yes"}, "output": "x"},
        ],
    }
    handlers = {
        h.name: h for h in read_manifest(_manifest(services=[service])).services[0].handlers
    }
    assert handlers["typed"] == HandlerInfo(
        "typed", input_schema=point, output_schema={"type": "null"}, input_required=True
    )
    assert handlers["untyped"] == HandlerInfo(
        "untyped", input_schema={}, output_schema={}, input_required=False
    )
    assert handlers["never"] == HandlerInfo("never", input_schema={"not": {}}, input_required=False)
    assert handlers["raw"] == HandlerInfo("raw", input_required=False)
    assert handlers["none"] == HandlerInfo("none", input_required=False)
    assert handlers["unsaid"] == HandlerInfo("unsaid")
    assert handlers["odd"] == HandlerInfo("odd")


@pytest.mark.parametrize(
    ("low", "high", "version"),
    [(5, 7, 6), (5, 5, 5), (5, 6, 6), (6, 6, 6), (6, 8, 6), (1, 5, 5), (4, 7, 6)],
)
def test_negotiation_picks_the_highest_common_version(low: int, high: int, version: int) -> None:
    assert (MIN_VERSION, MAX_VERSION) == (5, 6)
    assert negotiate(low, high) == version
    d = read_manifest(_manifest(minProtocolVersion=low, maxProtocolVersion=high))
    assert d.wire_info is not None and d.wire_info["version"] == version
    assert RestateProtocol.of(d).version == version


@pytest.mark.parametrize(
    ("low", "high", "message"),
    [
        (1, 4, r"the endpoint speaks service protocol V1\.\.V4; Ritornello speaks V5\.\.V6"),
        (3, 3, r"the endpoint speaks service protocol V3\.\.V3; Ritornello speaks V5\.\.V6"),
        (7, 8, r"the endpoint speaks service protocol V7\.\.V8; Ritornello speaks V5\.\.V6"),
        (7, 5, r"manifest protocol versions 7\.\.5 are not a range"),
        (None, 7, r"manifest protocol versions None\.\.7 are not a range"),
        ("5", "7", r"manifest protocol versions '5'\.\.'7' are not a range"),
        (5.0, 7, r"manifest protocol versions 5\.0\.\.7 are not a range"),
    ],
)
def test_versions_without_a_common_one_are_refused(low: Any, high: Any, message: str) -> None:
    with pytest.raises(ProtocolError, match=f"^{message}$"):
        negotiate(low, high)
    with pytest.raises(ProtocolError, match=f"^{message}$"):
        read_manifest(_manifest(minProtocolVersion=low, maxProtocolVersion=high))


def _without(field: str) -> dict[str, Any]:
    out = _manifest()
    del out[field]
    return out


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        (_without("services"), "the manifest's services must be a list"),
        (_manifest(services={"Greeter": {}}), "the manifest's services must be a list"),
        (_without("minProtocolVersion"), r"manifest protocol versions None\.\.7 are not a range"),
        (_manifest(protocolMode="HTTP"), "unknown protocolMode 'HTTP'"),
        (_manifest(services=["Greeter"]), "a service in the manifest is not an object"),
        (
            _manifest(services=[{"ty": "SERVICE", "handlers": []}]),
            "a service in the manifest has no name",
        ),
        (_manifest(services=[_service("")]), "a service in the manifest has no name"),
        (_manifest(services=[_service("S", "ACTOR")]), "service 'S' has an unknown ty 'ACTOR'"),
        (_manifest(services=[_service("S", None)]), "service 'S' has an unknown ty None"),
        (
            _manifest(services=[_service("S", "VIRTUAL_OBJECT", ty="READ")]),
            "handler S/h has an unknown ty 'READ'",
        ),
        (
            _manifest(services=[{"name": "S", "ty": "SERVICE", "handlers": ["h"]}]),
            "a handler of 'S' is not an object",
        ),
        (
            _manifest(services=[{"name": "S", "ty": "SERVICE", "handlers": [{"input": {}}]}]),
            "a handler in the manifest has no name",
        ),
    ],
)
def test_a_bad_manifest_says_what_is_wrong(manifest: dict[str, Any], message: str) -> None:
    with pytest.raises(ProtocolError, match=f"^{message}$"):
        read_manifest(manifest)
    # what read_discovery takes for a manifest (it names minProtocolVersion) says the same;
    # without it, the answer is read as Ritornello's, which refuses it too
    with pytest.raises(ProtocolError, match=f"^{message}$" if is_manifest(manifest) else None):
        read_discovery(json.dumps(manifest).encode())


def test_a_service_without_handlers_is_kept_empty() -> None:
    services = [{"name": "S", "ty": "SERVICE", "handlers": []}, {"name": "T", "ty": "SERVICE"}]
    d = read_manifest(_manifest(services=services))
    assert d.services == (ServiceInfo("S", "service", ()), ServiceInfo("T", "service", ()))


def test_read_discovery_tells_the_two_wires_apart() -> None:
    ours = DiscoveryResponse(
        services=(
            ServiceInfo(
                "S",
                "object",
                (HandlerInfo("h"), HandlerInfo("g", "shared", RetryPolicy(2))),
            ),
        ),
        stream=True,
    )
    read = read_discovery(ours.encode())
    assert read == ours and read.wire == "ritornello" and read.wire_info is None
    assert not is_manifest(json.loads(ours.encode()))
    assert is_manifest(MANIFEST)
    assert read_discovery(json.dumps(MANIFEST).encode()).wire == "restate"
    with pytest.raises(ProtocolError, match=r"^discovery answer is not JSON"):
        read_discovery(b"<html>")
    with pytest.raises(ProtocolError):  # JSON, but neither kind of answer
        read_discovery(b'{"services": []}')
    assert RestateProtocol(6).read_discovery(json.dumps(MANIFEST).encode()) == read_manifest(
        MANIFEST
    )


def test_the_discovery_response_round_trips_with_its_wire() -> None:
    d = read_manifest(_manifest())
    again = DiscoveryResponse.decode(d.encode())
    assert again == d
    assert again.wire == "restate"
    assert again.wire_info == {"version": 6, "mode": "REQUEST_RESPONSE", "manifest": MANIFEST}
    flaky = again.services[0].handler("flaky")
    assert flaky is not None and flaky.retry == RetryPolicy(100, 1.5, 5000, 4, "kill")
    # and so does a decoded record read again through read_discovery (a Ritornello answer)
    assert read_discovery(d.encode()) == d


def test_lazy_state_and_the_adapter_of_a_deployment() -> None:
    d = read_manifest(_manifest(minProtocolVersion=5, maxProtocolVersion=5))
    assert d.wire_info is not None
    # enableLazyState: the handler's, else its service's
    assert lazy_handlers(d.wire_info) == {("Counter", "add"), ("Counter", "plain")}
    assert lazy_handlers({}) == frozenset()
    adapter = RestateProtocol.of(d)
    assert adapter.name == "restate"
    assert adapter.version == 5
    assert adapter.lazy == {("Counter", "add"), ("Counter", "plain")}
    assert adapter.headers() == {
        "content-type": "application/vnd.restate.invocation.v5",
        "accept": "application/vnd.restate.invocation.v5",
    }
    assert content_type(6) == "application/vnd.restate.invocation.v6"
    # a record without wire_info (written before it was kept) speaks V6, eager state
    bare = RestateProtocol.of(DiscoveryResponse(services=(), wire="restate"))
    assert (bare.version, bare.lazy) == (6, frozenset())


def test_durations_in_a_manifest_are_milliseconds() -> None:
    """``retryPolicyInitialInterval`` is ms on the wire (the SDKs write timedelta as ms)."""
    ms = int(timedelta(seconds=2).total_seconds() * 1000)
    service = _service("S", retryPolicyInitialInterval=ms, retryPolicyMaxInterval=ms * 10)
    (h,) = read_manifest(_manifest(services=[service])).services[0].handlers
    assert h.retry == RetryPolicy(initial_interval_ms=2000, max_interval_ms=20000)


def test_max_attempts_zero_is_one_as_restate_reads_it() -> None:
    found = read_manifest(_manifest(services=[_service("S", retryPolicyMaxAttempts=0)]))
    retry = found.services[0].handlers[0].retry
    assert retry is not None and retry.max_attempts == 1
