"""The ingress (port 8080): Restate's HTTP ingress paths as a raw ASGI app (the hot path),
its input checks, its request header limits, its bearer-token auth, its request spans (a
wrapper, when tracing is on), and the HTTP status of each orchestrator error."""

from ritornello.orchestrator._json import MAX_JSON_DEPTH
from ritornello.orchestrator.ingress._app import IngressApp, asgi_lifespan
from ritornello.orchestrator.ingress._auth import (
    BearerToken,
    authorization,
    redact,
    redact_names,
    send_unauthorized,
)
from ritornello.orchestrator.ingress._channel import advertised_url
from ritornello.orchestrator.ingress._headers import HeaderLimits, handler_headers
from ritornello.orchestrator.ingress._input import MAX_DELAY_MS, HttpError, parse_delay
from ritornello.orchestrator.ingress._status import http_status
from ritornello.orchestrator.ingress._traced import TracedIngress

__all__ = [
    "MAX_DELAY_MS",
    "MAX_JSON_DEPTH",
    "BearerToken",
    "HeaderLimits",
    "HttpError",
    "IngressApp",
    "TracedIngress",
    "advertised_url",
    "asgi_lifespan",
    "authorization",
    "handler_headers",
    "http_status",
    "parse_delay",
    "redact",
    "redact_names",
    "send_unauthorized",
]
