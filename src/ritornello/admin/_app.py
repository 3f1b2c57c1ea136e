"""The admin API app. Shaped like Restate's admin API where it has one.

This is the minimal surface of the foundation: health, version, deployments, services and one
invocation with its journal; the rest (listing filters, cancel/kill, state, schedules, metrics,
UI) builds on the same app.
"""

from __future__ import annotations

import json
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from fastapi import FastAPI, HTTPException, Query
from pydantic import BaseModel, Field, model_validator

from ritornello.orchestrator import Engine, EngineError
from ritornello.protocol import PROTOCOL_VERSION, DiscoveryResponse
from ritornello.store import STATUSES, DeploymentRecord, InvocationRecord


class RegisterDeployment(BaseModel):
    """``POST /deployments`` body: ``{"uri": ...}`` or ``{"arn": ..., "assume_role_arn": ...}``."""

    uri: str | None = Field(
        None, description="Endpoint URL (http://host:port, a Function URL) or inproc://NAME"
    )
    arn: str | None = Field(
        None,
        description="Lambda function ARN qualified with a version or an alias "
        "(arn:aws:lambda:REGION:ACCOUNT:function:NAME:VERSION); not $LATEST",
    )
    assume_role_arn: str | None = Field(
        None, description="IAM role the orchestrator assumes to invoke the function (with arn)"
    )

    @model_validator(mode="after")
    def _one_target(self) -> RegisterDeployment:
        if (self.uri is None) == (self.arn is None):
            raise ValueError("give exactly one of uri or arn")
        if self.assume_role_arn is not None and self.arn is None:
            raise ValueError("assume_role_arn goes with arn")
        if self.arn is not None and not self.arn.startswith("arn:"):
            raise ValueError("arn must be a Lambda function ARN (arn:aws:lambda:...)")
        return self


def _version() -> str:
    try:
        return version("ritornello")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0.0.0"


def _deployment(d: DeploymentRecord) -> dict[str, Any]:
    services = DiscoveryResponse.decode(d.services).to_dict()["services"]
    return {"id": d.id, "uri": d.uri, "created_at": d.created_at, "services": services}


def _invocation(r: InvocationRecord) -> dict[str, Any]:
    target = f"{r.service}/{r.key}/{r.handler}" if r.key is not None else f"{r.service}/{r.handler}"
    return {
        "id": r.id,
        "target": target,
        "service": r.service,
        "handler": r.handler,
        "key": r.key,
        "status": r.status,
        "deployment_id": r.deployment_id,
        "attempt": r.attempt,
        "journal_length": r.journal_len,
        "waiting_on": list(r.waiting),
        "invoked_by": "service" if r.caller_id else "ingress",
        "caller_id": r.caller_id,
        "idempotency_key": r.idempotency_key,
        "created_at": r.created_at,
        "modified_at": r.modified_at,
        "next_retry_at": r.next_at,
        "last_failure": r.last_error,
        "result": json.loads(r.result) if r.result else None,
    }


def create_app(engine: Engine) -> FastAPI:
    """The admin app over a running engine."""
    app = FastAPI(title="Ritornello admin API", version=_version())

    def fail(exc: EngineError) -> HTTPException:
        return HTTPException(status_code=exc.status, detail=str(exc))

    @app.get("/health", tags=["health"])
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/version", tags=["health"])
    async def get_version() -> dict[str, Any]:
        return {
            "version": _version(),
            "min_admin_api_version": 1,
            "max_admin_api_version": 1,
            "protocol_version": PROTOCOL_VERSION,
        }

    @app.get("/cluster", tags=["health"])
    async def cluster() -> dict[str, Any]:
        """This orchestrator, the partitions it leads, and every lease and member in the
        store (who leads what, at which epoch)."""
        leases = await engine.store.list_leases()
        members = await engine.store.list_members()
        return {
            "node": engine.node,
            "partitions": engine.store.partitions,
            "leading": engine.leadership.owned(),
            "counters": dict(engine.counters),
            "leases": [
                {
                    "partition": lease.partition,
                    "owner": lease.owner,
                    "epoch": lease.epoch,
                    "renewed_at": lease.renewed_at,
                }
                for lease in leases
            ],
            "members": [
                {"node": m.node, "address": m.address, "heartbeat_at": m.heartbeat_at}
                for m in members
            ],
        }

    @app.post("/deployments", status_code=201, tags=["deployments"])
    async def register(body: RegisterDeployment) -> dict[str, Any]:
        try:
            if body.arn is not None:
                record = await engine.register_deployment(
                    body.arn, assume_role_arn=body.assume_role_arn
                )
            else:
                record = await engine.register_deployment(body.uri or "")
            return _deployment(record)
        except EngineError as exc:
            raise fail(exc) from None

    @app.get("/deployments", tags=["deployments"])
    async def list_deployments() -> dict[str, Any]:
        deps = sorted(engine.registry.deployments.values(), key=lambda d: d.created_at)
        return {"deployments": [_deployment(d) for d in deps]}

    @app.get("/deployments/{deployment_id}", tags=["deployments"])
    async def get_deployment(deployment_id: str) -> dict[str, Any]:
        dep = engine.registry.deployments.get(deployment_id)
        if dep is None:
            raise HTTPException(404, f"deployment {deployment_id} not found")
        return _deployment(dep)

    @app.delete("/deployments/{deployment_id}", status_code=202, tags=["deployments"])
    async def delete_deployment(deployment_id: str) -> dict[str, str]:
        if not await engine.delete_deployment(deployment_id):
            raise HTTPException(404, f"deployment {deployment_id} not found")
        return {"id": deployment_id}

    def _service(name: str) -> dict[str, Any]:
        found = engine.registry.service(name)
        if found is None:
            raise HTTPException(404, f"service {name} not found")
        info, dep = found
        return {
            "name": info.name,
            "ty": {"service": "Service", "object": "VirtualObject", "workflow": "Workflow"}[
                info.kind
            ],
            "deployment_id": dep,
            "handlers": [{"name": h.name, "ty": h.kind.capitalize()} for h in info.handlers],
        }

    @app.get("/services", tags=["services"])
    async def list_services() -> dict[str, Any]:
        return {"services": [_service(s.name) for s, _ in engine.registry.services()]}

    @app.get("/services/{service}", tags=["services"])
    async def get_service(service: str) -> dict[str, Any]:
        return _service(service)

    @app.get("/services/{service}/handlers", tags=["services"])
    async def get_handlers(service: str) -> dict[str, Any]:
        return {"handlers": _service(service)["handlers"]}

    @app.get("/invocations", tags=["invocations"])
    async def list_invocations(
        status: str | None = Query(None, description=f"one of {', '.join(STATUSES)}"),
        service: str | None = None,
        key: str | None = None,
        cursor: int = Query(-1, description="the next_cursor of the previous page"),
        limit: int = Query(100, ge=1, le=1000),
    ) -> dict[str, Any]:
        if status is not None and status not in STATUSES:
            raise HTTPException(400, f"unknown status {status!r}")
        recs = await engine.store.list_invocations(
            statuses=[status] if status else None,
            service=service,
            key=key,
            after_seq=cursor,
            limit=limit,
        )
        return {
            "invocations": [_invocation(r) for r in recs],
            "next_cursor": recs[-1].seq if len(recs) == limit else None,
        }

    @app.get("/invocations/{invocation_id}", tags=["invocations"])
    async def get_invocation(invocation_id: str) -> dict[str, Any]:
        try:
            rec, entries, completions = await engine.describe(invocation_id)
        except EngineError as exc:
            raise fail(exc) from None
        done = {c["index"]: c for c in map(json.loads, completions)}
        journal = []
        for index, text in enumerate(entries):
            entry = json.loads(text)
            item = {"index": index, **entry}
            if index in done:
                completion = {k: v for k, v in done[index].items() if k != "index"}
                item["completion"] = completion
            journal.append(item)
        return {**_invocation(rec), "journal": journal}

    async def _act(action: str, invocation_id: str) -> dict[str, Any]:
        try:
            rec = await getattr(engine, action)(invocation_id)
        except EngineError as exc:
            raise fail(exc) from None
        return _invocation(rec)

    @app.patch("/invocations/{invocation_id}/cancel", tags=["invocations"])
    async def cancel_invocation(invocation_id: str) -> dict[str, Any]:
        """Cancel gracefully: the handler's next await raises a terminal "cancelled" error
        (so compensations run); pending callees are cancelled down the call tree."""
        return await _act("cancel", invocation_id)

    @app.patch("/invocations/{invocation_id}/kill", tags=["invocations"])
    async def kill_invocation(invocation_id: str) -> dict[str, Any]:
        """Stop at once; the invocation ends ``killed`` and its caller gets a 409 failure."""
        return await _act("kill", invocation_id)

    @app.patch("/invocations/{invocation_id}/pause", tags=["invocations"])
    async def pause_invocation(invocation_id: str) -> dict[str, Any]:
        """Stop driving it (it keeps its key and timers) until resumed."""
        return await _act("pause", invocation_id)

    @app.patch("/invocations/{invocation_id}/resume", tags=["invocations"])
    async def resume_invocation(invocation_id: str) -> dict[str, Any]:
        """Resume a paused invocation with a fresh retry budget."""
        return await _act("resume", invocation_id)

    return app
