"""``PATCH /invocations/{id}/restart-as-new``: back from a bad deploy (docs/admin-api.md).

``?from=N`` keeps the journal before entry N (0 or 1, the default: only the input),
``?deployment=latest|keep|ID`` (default ``latest``, as on Restate) chooses the code it runs
on, ``?dry_run=true`` replays the kept prefix against that code and reports the first
mismatch, starting nothing.
The checks are the core's (``orchestrator/core/_restart.py``): 404 unknown invocation, 409 one
that is not finished (or a workflow's run), 400 a ``from`` out of range or cutting inside
something that cannot be kept, an unknown deployment, or a dry run on a deployment that cannot
replay without running (another SDK's).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from ritornello.admin._models import errors, refused
from ritornello.orchestrator import Engine, OrchestratorError

#: ``from`` is an entry index; journals hold far fewer entries than this.
MAX_FROM = 2**31 - 1


class Restarted(BaseModel):
    new_invocation_id: str


class Mismatch(BaseModel):
    index: int | None = None
    journal_has: str | None = None
    handler_did: str | None = None
    message: str


class DryRunReport(BaseModel):
    dry_run: bool
    deployment_id: str
    kept: int
    matches: bool
    replayed: int | None = None
    mismatch: Mismatch | None = None
    message: str


def restart_router(engine: Engine) -> APIRouter:
    """Restart-as-new and its dry run."""
    router = APIRouter(tags=["invocations"])

    @router.patch(
        "/invocations/{invocation_id}/restart-as-new",
        response_model=Restarted | DryRunReport,
        response_model_exclude_none=True,
        responses=errors(400, 404, 409, 502, 503),
    )
    async def restart_as_new(
        invocation_id: str,
        from_: int = Query(
            0,
            alias="from",
            ge=0,
            le=MAX_FROM,
            description="keep the journal before this entry (0 or 1: only the input)",
        ),
        deployment: str = Query(
            "latest", min_length=1, description="latest (the default), keep, or a deployment id"
        ),
        dry_run: bool = Query(
            False, description="replay the kept prefix against the deployment, start nothing"
        ),
    ) -> dict[str, Any]:
        """Start a new invocation with the same input that keeps the journal before entry
        ``from`` and runs on from there on the chosen deployment (a finished invocation
        only); with ``dry_run``, only report whether that deployment's code replays the kept
        prefix."""
        try:
            if dry_run:
                found = await engine.dry_run_restart(invocation_id, from_, deployment)
                return {
                    "dry_run": True,
                    "deployment_id": found.deployment_id,
                    "kept": found.kept,
                    "matches": found.matches,
                    "replayed": found.replayed,
                    "mismatch": found.mismatch,
                    "message": found.message,
                }
            rec = await engine.restart_as_new(invocation_id, from_, deployment)
        except OrchestratorError as exc:
            raise refused(exc) from None
        return {"new_invocation_id": rec.id}

    return router
