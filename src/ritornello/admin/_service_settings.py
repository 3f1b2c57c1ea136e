"""Service settings in the admin API: what ``GET /services/{service}`` shows of them (in
Restate's field names, humantime values) and ``PATCH /services/{service}``, which overrides
them (``orchestrator.runtime._service_settings`` says how overrides live)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from ritornello.admin._models import ServiceInfo, errors, refused
from ritornello.orchestrator import Engine
from ritornello.orchestrator.errors import OrchestratorError
from ritornello.protocol import HandlerInfo, Settings, format_duration
from ritornello.protocol import ServiceInfo as DeclaredService

_DURATION = "a humantime duration (30d, 1h 30m, 500ms, PT10S) or milliseconds"


class ServicePatch(BaseModel):
    """Restate's ``PATCH /services/{service}`` body: every field optional, at least one."""

    model_config = ConfigDict(extra="forbid")

    public: StrictBool | None = Field(None, description="false: the ingress refuses it")
    journal_retention: StrictStr | StrictInt | None = Field(None, description=_DURATION)
    idempotency_retention: StrictStr | StrictInt | None = Field(None, description=_DURATION)
    workflow_completion_retention: StrictStr | StrictInt | None = Field(None, description=_DURATION)
    inactivity_timeout: StrictStr | StrictInt | None = Field(None, description=_DURATION)
    abort_timeout: StrictStr | StrictInt | None = Field(None, description=_DURATION)


def settings_view(engine: Engine, settings: Settings | None, workflow: bool) -> dict[str, Any]:
    """Effective settings in Restate's names: what is set (override, handler, service), else
    the orchestrator's defaults (retention: ``retention_s``; inactivity: the attempt timeout;
    abort: 0)."""
    s = settings or Settings()
    retention = round(engine.retention_s * 1000)

    def dur(ms: int | None, default: int) -> str:
        return format_duration(default if ms is None else ms)

    out: dict[str, Any] = {
        "public": not s.ingress_private,
        "journal_retention": dur(s.journal_retention_ms, retention),
        "idempotency_retention": dur(s.idempotency_retention_ms, retention),
        "workflow_completion_retention": dur(s.workflow_retention_ms, retention)
        if workflow
        else None,
        "inactivity_timeout": dur(s.inactivity_timeout_ms, round(engine.attempt_timeout_s * 1000)),
        "abort_timeout": dur(s.abort_timeout_ms, 0),
        "documentation": s.description,
        "metadata": dict(s.metadata or ()),
    }
    return out


def service_settings_view(engine: Engine, info: DeclaredService) -> dict[str, Any]:
    """The service's own settings (override over code) and which fields an operator set."""
    override = engine.registry.override(info.name)
    view = settings_view(
        engine, engine.registry.service_settings(info.name), info.kind == "workflow"
    )
    view["overrides"] = _restate_names(override)
    return view


def handler_settings_view(
    engine: Engine, info: DeclaredService, deployment_id: str, h: HandlerInfo
) -> dict[str, Any]:
    """A handler's effective settings (override over handler code over service code)."""
    effective = engine.registry.settings_of(deployment_id, info.name, h.name)
    return settings_view(engine, effective, h.kind == "workflow")


def _restate_names(override: Settings | None) -> list[str]:
    if override is None:
        return []
    names = {
        "ingress_private": "public",
        "journal_retention_ms": "journal_retention",
        "idempotency_retention_ms": "idempotency_retention",
        "workflow_retention_ms": "workflow_completion_retention",
        "inactivity_timeout_ms": "inactivity_timeout",
        "abort_timeout_ms": "abort_timeout",
    }
    return sorted(names[k] for k in override.to_dict() if k in names)


def service_patch_router(engine: Engine) -> APIRouter:
    """``PATCH /services/{service}``."""
    from ritornello.admin._services import service_view

    router = APIRouter(tags=["services"])

    @router.patch(
        "/services/{service}",
        response_model=ServiceInfo,
        responses={**errors(400, 404), 422: {"description": "Unknown field or wrong type"}},
    )
    async def patch_service(service: str, body: ServicePatch) -> dict[str, Any]:
        """Change a service's settings (Restate's fields, humantime values). The change is
        stored, outlives restarts and re-registrations, beats what the code declares, and
        reaches every orchestrator within its deployment refresh (2 s)."""
        try:
            await engine.patch_service(service, body.model_dump(exclude_unset=True))
        except OrchestratorError as exc:
            raise refused(exc) from None
        return service_view(engine, service)

    return router
