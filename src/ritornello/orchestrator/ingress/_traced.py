"""The ingress with its request spans (docs/tracing.md): an ASGI wrapper put around the
ingress app only when tracing is on, so with tracing off a request pays nothing for it.

Per HTTP request, a ``server`` span named for its target (``ingress Greeter/greet``, or the
kind of request: ``ingress attach``, ``ingress awakeables``), a child of the W3C
``traceparent`` the request carries (both our paths and Restate's), else the root of a new
trace. The app sees the request with ``traceparent`` naming this span (``tracestate`` kept),
so the invocation it creates journals it in its input entry: the invocation's span is this
span's child, and the trace survives a restart. The span carries the method, the path, the
status and the invocation id the answer names (``x-restate-id``); a 5xx marks it failed.
``/health`` (a load balancer's probe, many a minute) gets none.
"""

from __future__ import annotations

import time
from collections.abc import MutableMapping
from typing import Any

from .._tracing import INVOCATION_ID, Span, TraceParent, Tracing, parse_traceparent
from ._app import IngressApp, Receive, Scope, Send

_TRACE_HEADERS = (b"traceparent", b"tracestate")


class TracedIngress:
    """``app`` (the ingress) with a span per HTTP request, exported through ``tracing``."""

    def __init__(self, app: IngressApp, tracing: Tracing) -> None:
        self.app = app
        self.tracing = tracing

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") == "/health":  # no span per probe
            await self.app(scope, receive, send)
            return
        tracing = self.tracing
        given: dict[bytes, str] = {}
        headers: list[tuple[bytes, bytes]] = []
        for name, value in scope.get("headers", ()):
            if name.lower() in _TRACE_HEADERS:
                given[name.lower()] = value.decode("latin-1")
            else:
                headers.append((name, value))
        parent = parse_traceparent(given.get(b"traceparent"), given.get(b"tracestate"))
        span_id = tracing.new_span_id()
        trace = parent.child(span_id) if parent else TraceParent(tracing.new_trace_id(), span_id)
        headers.append((b"traceparent", trace.header().encode()))
        if trace.state:
            headers.append((b"tracestate", trace.state.encode("latin-1")))
        answered: dict[str, Any] = {}

        async def sending(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                answered["status"] = message["status"]
                for name, value in message.get("headers", ()):
                    if name == b"x-restate-id":
                        answered["invocation_id"] = value.decode("latin-1")
            await send(message)

        start = time.time_ns()
        try:
            await self.app({**scope, "headers": headers}, receive, sending)
        finally:
            status = answered.get("status", 500)
            attributes: dict[str, Any] = {
                "http.request.method": scope.get("method", ""),
                "url.path": scope.get("path", ""),
                "http.response.status_code": status,
            }
            if "invocation_id" in answered:
                attributes[INVOCATION_ID] = answered["invocation_id"]
            tracing.export(
                Span(
                    "ingress " + target_of(scope.get("path", "")),
                    trace,
                    span_id,
                    parent.span_id if parent else 0,
                    start,
                    time.time_ns(),
                    attributes,
                    f"HTTP {status}" if status >= 500 else None,
                    "server",
                    remote=parent is not None,
                )
            )


def target_of(path: str) -> str:
    """What a request path names, for a span's name: ``Service/handler`` for a call or send
    (ours, Restate's and the legacy forms; without the key, which would make one name per
    object), else the kind of request (``attach``, ``awakeables``, ...)."""
    segs = [s for s in path.split("/") if s]
    if len(segs) >= 4 and segs[0] == "restate" and segs[1] in ("call", "send"):
        return f"{segs[2]}/{segs[-1]}"
    if segs and segs[0] == "restate":
        return segs[1] if len(segs) > 1 else "restate"
    if segs and segs[-1] == "send":
        segs = segs[:-1]
    if len(segs) >= 2:
        return f"{segs[0]}/{segs[-1]}"
    return segs[0] if segs else "/"
