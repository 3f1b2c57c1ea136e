"""``/services``: the services and handlers the registered deployments serve."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException

from ritornello.admin._models import HandlerList, ServiceInfo, ServiceList, errors
from ritornello.admin._service_openapi import payloads
from ritornello.admin._service_settings import handler_settings_view, service_settings_view
from ritornello.orchestrator import Engine

_TY = {"service": "Service", "object": "VirtualObject", "workflow": "Workflow"}


def service_view(engine: Engine, name: str) -> dict[str, Any]:
    """The service object of ``name`` (404 when no deployment serves it)."""
    found = engine.registry.service(name)
    if found is None:
        raise HTTPException(404, f"service {name} not found")
    info, dep = found
    return {
        "name": info.name,
        "ty": _TY[info.kind],
        "deployment_id": dep,
        "handlers": [
            {
                "name": h.name,
                "ty": h.kind.capitalize(),
                **payloads(h),
                **handler_settings_view(engine, info, dep, h),
            }
            for h in info.handlers
        ],
        **service_settings_view(engine, info),
    }


def services_router(engine: Engine) -> APIRouter:
    """Service and handler listing."""
    router = APIRouter(tags=["services"])

    @router.get("/services", response_model=ServiceList)
    async def list_services() -> dict[str, Any]:
        return {"services": [service_view(engine, s.name) for s, _ in engine.registry.services()]}

    @router.get("/services/{service}", response_model=ServiceInfo, responses=errors(404))
    async def get_service(service: str) -> dict[str, Any]:
        return service_view(engine, service)

    @router.get("/services/{service}/handlers", response_model=HandlerList, responses=errors(404))
    async def get_handlers(service: str) -> dict[str, Any]:
        return {"handlers": service_view(engine, service)["handlers"]}

    return router
