"""Traces end to end (docs/tracing.md): ``ritornello dev`` started with the standard
``OTEL_EXPORTER_OTLP_*`` variables exports its spans over OTLP/HTTP (protobuf) to a real
receiver on loopback (``otlp_receiver``), the SDK's step spans included; the trace id of an
incoming ``traceparent`` is kept across a call, and across a restart of the orchestrator."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.procs import ROOT, free_port, http, wait_port, wait_until
from tests.tracing.otlp_receiver import ReceivedSpan, Receiver

APP = str(ROOT / "tests" / "tracing" / "tracedapp.py")
TRACE = "0af7651916cd43dd8448eb211c80319c"
PARENT = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE}-{PARENT}-01"


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    found = Receiver()
    server, url = found.start()
    try:
        yield found, url
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def dev(
    tmp: Path, env: dict[str, str], name: str = "dev"
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``ritornello dev tracedapp.py`` on free ports over ``tmp/r.db``: its ingress URL and
    process (stopped with SIGTERM at the end if still running)."""
    ingress, admin = free_port(), free_port()
    command = [
        sys.executable,
        "-m",
        "ritornello",
        "dev",
        APP,
        "--store",
        f"sqlite:///{tmp / 'r.db'}",
    ]
    command += ["--ingress-port", str(ingress), "--admin-port", str(admin)]
    with (tmp / f"{name}.log").open("wb") as out:
        proc = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env={**os.environ, **env}
        )
    try:
        wait_port(ingress, proc)
        yield f"http://127.0.0.1:{ingress}", proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _one(spans: list[ReceivedSpan], name: str, invocation_id: str | None = None) -> ReceivedSpan:
    found = [
        s
        for s in spans
        if s.name == name
        and (invocation_id is None or s.attributes.get("ritornello.invocation_id") == invocation_id)
    ]
    assert len(found) == 1, (name, [s.name for s in spans])
    return found[0]


def test_a_call_is_traced_from_the_ingress_through_steps_sleeps_and_the_callee(
    tmp_path: Path, receiver: tuple[Receiver, str]
) -> None:
    got, url = receiver
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": url,
        "OTEL_SERVICE_NAME": "orders",
        "OTEL_EXPORTER_OTLP_HEADERS": "x-api-key=secret%20one",
    }
    with dev(tmp_path, env) as (ingress, _):
        headers = {"traceparent": TRACEPARENT, "tracestate": "vendor=abc"}
        status, answer, answered = http(
            "POST", f"{ingress}/restate/call/Trip/book", "Rome", headers=headers
        )
        assert (status, answer) == (200, "flight to Rome, room in Rome")
        caller = answered["x-restate-id"]
        wait_until(lambda: len(got.named("invocation ")) == 2, 20, "both invocation spans")
        wait_until(lambda: len(got.named("ingress ")) == 1, 20, "the ingress span")
    spans = list(got.spans)
    assert got.rejected == 0
    assert {s.trace_id for s in spans} == {TRACE}  # one trace: the caller's
    assert {s.service_name for s in spans} == {"orders"}
    assert all(h.get("x-api-key") == "secret one" for h in got.headers)
    by_id = {s.span_id: s for s in spans}

    ingress_span = _one(spans, "ingress Trip/book")
    assert ingress_span.parent_id == PARENT  # the client's span
    assert ingress_span.attributes["ritornello.invocation_id"] == caller
    assert ingress_span.attributes["http.response.status_code"] == 200

    book = _one(spans, "invocation Trip/book")
    assert book.parent_id == ingress_span.span_id
    assert book.attributes["ritornello.invocation_id"] == caller
    assert book.attributes["ritornello.service"] == "Trip"
    attempts = [s for s in spans if s.name == "attempt Trip/book"]
    assert len(attempts) >= 2  # suspended at the sleep and at the call, then done
    assert all(a.parent_id == book.span_id for a in attempts)
    assert all(a.attributes["ritornello.attempt"] == 1 for a in attempts)

    run = _one(spans, "run buy_flight")
    sleep = _one(spans, "sleep")
    call = _one(spans, "call Hotel/reserve")
    assert (
        run.attributes["ritornello.entry_index"],
        sleep.attributes["ritornello.entry_index"],
    ) == (1, 2)
    assert call.attributes["ritornello.entry_index"] == 3
    for entry in (run, sleep, call):
        assert by_id[entry.parent_id].name == "attempt Trip/book"
        assert entry.attributes["ritornello.invocation_id"] == caller
    assert sleep.end_ns - sleep.start_ns == 50_000_000

    # the SDK's step span: a child of the attempt that ran it
    step = _one(spans, "step buy_flight")
    assert step.parent_id == run.parent_id
    assert step.attributes["ritornello.invocation_id"] == caller

    # the callee: its invocation span is the call span's child
    reserve = _one(spans, "invocation Hotel/reserve")
    callee = reserve.attributes["ritornello.invocation_id"]
    assert callee != caller and callee.startswith("inv_")
    assert reserve.parent_id == call.span_id
    callee_attempt = _one(spans, "attempt Hotel/reserve")
    assert callee_attempt.parent_id == reserve.span_id
    assert _one(spans, "run pick_room").parent_id == callee_attempt.span_id
    assert _one(spans, "step pick_room").parent_id == callee_attempt.span_id


def test_the_trace_survives_a_restart_of_the_orchestrator(
    tmp_path: Path, receiver: tuple[Receiver, str]
) -> None:
    got, url = receiver
    env = {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": url + "/v1/traces"}
    with dev(tmp_path, env, "first") as (ingress, first):
        status, sent, _ = http(
            "POST",
            f"{ingress}/restate/send/Trip/wait",
            2.0,
            headers={"traceparent": TRACEPARENT},
        )
        assert status == 202, sent
        inv_id = sent["invocationId"]
        wait_until(lambda: got.named("attempt Trip/wait"), 20, "the first attempt's span")
        first.send_signal(signal.SIGKILL)  # no drain, no flush
        first.wait()
    (accepted,) = got.named("ingress Trip/wait")
    assert accepted.attributes["ritornello.invocation_id"] == inv_id
    with dev(tmp_path, env, "second"):
        wait_until(lambda: got.named("invocation Trip/wait"), 20, "the invocation's span")
    done = _one(got.spans, "invocation Trip/wait", inv_id)
    assert (done.trace_id, done.parent_id) == (TRACE, accepted.span_id)
    later = _one(got.spans, "run after_sleep", inv_id)
    assert later.trace_id == TRACE
    assert _one(got.spans, "step after_sleep").trace_id == TRACE
