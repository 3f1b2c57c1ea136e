"""``/limits``: named limits over the admin API (docs/limits.md).

The router translates HTTP to the engine's limits (``engine.limits``) and back; the one check
of a definition is ``orchestrator.parse_limit``, shared with ``ritornello.toml``. Errors: a body
that is not an object, an unknown field or a value of the wrong JSON type is 422 (pydantic);
a value out of range (zero, negative, an unknown period) or a bad name is 400; an unknown
limit is 404; deleting one that permits are out or waited for is 409 (unless ``force``).
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from ritornello.admin._models import refused
from ritornello.orchestrator import Engine, LimitError, OrchestratorError, parse_limit

_ERRORS: dict[int | str, dict[str, Any]] = {404: {"description": "Unknown limit"}}


class LimitDefinition(BaseModel):
    """``PUT /limits/{name}`` body: ``concurrency``, a ``rate``, or both."""

    model_config = ConfigDict(extra="forbid", strict=True)

    concurrency: int | None = Field(
        None, description="At most this many permits out at once (1 or more)", examples=[5]
    )
    rate: float | None = Field(
        None, description="At most this many grants per period (above 0)", examples=[50]
    )
    per: str = Field("1s", description="The rate's period: 1s, 1m, 1h or 1d")
    burst: int | None = Field(
        None, description="Grants that may come at once after a quiet spell (default 1)"
    )
    per_key: bool | None = Field(
        None, description="One instance per limit key, each with the whole budget"
    )


class Limit(BaseModel):
    """A limit, where its definition comes from, and how it is used right now."""

    name: str
    concurrency: int | None = None
    rate: float | None = None
    per: str | None = None
    burst: int | None = None
    per_key: bool = False
    source: Literal["admin", "config", "code"] = Field(
        description="admin: PUT /limits; config: ritornello.toml; code: a service definition"
    )
    version: int | None = Field(description="The admin API's version of it (admin only)")
    updated_at: int | None = Field(description="Unix ms of the admin API's last write")
    in_flight: int = Field(description="Permits out now, across the cluster")
    waiting: int = Field(description="Invocations waiting for a permit, across the cluster")
    oldest_wait_ms: int | None = Field(description="How long the oldest waiter has waited")
    granted_last_minute: int | None = Field(
        description="Permits granted in the last minute (null: its owner is another process)"
    )
    refused_last_minute: int | None = Field(
        description="Asks that found no permit free and waited, in the last minute (null: its "
        "owner is another process)"
    )


class LimitList(BaseModel):
    limits: list[Limit]


class DeletedLimit(BaseModel):
    name: str


def limits_router(engine: Engine) -> APIRouter:
    """The ``/limits`` endpoints over ``engine.limits``."""
    router = APIRouter(prefix="/limits", tags=["limits"])
    limits = engine.limits

    @router.get("", response_model=LimitList)
    async def list_limits() -> LimitList:
        """Every limit defined (admin API, ritornello.toml, code), with live figures."""
        return LimitList(limits=[Limit(**d) for d in await limits.describe()])

    @router.get("/{name}", response_model=Limit, responses=_ERRORS)
    async def get_limit(name: str) -> Limit:
        try:
            (found,) = await limits.describe(name)
        except OrchestratorError as exc:
            raise refused(exc) from None
        return Limit(**found)

    @router.put(
        "/{name}",
        response_model=Limit,
        responses={
            201: {"description": "Created", "model": Limit},
            400: {"description": "A bad name or value (zero, negative, unknown period)"},
        },
    )
    async def put_limit(name: str, body: LimitDefinition) -> Any:
        """Set a limit (created or replaced; it takes effect at once). Overrides a definition
        of the same name in ritornello.toml or in code."""
        try:
            spec = parse_limit(body.model_dump(exclude_unset=True), "the limit")
            _, created = await limits.put(name, spec, engine.clock.now_ms())
            (found,) = await limits.describe(name)
        except LimitError as exc:
            raise HTTPException(400, str(exc)) from None
        except OrchestratorError as exc:
            raise refused(exc) from None
        return JSONResponse(Limit(**found).model_dump(), status_code=201 if created else 200)

    @router.delete(
        "/{name}",
        response_model=DeletedLimit,
        responses={
            400: {"description": "A malformed query parameter"},
            409: {"description": "Permits are out or waited for"},
            **_ERRORS,
        },
    )
    async def delete_limit(
        name: str,
        force: bool = Query(False, description="Delete even though invocations wait or hold"),
    ) -> DeletedLimit:
        """Remove the admin API's definition (one in ritornello.toml or in code then applies
        again)."""
        try:
            await limits.delete(name, force=force)
        except OrchestratorError as exc:
            raise refused(exc) from None
        return DeletedLimit(name=name)

    return router
