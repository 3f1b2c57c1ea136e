"""An attempt with its spans (docs/tracing.md): what a driver does instead of
``adapter.attempt`` when tracing is on.

Per attempt: an ``attempt`` span, child of the invocation's span, whose context goes to the
handler (``Exchange.trace``: the endpoint's SDK parents its step spans on it); for each new
``run``, ``call``, ``send`` and ``sleep`` entry of the answer, a span child of the attempt's
(named ``run NAME``, ``call SERVICE/HANDLER``, ``send ...``, ``sleep``) with its entry index;
each ``call``/``send`` entry gets its span's context in the headers it gives the callee
(``traceparent``), so the callee's invocation span is that span's child. When the answer is
``done``, the invocation's span (from its creation to now) is exported too.

The orchestrator learns of an entry when the answer holding it arrives: a ``run``/``call``/
``send`` span runs from the attempt's start to then (the step's own duration is the SDK's step
span), a ``sleep`` span from then for the sleep's duration.
"""

from __future__ import annotations

import time
from typing import Any

from .._json import loads
from .._tracing import (
    ATTEMPT,
    ENTRY_INDEX,
    HANDLER,
    INVOCATION_ID,
    SERVICE,
    Span,
    TraceParent,
    Tracing,
    invocation_span_id,
)
from ..core import Answered, AttemptFailed, Invoke
from ..invokers import Invoker
from ..protocols import Exchange, ProtocolAdapter

#: The entries that get a span of their own.
TRACED_KINDS = frozenset({"run", "call", "send", "sleep"})


async def traced_attempt(
    tracing: Tracing,
    adapter: ProtocolAdapter,
    invoker: Invoker,
    invoke: Invoke,
    exchange: Exchange,
    timeout_s: float,
) -> Answered | AttemptFailed:
    """``adapter.attempt(...)`` with its spans exported (see the module docstring)."""
    inv = invoke.invocation
    rec = inv.rec
    trace = tracing.trace_of(rec.id, lambda: loads(inv.entries[0]))
    invocation_span = invocation_span_id(rec.id)
    attempt_span = tracing.new_span_id()
    exchange.trace = trace.child(attempt_span)
    base = len(inv.entries)  # the index of the answer's first entry
    start = time.time_ns()
    event = await adapter.attempt(invoker, invoke, exchange, timeout_s)
    now = time.time_ns()
    about: dict[str, Any] = {
        INVOCATION_ID: rec.id,
        SERVICE: rec.service,
        HANDLER: rec.handler,
        ATTEMPT: rec.attempt,
    }
    error: str | None
    if isinstance(event, Answered):
        answer = event.answer
        error = None
        if answer.status == "error":
            error = str((answer.error or {}).get("message", "the handler failed"))
        for n, entry in enumerate(answer.entries):
            if entry.get("kind") in TRACED_KINDS:
                tracing.export(
                    _entry_span(tracing, trace, attempt_span, entry, base + n, about, start, now)
                )
        if answer.status == "done":
            failure = answer.entries[-1].get("failure")
            tracing.export(
                Span(
                    f"invocation {rec.service}/{rec.handler}",
                    trace,
                    invocation_span,
                    trace.span_id,
                    rec.created_at * 1_000_000,
                    now,
                    {k: v for k, v in about.items() if k != ATTEMPT},
                    _failure_text(failure),
                )
            )
        about["ritornello.answer"] = answer.status
    else:
        error = event.message
    tracing.export(
        Span(
            f"attempt {rec.service}/{rec.handler}",
            trace,
            attempt_span,
            invocation_span,
            start,
            now,
            about,
            error,
            "client",
        )
    )
    return event


def _entry_span(
    tracing: Tracing,
    trace: TraceParent,
    attempt_span: int,
    entry: Any,
    index: int,
    about: dict[str, Any],
    start: int,
    now: int,
) -> Span:
    """The span of the new entry ``entry`` at ``index``; a call or send is given its context
    in the headers for its callee."""
    kind = entry["kind"]
    span_id = tracing.new_span_id()
    name = entry.get("name")
    attributes = {**about, ENTRY_INDEX: index}
    if kind == "sleep":
        duration = entry.get("duration_ms")
        end = now + (duration * 1_000_000 if type(duration) is int and duration > 0 else 0)
        span_name, start, now = "sleep", now, end
    else:
        span_name = f"{kind} {name}" if isinstance(name, str) else kind
    if kind in ("call", "send"):
        given = entry.get("headers")
        headers = dict(given) if isinstance(given, dict) else {}
        trace.child(span_id).into(headers)
        entry["headers"] = headers  # the callee's input carries it (``_answer._flow``)
        if isinstance(entry.get("key"), str):
            attributes["ritornello.key"] = entry["key"]
    return Span(
        span_name,
        trace,
        span_id,
        attempt_span,
        start,
        now,
        attributes,
        _failure_text(entry.get("failure")),
        "client" if kind in ("call", "send") else "internal",
    )


def _failure_text(failure: Any) -> str | None:
    if not isinstance(failure, dict):
        return None
    return str(failure.get("message", "failed"))
