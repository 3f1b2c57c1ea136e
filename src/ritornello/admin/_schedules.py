"""``/schedules``: cron schedules over the admin API (docs/schedules.md).

The router only translates HTTP to the engine's scheduler (``engine.schedules``) and back:
validation of cron expressions, time zones and targets, and every store write, happen there.
Errors: a malformed body is 422 (pydantic); an invalid cron, time zone or target shape is 400,
and so is an input the ingress would refuse as a body (NaN, ``1e999``, an integer past 64 bits,
nesting deeper than 128 levels: ``orchestrator._json.json_input_of``) or a key it would refuse
in a path; an unknown service, handler or schedule id is 404; pausing a paused schedule (or
resuming a running one) is 409.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from ritornello.admin._models import refused
from ritornello.orchestrator import (
    Engine,
    JsonInputError,
    OrchestratorError,
    Scheduler,
    json_input_of,
)
from ritornello.store import ScheduleRecord

_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "Unknown schedule (or, on create, unknown service or handler)"},
}


class CreateSchedule(BaseModel):
    """``POST /schedules`` body."""

    model_config = ConfigDict(extra="forbid")

    cron: str = Field(
        description="5 fields (minute hour day month weekday), 6 with a leading seconds field "
        "(second minute hour day month weekday), or an alias such as @hourly",
        examples=["*/5 * * * *", "*/10 * * * * *"],
    )
    target: str = Field(
        description="Service/handler, or Object/handler with key", examples=["Greeter/greet"]
    )
    key: str | None = Field(None, description="The object key (virtual objects only)")
    input: Any = Field(None, description="The JSON input of every invocation")
    overlap: Literal["skip", "allow"] = Field(
        "skip",
        description="skip: do not fire while the previous fire's invocation has not finished",
    )
    timezone: str = Field("UTC", description="IANA time zone the cron fields are read in")


class Schedule(BaseModel):
    """A schedule and where it stands. Times are Unix ms."""

    id: str
    cron: str
    target: str
    key: str | None
    input: Any
    overlap: Literal["skip", "allow"]
    timezone: str
    paused: bool
    created_at: int
    last_fire_at: int | None = Field(description="Fire time of the last invocation created")
    next_fire_at: int | None = Field(
        description="First fire time not yet dealt with (null while paused; in the past "
        "while overdue)"
    )
    last_invocation_id: str | None
    fires: int = Field(description="Invocations created")
    skipped: int = Field(description="Fire times skipped: the previous invocation still ran")
    missed: int = Field(
        description="Fire times passed over by catch-up after downtime (the latest of a run "
        "of missed times fires once)"
    )


class ScheduleList(BaseModel):
    schedules: list[Schedule]


class DeletedSchedule(BaseModel):
    id: str


def schedule_view(s: ScheduleRecord) -> Schedule:
    return Schedule(
        id=s.id,
        cron=s.cron,
        target=f"{s.service}/{s.handler}",
        key=s.key,
        input=json.loads(s.input),
        overlap="allow" if s.overlap == "allow" else "skip",
        timezone=s.timezone,
        paused=s.paused,
        created_at=s.created_at,
        last_fire_at=s.last_fire_at,
        next_fire_at=Scheduler.next_fire_at(s),
        last_invocation_id=s.last_invocation_id,
        fires=s.fires,
        skipped=s.skipped,
        missed=s.missed,
    )


def schedules_router(engine: Engine) -> APIRouter:
    """The ``/schedules`` endpoints over ``engine``'s scheduler."""
    router = APIRouter(prefix="/schedules", tags=["schedules"])
    scheduler = engine.schedules

    @router.post(
        "",
        status_code=201,
        response_model=Schedule,
        responses={
            400: {"description": "Invalid cron, time zone, target, key or input"},
            **_ERRORS,
        },
    )
    async def create_schedule(body: CreateSchedule) -> Schedule:
        """Create a schedule: every fire time becomes an ordinary invocation of the target,
        with the idempotency key ``schedule:{id}:{fire time ms}``."""
        try:
            input_text = json_input_of(body.input, "schedule input")
        except JsonInputError as exc:
            raise HTTPException(400, str(exc)) from None
        try:
            record = await scheduler.create(
                cron=body.cron,
                target=body.target,
                key=body.key,
                input_text=input_text,
                overlap=body.overlap,
                timezone=body.timezone,
            )
        except OrchestratorError as exc:
            raise refused(exc) from None
        return schedule_view(record)

    @router.get("", response_model=ScheduleList)
    async def list_schedules() -> ScheduleList:
        return ScheduleList(schedules=[schedule_view(s) for s in await scheduler.list_all()])

    @router.get("/{schedule_id}", response_model=Schedule, responses=_ERRORS)
    async def get_schedule(schedule_id: str) -> Schedule:
        try:
            return schedule_view(await scheduler.get(schedule_id))
        except OrchestratorError as exc:
            raise refused(exc) from None

    @router.patch(
        "/{schedule_id}/pause",
        response_model=Schedule,
        responses={409: {"description": "Already paused"}, **_ERRORS},
    )
    async def pause_schedule(schedule_id: str) -> Schedule:
        """Stop firing until resumed."""
        try:
            return schedule_view(await scheduler.pause(schedule_id))
        except OrchestratorError as exc:
            raise refused(exc) from None

    @router.patch(
        "/{schedule_id}/resume",
        response_model=Schedule,
        responses={409: {"description": "Not paused"}, **_ERRORS},
    )
    async def resume_schedule(schedule_id: str) -> Schedule:
        """Fire again from now on (the times that passed while paused are not fired)."""
        try:
            return schedule_view(await scheduler.resume(schedule_id))
        except OrchestratorError as exc:
            raise refused(exc) from None

    @router.delete("/{schedule_id}", response_model=DeletedSchedule, responses=_ERRORS)
    async def delete_schedule(schedule_id: str) -> DeletedSchedule:
        """Delete a schedule (the invocations it created are kept)."""
        try:
            await scheduler.delete(schedule_id)
        except OrchestratorError as exc:
            raise refused(exc) from None
        return DeletedSchedule(id=schedule_id)

    return router
