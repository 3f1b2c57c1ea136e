"""The admin API app. Shaped like Restate's admin API where it has one.

``create_app`` only composes routers, one module per resource (``_health``, ``_deployments``,
``_services``, ``_invocations``, ``_state``, ``_metrics``, ...); the JSON shapes live in
``_models`` (pydantic, for OpenAPI) and ``_views`` (record -> dict). Other parts (schedules,
UI, auth) plug in here with one ``include_router`` / hook line each — keep them.
"""

from __future__ import annotations

from fastapi import FastAPI

from ritornello.admin._auth import protect
from ritornello.admin._deployments import deployments_router
from ritornello.admin._errors import install_error_handlers
from ritornello.admin._health import health_router
from ritornello.admin._invocations import invocations_router
from ritornello.admin._limits import BodyLimit, HeaderLimit
from ritornello.admin._metrics import metrics_router
from ritornello.admin._named_limits import limits_router
from ritornello.admin._restart import restart_router
from ritornello.admin._schedules import schedules_router
from ritornello.admin._service_openapi import service_openapi_router
from ritornello.admin._service_settings import service_patch_router
from ritornello.admin._services import services_router
from ritornello.admin._state import state_router
from ritornello.admin._ui import ui_router
from ritornello.admin._views import RegisterDeployment, app_version
from ritornello.orchestrator import Engine, HeaderLimits

__all__ = ["RegisterDeployment", "create_app"]


def create_app(
    engine: Engine,
    *,
    admin_token: str | None = None,
    max_body_bytes: int = 10 * 1024 * 1024,
    header_limits: HeaderLimits | None = None,
) -> FastAPI:
    """The admin app over a running engine; ``admin_token`` (None: ``RITORNELLO_ADMIN_TOKEN``;
    empty: open) is required on every path but /health and /ui (``_auth.protect``); a body
    over ``max_body_bytes`` gets 413, request headers past ``header_limits`` (None: the
    defaults of ``max_header_bytes`` and ``max_headers``) 431 (``_limits``)."""
    app = FastAPI(title="Ritornello admin API", version=app_version())
    install_error_handlers(app)
    app.include_router(health_router(engine))
    app.include_router(deployments_router(engine))
    app.include_router(services_router(engine))
    app.include_router(service_patch_router(engine))
    app.include_router(service_openapi_router(engine))
    app.include_router(invocations_router(engine))
    app.include_router(restart_router(engine))
    app.include_router(state_router(engine))
    app.include_router(metrics_router(engine))
    app.include_router(schedules_router(engine))
    app.include_router(limits_router(engine))
    app.include_router(ui_router())
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    protect(app, admin_token)  # it wraps every route, and declares itself in OpenAPI
    # outermost: headers past the limits are refused before the token is even read
    app.add_middleware(HeaderLimit, limits=header_limits or HeaderLimits())
    return app
