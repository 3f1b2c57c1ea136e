"""Bearer-token auth for the admin API (docs/auth.md): ``protect(app, token)``.

With a token, every request needs ``Authorization: Bearer <token>`` except the public ones:
``GET``/``HEAD`` of ``/health`` (load balancer checks) and of the web UI's static files
(``/ui``, ``/ui/...``: the page asks the operator for the token and sends it with every API
call it makes). Anything else without the right token gets 401, ``WWW-Authenticate: Bearer``
and ``{"detail": ...}``, before any route, validation or store read runs.

Invariants:

* The check is a pure ASGI middleware around the whole app: a router added later, 404s and
  the OpenAPI document are covered too, and nothing can skip it by matching a route first.
* Everything under ``/ui`` must be static (HTML, scripts, styles): data only ever comes from the
  protected API paths.
* The token is compared in constant time and never logged; a refused request logs nothing
  (a flood of them cannot fill the logs).
* Without a token (``RITORNELLO_ADMIN_TOKEN`` unset or empty) the API is open and the OpenAPI
  document declares no security scheme.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI

from ritornello.orchestrator.ingress import BearerToken, authorization, send_unauthorized

__all__ = ["ADMIN_TOKEN_ENV", "BearerAuth", "is_public", "protect"]

ADMIN_TOKEN_ENV = "RITORNELLO_ADMIN_TOKEN"
SCHEME = "bearerAuth"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_REFUSED = (
    b'{"detail":"this admin API requires Authorization: Bearer <admin token> '
    b'(RITORNELLO_ADMIN_TOKEN)"}'
)


def is_public(method: str, path: str) -> bool:
    """Whether a request needs no token: reading ``/health`` or the UI's static files."""
    if method not in ("GET", "HEAD"):
        return False
    return path == "/health" or path == "/ui" or path.startswith("/ui/")


class BearerAuth:
    """The ASGI middleware: refuses every non-public HTTP request without the token."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._token = BearerToken(token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan" or (
            kind == "http"
            and (
                is_public(scope["method"], scope["path"])
                or self._token.matches(authorization(scope))
            )
        ):
            await self.app(scope, receive, send)
            return
        if kind == "http":
            await send_unauthorized(send, _REFUSED)
        else:  # a websocket (none are served): closed before it is accepted
            await send({"type": "websocket.close", "code": 1008})


def protect(app: FastAPI, token: str | None = None) -> FastAPI:
    """Require ``token`` on ``app`` (None: ``RITORNELLO_ADMIN_TOKEN``; empty: no auth) and
    declare it in the OpenAPI document. Call it once, after the routers are included."""
    if token is None:
        token = os.environ.get(ADMIN_TOKEN_ENV, "")
    if not token:
        return app
    app.add_middleware(BearerAuth, token=token)
    _declare(app)
    return app


def _declare(app: FastAPI) -> None:
    """The OpenAPI document: a global bearer requirement, lifted for the public paths, and a
    401 answer on every protected operation."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
        schemes[SCHEME] = {
            "type": "http",
            "scheme": "bearer",
            "description": "the admin token (RITORNELLO_ADMIN_TOKEN)",
        }
        schema["security"] = [{SCHEME: []}]
        for path, item in schema.get("paths", {}).items():
            for method, op in item.items():
                if not isinstance(op, dict):
                    continue
                if is_public(method.upper(), path):
                    op["security"] = []
                else:
                    op.setdefault("responses", {}).setdefault(
                        "401", {"description": "missing or wrong bearer token"}
                    )
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
