"""Traces (docs/tracing.md): W3C trace context, the spans the orchestrator reports, and whether
it reports any at all.

Tracing is on when ``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is
set and the ``otel`` extra is installed (``tracing_from_env``); otherwise there is no
``Tracing`` object at all, and each place that would report a span does one ``is None`` check
(no span objects, no opentelemetry import). This module imports only the standard library: the
OTLP exporter lives in ``_otlp`` and is imported only when tracing is on.

The trace of an invocation is carried by its input entry's ``traceparent`` header (and
``tracestate``): the ingress journals it (its own request span as the parent when tracing is
on), a ``call``/``send`` gets its call span's context in the headers it gives the callee. So it
is persisted with the invocation, and a process that recovers the invocation continues the same
trace. An invocation whose input carries none (a schedule's, or one accepted while tracing was
off) has a trace of its own whose id is derived from its invocation id.

Invariants: the invocation span's id is derived from the invocation id alone
(``invocation_span_id``), so every attempt, in whatever process, names the same parent; every
span carries ``ritornello.invocation_id`` when it is about one invocation.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

log = logging.getLogger("ritornello.tracing")

#: Either one turns tracing on (the OpenTelemetry exporter's own variables).
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
#: The span attribute naming the invocation a span is about.
INVOCATION_ID = "ritornello.invocation_id"
SERVICE = "ritornello.service"
HANDLER = "ritornello.handler"
ATTEMPT = "ritornello.attempt"
ENTRY_INDEX = "ritornello.entry_index"

_HEX = frozenset("0123456789abcdef")
_TRACES_MAX = 4096
_warned = False


@dataclass(frozen=True, slots=True)
class TraceParent:
    """A W3C trace context: the trace, the parent span in it, its flags and ``tracestate``."""

    trace_id: int
    span_id: int
    flags: int = 1
    state: str = ""

    def header(self) -> str:
        """The ``traceparent`` header value (version 00)."""
        return f"00-{self.trace_id:032x}-{self.span_id:016x}-{self.flags:02x}"

    def child(self, span_id: int) -> TraceParent:
        """The same trace with ``span_id`` as the parent."""
        return TraceParent(self.trace_id, span_id, self.flags, self.state)

    def into(self, headers: dict[str, str]) -> None:
        """Set ``traceparent`` (and ``tracestate`` when there is one) in ``headers``."""
        headers["traceparent"] = self.header()
        if self.state:
            headers["tracestate"] = self.state
        else:
            headers.pop("tracestate", None)


def parse_traceparent(value: str | None, state: str | None = None) -> TraceParent | None:
    """``value`` read as a W3C ``traceparent`` (``tracestate``: ``state``), or None when it is
    absent or malformed (W3C: a malformed one is ignored, a new trace is started). Versions
    past 00 are read by their first four fields; ``ff`` and all-zero ids are invalid."""
    if not value:
        return None
    parts = value.strip().split("-")
    if len(parts) < 4 or [len(p) for p in parts[:4]] != [2, 32, 16, 2]:
        return None
    version, trace, span, flags = parts[:4]
    if not _HEX.issuperset(version + trace + span + flags) or version == "ff":
        return None
    if version == "00" and len(parts) != 4:
        return None
    trace_id, span_id = int(trace, 16), int(span, 16)
    if trace_id == 0 or span_id == 0:
        return None
    state = (state or "").strip()
    return TraceParent(trace_id, span_id, int(flags, 16), state if len(state) <= 512 else "")


def of_headers(headers: Mapping[str, Any] | None) -> TraceParent | None:
    """The trace context journaled headers carry (an input entry's), or None."""
    if not headers:
        return None
    value, state = headers.get("traceparent"), headers.get("tracestate")
    return parse_traceparent(
        value if isinstance(value, str) else None, state if isinstance(state, str) else None
    )


def _derived(text: str, size: int) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=size).digest()) or 1


def invocation_span_id(invocation_id: str) -> int:
    """The span id of an invocation's span: the same in every process."""
    return _derived("span:" + invocation_id, 8)


def invocation_trace(invocation_id: str, headers: Mapping[str, Any] | None) -> TraceParent:
    """An invocation's trace context as its input entry's ``headers`` hold it: the trace and
    the invocation span's parent; none there: a trace derived from the invocation id, with no
    parent (``span_id`` 0)."""
    found = of_headers(headers)
    if found is not None:
        return found
    return TraceParent(_derived("trace:" + invocation_id, 16), 0)


@dataclass(frozen=True, slots=True)
class Span:
    """A finished span, as a sink exports it. ``parent_id`` 0: a root span; ``remote``: the
    parent is another process's (a traceparent received). Times in Unix nanoseconds."""

    name: str
    trace: TraceParent  # its trace (and tracestate); its own ``span_id`` is ``span_id``
    span_id: int
    parent_id: int
    start_ns: int
    end_ns: int
    attributes: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    kind: str = "internal"  # internal | server | client
    remote: bool = False


class SpanSink(Protocol):
    """Where finished spans go: the OTLP exporter (``_otlp.OtlpSink``) or a test's list."""

    def export(self, span: Span) -> None:
        """Hand one finished span over (it must not block: the exporter batches)."""

    def shutdown(self) -> None:
        """Export what is pending, then stop."""


class Tracing:
    """The orchestrator's traces, exported through ``sink``."""

    def __init__(self, sink: SpanSink) -> None:
        self.sink = sink
        self._random = random.Random()
        #: invocation id -> its trace context, read once from its input entry (bounded:
        #: cleared when full; a miss reads the input entry again)
        self._traces: dict[str, TraceParent] = {}

    def trace_of(self, invocation_id: str, input_entry: Callable[[], Any]) -> TraceParent:
        """The trace context of ``invocation_id`` (``invocation_trace`` of the headers of its
        input entry, which ``input_entry()`` decodes), remembered across its attempts."""
        found = self._traces.get(invocation_id)
        if found is None:
            entry = input_entry()
            found = invocation_trace(invocation_id, entry.get("headers"))
            if len(self._traces) >= _TRACES_MAX:
                self._traces.clear()
            self._traces[invocation_id] = found
        return found

    def new_span_id(self) -> int:
        return self._random.getrandbits(64) or 1

    def new_trace_id(self) -> int:
        return self._random.getrandbits(128) or 1

    def export(self, span: Span) -> None:
        try:
            self.sink.export(span)
        except Exception:  # telemetry never fails the work it describes
            log.exception("could not export span %s", span.name)

    def shutdown(self) -> None:
        self.sink.shutdown()

    def trace_handlers_here(self) -> None:
        """Handlers served in this process (``ritornello dev``) export their SDK step spans
        through the same sink, when it can (the OTLP sink's global tracer provider)."""
        install = getattr(self.sink, "install_global", None)
        if install is not None:
            install()


def tracing_from_env(environ: Mapping[str, str] | None = None) -> Tracing | None:
    """Tracing as the standard variables ask (``ENDPOINT_VARIABLES``; the exporter reads
    ``OTEL_EXPORTER_OTLP_HEADERS`` and the rest itself, ``OTEL_SERVICE_NAME`` names the
    service): None when neither endpoint is set, or, said once in a warning, when the
    ``otel`` extra is not installed."""
    global _warned
    env = os.environ if environ is None else environ
    if not any(env.get(name) for name in ENDPOINT_VARIABLES):
        return None
    try:
        from ._otlp import OtlpSink
    except ImportError as exc:
        if not _warned:
            _warned = True
            log.warning(
                "%s is set but traces cannot be exported (%s): install ritornello[otel]",
                next(name for name in ENDPOINT_VARIABLES if env.get(name)),
                exc,
            )
        return None
    return Tracing(OtlpSink(env))
