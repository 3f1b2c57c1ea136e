"""Trace context and the parts of tracing that need no exporter: W3C ``traceparent`` parsing
(a malformed one is ignored, never refused), the ingress wrapper's request spans (with a list
as the sink), the protocol's trace fields, and that with the variables unset no tracer exists
and nothing imports opentelemetry (the SDK only on an invocation that carries a trace)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ritornello.orchestrator import TracedIngress, Tracing, tracing_from_env
from ritornello.orchestrator import _tracing as tracing_module
from ritornello.orchestrator._tracing import (
    Span,
    TraceParent,
    invocation_span_id,
    invocation_trace,
    parse_traceparent,
)
from ritornello.orchestrator.core import Invocation
from ritornello.orchestrator.ingress._traced import target_of
from ritornello.orchestrator.protocols import encode_request
from ritornello.protocol import InvokeRequest, ProtocolError
from ritornello.store.records import InvocationRecord
from tests.asgi_call import asgi_call
from tests.procs import ROOT, free_port

TRACE = "0af7651916cd43dd8448eb211c80319c"
GOOD = f"00-{TRACE}-b7ad6b7169203331-01"


class ListSink:
    def __init__(self) -> None:
        self.spans: list[Span] = []

    def export(self, span: Span) -> None:
        self.spans.append(span)

    def shutdown(self) -> None:
        pass


def test_a_traceparent_is_read_as_w3c_says() -> None:
    found = parse_traceparent(GOOD, " vendor=abc ")
    assert found == TraceParent(int(TRACE, 16), 0xB7AD6B7169203331, 1, "vendor=abc")
    assert found is not None and found.header() == GOOD
    assert parse_traceparent(f"01-{TRACE}-b7ad6b7169203331-00-future") is not None
    for bad in (
        None,
        "",
        "garbage",
        f"00-{TRACE}-b7ad6b7169203331-01-extra",  # version 00 has four fields
        f"ff-{TRACE}-b7ad6b7169203331-01",  # version ff is invalid
        f"00-{TRACE.upper()}-b7ad6b7169203331-01",  # lower-case hex only
        f"00-{'0' * 32}-b7ad6b7169203331-01",  # all-zero trace id
        f"00-{TRACE}-{'0' * 16}-01",  # all-zero span id
        f"00-{TRACE[:-1]}-b7ad6b7169203331-01",
        f"00-{TRACE}-b7ad6b716920333g-01",
    ):
        assert parse_traceparent(bad) is None, bad
    too_long = parse_traceparent(GOOD, "v=" + "x" * 600)
    assert too_long is not None and too_long.state == ""


def test_an_invocation_without_a_trace_gets_one_derived_from_its_id() -> None:
    derived = invocation_trace("inv_a", {"content-type": "application/json"})
    assert derived.span_id == 0 and derived.trace_id != 0
    assert invocation_trace("inv_a", None) == derived  # the same in every process
    assert invocation_trace("inv_b", None).trace_id != derived.trace_id
    carried = invocation_trace("inv_a", {"traceparent": GOOD, "tracestate": "k=v"})
    assert (carried.trace_id, carried.state) == (int(TRACE, 16), "k=v")
    assert invocation_trace("inv_a", {"traceparent": 7}) == derived  # not a string: ignored
    assert invocation_span_id("inv_a") == invocation_span_id("inv_a") != invocation_span_id("b")
    headers = {"tracestate": "old"}
    TraceParent(1, 2).into(headers)
    assert headers == {"traceparent": f"00-{1:032x}-{2:016x}-01"}


def test_an_invocations_trace_is_read_once_from_its_input_entry() -> None:
    tracing, reads = Tracing(ListSink()), []

    def entry() -> dict[str, Any]:
        reads.append(1)
        return {"kind": "input", "headers": {"traceparent": GOOD}}

    first = tracing.trace_of("inv_a", entry)
    assert tracing.trace_of("inv_a", entry) == first and len(reads) == 1
    assert first.trace_id == int(TRACE, 16)
    assert tracing.trace_of("inv_b", lambda: {"kind": "input"}) == invocation_trace("inv_b", None)


def test_span_names_name_the_target_without_the_key() -> None:
    assert target_of("/restate/call/Greeter/greet") == "Greeter/greet"
    assert target_of("/restate/send/Counter/k1/add") == "Counter/add"
    assert target_of("/restate/call/Signup/id/run") == "Signup/run"
    assert target_of("/Counter/k1/add/send") == "Counter/add"
    assert target_of("/Greeter/greet") == "Greeter/greet"
    assert target_of("/restate/attach/inv_1") == "attach"
    assert target_of("/restate/a/sign_1/resolve") == "a"
    assert target_of("/health") == "health"
    assert target_of("/") == "/"


class _App:
    """An ingress stand-in: records the headers it sees, answers ``status``."""

    def __init__(self, status: int) -> None:
        self.status = status
        self.seen: list[dict[str, str]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.seen.append({k.decode(): v.decode() for k, v in scope["headers"]})
        headers = [(b"x-restate-id", b"inv_1")] if self.status < 400 else []
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": b"{}"})


def _traced(status: int) -> tuple[TracedIngress, _App, ListSink]:
    app, sink = _App(status), ListSink()
    return TracedIngress(app, Tracing(sink)), app, sink  # type: ignore[arg-type]


def test_the_ingress_span_is_a_child_of_the_request_traceparent_and_handed_on() -> None:
    traced, app, sink = _traced(200)
    headers = {"traceparent": GOOD, "tracestate": "v=1", "content-type": "application/json"}
    status, answer, _ = asyncio.run(asgi_call(traced, "POST", "/restate/call/A/b", b"1", headers))
    assert (status, answer["x-restate-id"]) == (200, "inv_1")
    (span,) = sink.spans
    assert (span.name, span.kind, span.remote, span.error) == ("ingress A/b", "server", True, None)
    assert span.trace.trace_id == int(TRACE, 16) and span.parent_id == 0xB7AD6B7169203331
    assert span.attributes == {
        "http.request.method": "POST",
        "url.path": "/restate/call/A/b",
        "http.response.status_code": 200,
        "ritornello.invocation_id": "inv_1",
    }
    (seen,) = app.seen  # the app sees this span as the parent, the tracestate kept
    assert seen["traceparent"] == f"00-{TRACE}-{span.span_id:016x}-01"
    assert seen["tracestate"] == "v=1" and seen["content-type"] == "application/json"


def test_a_malformed_traceparent_starts_a_new_trace_and_a_5xx_is_an_error() -> None:
    traced, app, sink = _traced(503)
    headers = {"traceparent": "00-nonsense", "tracestate": "dropped=1"}
    status, _, _ = asyncio.run(asgi_call(traced, "POST", "/Greeter/greet", b"1", headers))
    assert status == 503  # the request itself is served as without tracing
    (span,) = sink.spans
    assert span.parent_id == 0 and not span.remote and span.error == "HTTP 503"
    assert "ritornello.invocation_id" not in span.attributes
    assert app.seen[0]["traceparent"] == span.trace.child(span.span_id).header()
    assert "tracestate" not in app.seen[0]


def test_health_probes_get_no_span() -> None:
    traced, app, sink = _traced(200)
    assert asyncio.run(asgi_call(traced, "GET", "/health", headers={"traceparent": GOOD}))[0] == 200
    assert sink.spans == [] and app.seen[0]["traceparent"] == GOOD  # passed through as it is


def test_a_failing_sink_never_fails_the_request(caplog: pytest.LogCaptureFixture) -> None:
    class Broken(ListSink):
        def export(self, span: Span) -> None:
            raise RuntimeError("collector gone")

    traced = TracedIngress(_App(200), Tracing(Broken()))  # type: ignore[arg-type]
    with caplog.at_level(logging.ERROR, "ritornello.tracing"):
        assert asyncio.run(asgi_call(traced, "POST", "/A/b", b"1"))[0] == 200
    assert "could not export span ingress A/b" in caplog.text


def _invocation() -> Invocation:
    rec = InvocationRecord("inv_1", "A", "b", None, "exclusive", "running", "dp_1", 1, 1, 1)
    return Invocation.created(rec, '{"kind":"input","value":1}')


def test_the_request_carries_the_attempt_trace_only_when_tracing() -> None:
    plain = InvokeRequest.decode(encode_request(_invocation()))
    assert (plain.traceparent, plain.tracestate) == (None, None)
    assert "traceparent" not in plain.to_dict()
    trace = TraceParent(int(TRACE, 16), 5, 1, "v=1")
    traced = InvokeRequest.decode(encode_request(_invocation(), trace))
    assert (traced.traceparent, traced.tracestate) == (trace.header(), "v=1")
    assert InvokeRequest.decode(traced.encode()) == traced
    for bad in ({"traceparent": 5}, {"tracestate": ["x"]}):
        body = {**json.loads(encode_request(_invocation())), **bad}
        with pytest.raises(ProtocolError, match="must be a string"):
            InvokeRequest.decode(body)


def test_without_the_variables_there_is_no_tracer(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in tracing_module.ENDPOINT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert tracing_from_env() is None
    assert tracing_from_env({"OTEL_SERVICE_NAME": "x", "OTEL_EXPORTER_OTLP_ENDPOINT": ""}) is None
    made = tracing_from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"})
    assert made is not None
    made.shutdown()


def test_without_the_extra_it_says_so_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "ritornello.orchestrator._otlp", None)  # not importable
    monkeypatch.setattr(tracing_module, "_warned", False)
    env = {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:9/v1/traces"}
    with caplog.at_level(logging.WARNING, "ritornello.tracing"):
        assert tracing_from_env(env) is None
        assert tracing_from_env(env) is None
    (record,) = caplog.records
    assert "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set" in record.getMessage()
    assert "ritornello[otel]" in record.getMessage()


_UNTRACED = """
import asyncio, sys
sys.path.insert(0, "tests/tracing")
import tracedapp
from ritornello.cli import _serve
from ritornello.orchestrator import Engine, tracing_from_env
from ritornello.protocol import InvokeRequest
assert tracing_from_env() is None
assert "opentelemetry" not in " ".join(sys.modules), "imported with the handlers"
request = InvokeRequest("inv_1", "Hotel", "reserve", None, 1, [{"kind": "input", "value": "x"}])
answer = asyncio.run(tracedapp.endpoint.invoke(request))
assert answer.status == "checkpoint" or answer.entries, answer
assert "opentelemetry" not in " ".join(sys.modules), "imported by an untraced invocation"
traced = InvokeRequest(
    "inv_1", "Hotel", "reserve", None, 1, [{"kind": "input", "value": "x"}],
    traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
)
asyncio.run(tracedapp.endpoint.invoke(traced))
assert "opentelemetry.trace" in sys.modules, "a traced invocation imports it"
print("ok")
"""


def test_nothing_imports_opentelemetry_until_an_invocation_carries_a_trace() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    done = subprocess.run(
        [sys.executable, "-c", _UNTRACED],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=env,
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


_SERVED_UNTRACED = """
import asyncio, os, signal, sys
from ritornello.cli._serve import run_orchestrator
from ritornello.orchestrator import load_settings
ports = [int(p) for p in sys.argv[1:3]]
settings = load_settings(
    store=f"sqlite:///{sys.argv[3]}", ingress_port=ports[0], admin_port=ports[1]
)
seen = {}

async def started(engine):
    seen["tracing"] = engine.tracing
    asyncio.get_running_loop().call_later(0.3, os.kill, os.getpid(), signal.SIGTERM)

asyncio.run(run_orchestrator(settings, on_started=started))
assert seen == {"tracing": None}, seen
# (FastAPI imports opentelemetry's API itself, for the admin app: the exporter is ours)
ours = ("ritornello.orchestrator._otlp", "opentelemetry.sdk", "opentelemetry.exporter")
assert not [m for m in sys.modules if m.startswith(ours)], "an exporter was loaded"
print("ok")
"""


def test_serve_without_the_variables_creates_no_tracer(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    args = [str(free_port()), str(free_port()), str(tmp_path / "r.db")]
    done = subprocess.run(
        [sys.executable, "-c", _SERVED_UNTRACED, *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=env,
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
