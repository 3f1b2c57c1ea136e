"""Step spans (docs/tracing.md): a span around each ``ctx.run`` step an attempt executes, when
the orchestrator sent the attempt's trace context and ``opentelemetry-api`` is importable.

The SDK stays stdlib-only: opentelemetry is imported here, and this module is imported only on
the first invocation that carries a ``traceparent`` (never at the handler module's import
time). Spans go to the process's global tracer provider (the application configures it; with
none, opentelemetry's no-op one: nothing is recorded). A step span is a child of the
orchestrator's attempt span, named ``step NAME``, and carries ``ritornello.invocation_id``,
service, handler, attempt and entry index; it is current while the step runs, so the step's
own spans (an HTTP client's, say) are its children. Replayed steps do not run: no span.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from ritornello.sdk._futures import StepOutcome

_loaded = False
_tracer: StepTracer | None = None


class StepTracer:
    """Spans of executed steps, parented on the attempt's trace context."""

    def __init__(self) -> None:
        from opentelemetry import trace
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self._trace = trace
        self._tracer = trace.get_tracer("ritornello.sdk")
        self._propagator = TraceContextTextMapPropagator()

    def parent(self, traceparent: str, tracestate: str | None) -> Any:
        """The opentelemetry context an attempt's trace context names."""
        carrier = {"traceparent": traceparent}
        if tracestate:
            carrier["tracestate"] = tracestate
        return self._propagator.extract(carrier)

    async def traced(
        self,
        step: Coroutine[Any, Any, StepOutcome],
        name: str,
        parent: Any,
        attributes: dict[str, Any],
    ) -> StepOutcome:
        """``step`` run inside a span ``step NAME`` (ended with its outcome)."""
        status = self._trace.Status
        error = self._trace.StatusCode.ERROR
        with self._tracer.start_as_current_span(
            f"step {name}", context=parent, attributes=attributes
        ) as span:
            outcome = await step
            if outcome.failure is not None:
                span.set_status(status(error, outcome.failure.get("message", "failed")))
            elif outcome.crashed:
                span.set_status(status(error, "the step raised: the attempt fails"))
            return outcome


def step_tracer() -> StepTracer | None:
    """The step tracer, made on first use; None when ``opentelemetry-api`` is not installed."""
    global _loaded, _tracer
    if not _loaded:
        _loaded = True
        try:
            _tracer = StepTracer()
        except ImportError:
            _tracer = None
    return _tracer
