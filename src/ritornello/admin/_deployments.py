"""``/deployments``: register, list, describe and remove deployments."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Query

from ritornello.admin._models import Deployment, DeploymentList, IdOnly, errors, refused
from ritornello.admin._views import RegisterDeployment, deployment_view
from ritornello.orchestrator import Engine, OrchestratorError


def deployments_router(engine: Engine) -> APIRouter:
    """Deployment registration and removal."""
    router = APIRouter(tags=["deployments"])

    @router.post(
        "/deployments",
        status_code=201,
        response_model=Deployment,
        responses=errors(400, 409, 502, 503),
    )
    async def register(body: RegisterDeployment) -> dict[str, Any]:
        """Discover what the endpoint serves and register it (re-registering a URI refreshes
        it in place, keeping its id)."""
        try:
            if body.protocol is not None and body.arn is not None and body.service is not None:
                record = await engine.register_durable_function(
                    body.arn, body.service, body.execution_timeout_s
                )
            elif body.arn is not None:
                record = await engine.register_deployment(
                    body.arn, assume_role_arn=body.assume_role_arn, limit=body.limit
                )
            else:
                record = await engine.register_deployment(
                    body.uri or "", use_http_11=body.use_http_11, limit=body.limit
                )
            return deployment_view(record)
        except OrchestratorError as exc:
            raise refused(exc) from None

    @router.get("/deployments", response_model=DeploymentList)
    async def list_deployments() -> dict[str, Any]:
        deps = sorted(engine.registry.deployments.values(), key=lambda d: d.created_at)
        return {"deployments": [deployment_view(d) for d in deps]}

    @router.get("/deployments/{deployment_id}", response_model=Deployment, responses=errors(404))
    async def get_deployment(deployment_id: str) -> dict[str, Any]:
        dep = engine.registry.deployments.get(deployment_id)
        if dep is None:
            raise HTTPException(404, f"deployment {deployment_id} not found")
        return deployment_view(dep)

    @router.delete(
        "/deployments/{deployment_id}",
        status_code=202,
        response_model=IdOnly,
        responses=errors(400, 404, 409),
    )
    async def delete_deployment(
        deployment_id: str,
        force: bool = Query(
            False, description="remove it even though unfinished invocations are pinned to it"
        ),
    ) -> dict[str, str]:
        """Remove a deployment. Unfinished invocations stay on the deployment they started on,
        so while any is pinned to it the removal is refused (409) unless ``force=true`` (they
        then fail their attempts until it is registered again)."""
        known = deployment_id in engine.registry.deployments or any(
            d.id == deployment_id for d in await engine.store.list_deployments()
        )
        if not known:
            raise HTTPException(404, f"deployment {deployment_id} not found")
        if not force:
            held = await engine.pinned(deployment_id, limit=5)
            if held:
                ids = ", ".join(r.id for r in held)
                raise HTTPException(
                    409,
                    f"deployment {deployment_id} still runs unfinished invocations ({ids}"
                    f"{', ...' if len(held) == 5 else ''}); finish, kill or purge them, "
                    "or pass ?force=true",
                )
        if not await engine.delete_deployment(deployment_id):
            raise HTTPException(404, f"deployment {deployment_id} not found")
        return {"id": deployment_id}

    return router
