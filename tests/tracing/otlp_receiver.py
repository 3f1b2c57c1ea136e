"""A real OTLP/HTTP trace receiver on loopback for the tracing tests: ``POST /v1/traces`` with
a protobuf ``ExportTraceServiceRequest`` (opentelemetry-proto decodes it), every span kept
with its resource's service name; anything else is answered 400 and counted."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)


@dataclass
class ReceivedSpan:
    name: str
    trace_id: str
    span_id: str
    parent_id: str  # "" for a root span
    service_name: str
    attributes: dict[str, Any]
    error: str | None
    start_ns: int
    end_ns: int


def _value(v: Any) -> Any:
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind is not None else None


@dataclass
class Receiver:
    """The server and what it received (``spans``; ``rejected``: requests it could not read;
    ``headers``: each request's headers)."""

    spans: list[ReceivedSpan] = field(default_factory=list)
    rejected: int = 0
    headers: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> tuple[ThreadingHTTPServer, str]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                request = ExportTraceServiceRequest()
                try:
                    if self.path != "/v1/traces":
                        raise ValueError(self.path)
                    request.ParseFromString(body)
                except Exception:
                    with receiver.lock:
                        receiver.rejected += 1
                    self.send_response(400)
                    self.end_headers()
                    return
                receiver.add(request, dict(self.headers))
                out = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server, f"http://127.0.0.1:{server.server_address[1]}"

    def add(self, request: ExportTraceServiceRequest, headers: dict[str, str]) -> None:
        spans = []
        for rs in request.resource_spans:
            resource = {a.key: _value(a.value) for a in rs.resource.attributes}
            for ss in rs.scope_spans:
                for s in ss.spans:
                    spans.append(
                        ReceivedSpan(
                            s.name,
                            s.trace_id.hex(),
                            s.span_id.hex(),
                            s.parent_span_id.hex(),
                            str(resource.get("service.name")),
                            {a.key: _value(a.value) for a in s.attributes},
                            s.status.message if s.status.code == 2 else None,
                            s.start_time_unix_nano,
                            s.end_time_unix_nano,
                        )
                    )
        with self.lock:
            self.spans.extend(spans)
            self.headers.append({k.lower(): v for k, v in headers.items()})

    def named(self, prefix: str) -> list[ReceivedSpan]:
        with self.lock:
            return [s for s in self.spans if s.name.startswith(prefix)]
