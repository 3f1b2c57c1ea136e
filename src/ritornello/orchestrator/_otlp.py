"""The OTLP/HTTP (protobuf) span sink: the official ``opentelemetry-sdk`` batch processor and
``opentelemetry-exporter-otlp-proto-http`` exporter (the ``otel`` extra).

Imported only when tracing is on (``_tracing.tracing_from_env``). The orchestrator's spans are
finished records built from what it committed (``_tracing.Span``, their ids chosen by the
orchestrator so that another process can continue a trace), so they are handed to the batch
processor as ``ReadableSpan`` objects rather than started through a tracer. ``install_global()``
sets a ``TracerProvider`` over the same processor, for handlers served in this process
(``ritornello dev``): their SDK step spans leave through the same exporter.
"""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags, TraceState
from opentelemetry.trace.status import Status, StatusCode
from opentelemetry.util.re import parse_env_headers

from ._tracing import Span

_KINDS = {"internal": SpanKind.INTERNAL, "server": SpanKind.SERVER, "client": SpanKind.CLIENT}
_SCOPE = InstrumentationScope("ritornello")


def traces_endpoint(env: Mapping[str, str]) -> str:
    """Where spans are posted: ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` as it is, else
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` + ``/v1/traces`` (the OTLP specification's rule)."""
    own = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if own:
        return own
    return env["OTEL_EXPORTER_OTLP_ENDPOINT"].rstrip("/") + "/v1/traces"


class OtlpSink:
    """Spans batched and posted over OTLP/HTTP as ``env`` says (endpoint, headers, service)."""

    def __init__(self, env: Mapping[str, str]) -> None:
        headers = env.get("OTEL_EXPORTER_OTLP_TRACES_HEADERS") or env.get(
            "OTEL_EXPORTER_OTLP_HEADERS", ""
        )
        self.exporter = OTLPSpanExporter(
            endpoint=traces_endpoint(env), headers=parse_env_headers(headers, liberal=True)
        )
        self.processor = BatchSpanProcessor(self.exporter, schedule_delay_millis=500)
        self.resource = Resource.create(
            {SERVICE_NAME: env.get("OTEL_SERVICE_NAME") or "ritornello"}
        )

    def export(self, span: Span) -> None:
        trace = span.trace
        flags = TraceFlags(trace.flags & 1)
        state = TraceState.from_header([trace.state]) if trace.state else None
        context = SpanContext(trace.trace_id, span.span_id, False, flags, state)
        parent = None
        if span.parent_id:
            parent = SpanContext(trace.trace_id, span.parent_id, span.remote, flags, state)
        status = Status(StatusCode.ERROR, span.error) if span.error is not None else Status()
        self.processor.on_end(
            ReadableSpan(
                name=span.name,
                context=context,
                parent=parent,
                resource=self.resource,
                attributes=span.attributes,
                kind=_KINDS[span.kind],
                status=status,
                start_time=span.start_ns,
                end_time=span.end_ns,
                instrumentation_scope=_SCOPE,
            )
        )

    def install_global(self) -> None:
        """Make a tracer provider over this sink's processor the process's global one (the
        SDK's step spans of handlers served here use it), unless one is set already."""
        from opentelemetry import trace

        if isinstance(trace.get_tracer_provider(), TracerProvider):
            return  # the application configured its own
        provider = TracerProvider(resource=self.resource)
        provider.add_span_processor(self.processor)
        trace.set_tracer_provider(provider)

    def shutdown(self) -> None:
        self.processor.shutdown()  # type: ignore[no-untyped-call]
