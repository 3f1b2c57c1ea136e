"""Pydantic models of the admin API's JSON: request bodies and response shapes (OpenAPI).

The routers build plain dicts (``_views``); these models validate and document them. Models of
open-ended JSON (journal entries, completions, discovery output) allow extra members.
"""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException
from pydantic import BaseModel, ConfigDict, Field

from ritornello.admin._status import API_STATUSES
from ritornello.orchestrator import OrchestratorError, http_status


class ErrorBody(BaseModel):
    """Every 4xx/5xx the API raises itself: ``{"detail": "what is wrong"}``."""

    detail: Any = Field(description="what is wrong (a string; a list for malformed input)")


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route raising ``codes``."""
    text = {
        400: "Bad input",
        404: "Not found",
        409: "Conflict with the current state",
        502: "The deployment could not be reached",
        503: "Not served here right now (leadership, shutdown)",
    }
    return {c: {"model": ErrorBody, "description": text.get(c, "Error")} for c in codes}


def refused(exc: OrchestratorError) -> HTTPException:
    """The HTTP answer to an orchestrator error (its status by the error's kind)."""
    return HTTPException(http_status(exc), str(exc))


class Health(BaseModel):
    status: str


class VersionInfo(BaseModel):
    version: str
    min_admin_api_version: int
    max_admin_api_version: int
    protocol_version: int


class Lease(BaseModel):
    partition: int
    owner: str | None
    epoch: int
    renewed_at: int


class Member(BaseModel):
    node: str
    address: str
    heartbeat_at: int


class Renewals(BaseModel):
    """How this orchestrator's lease renewals keep time (docs/orchestrator.md, "Leases")."""

    rounds: int
    renewals: int
    lapses: int = Field(description="renewals answered after the lease's validity ran out")
    late_p99_ms: float = Field(description="renewal rounds' lateness on their schedule")
    late_max_ms: float
    round_trip_p99_ms: float = Field(description="renewal sent to answered")
    round_trip_max_ms: float
    margin_min_ms: float | None = Field(description="least validity left when one landed")
    requests: dict[str, int] = Field(description="coordination requests sent, by kind")


class Cluster(BaseModel):
    node: str
    partitions: int
    leading: list[int]
    counters: dict[str, int]
    renewals: Renewals
    leases: list[Lease]
    members: list[Member]


class Deployment(BaseModel):
    id: str
    uri: str
    created_at: int = Field(description="Unix ms")
    services: list[dict[str, Any]] = Field(description="what discovery found there")
    execution_timeout_s: int | None = Field(
        None, description="an aws-durable function's execution timeout (seconds); null: none"
    )


class DeploymentList(BaseModel):
    deployments: list[Deployment]


class IdOnly(BaseModel):
    id: str


class Handler(BaseModel):
    name: str
    ty: str = Field(description="Exclusive | Shared | Workflow")
    public: bool = Field(True, description="false: the ingress refuses it")
    journal_retention: str | None = Field(None, description="humantime")
    idempotency_retention: str | None = Field(None, description="humantime")
    workflow_completion_retention: str | None = Field(None, description="workflows only")
    inactivity_timeout: str | None = Field(None, description="humantime")
    abort_timeout: str | None = Field(None, description="humantime")
    documentation: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    input_description: str | None = Field(
        None, description="What a call carries: none, JSON, or raw bytes of a content type"
    )
    output_description: str | None = Field(None, description="What a call answers")
    input_json_schema: dict[str, Any] | None = Field(
        None, description="JSON Schema (2020-12) of the input, from the handler's type hints"
    )
    output_json_schema: dict[str, Any] | None = Field(
        None, description="JSON Schema (2020-12) of the output"
    )


class ServiceInfo(BaseModel):
    name: str
    ty: str = Field(description="Service | VirtualObject | Workflow")
    deployment_id: str
    handlers: list[Handler]
    public: bool = Field(True, description="false: the ingress refuses it")
    journal_retention: str | None = Field(None, description="humantime")
    idempotency_retention: str | None = Field(None, description="humantime")
    workflow_completion_retention: str | None = Field(None, description="workflows only")
    inactivity_timeout: str | None = Field(None, description="humantime")
    abort_timeout: str | None = Field(None, description="humantime")
    documentation: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    overrides: list[str] = Field(
        default_factory=list, description="the fields PATCH /services/{service} set"
    )


class ServiceList(BaseModel):
    services: list[ServiceInfo]


class HandlerList(BaseModel):
    handlers: list[Handler]


class Invocation(BaseModel):
    id: str
    target: str = Field(description="Service/handler or Object/key/handler")
    service: str
    handler: str
    key: str | None
    status: str = Field(description=" | ".join(API_STATUSES))
    deployment_id: str
    attempt: int
    journal_length: int
    waiting_on: list[int]
    invoked_by: str = Field(description="ingress | service")
    caller_id: str | None
    idempotency_key: str | None
    created_at: int = Field(description="Unix ms")
    modified_at: int = Field(description="Unix ms")
    next_retry_at: int | None = Field(description="Unix ms of the retry or delayed start")
    last_failure: str | None
    result: Any = Field(None, description='{"value": ...} or {"failure": ...} once finished')


class InvocationList(BaseModel):
    invocations: list[Invocation]
    next_cursor: str | None = Field(
        description="pass as cursor for the next page (opaque); null when there is none"
    )


class Completion(BaseModel):
    model_config = ConfigDict(extra="allow")

    value: Any = None
    failure: dict[str, Any] | None = None
    at: int | None = Field(None, description="Unix ms when the orchestrator committed it")


class JournalEntry(BaseModel):
    """A journal entry (docs/protocol.md) with its index, commit time and completion."""

    model_config = ConfigDict(extra="allow")

    index: int
    kind: str
    name: str | None = None
    at: int | None = Field(
        None, description="Unix ms when the orchestrator committed it (absent on old entries)"
    )
    completion: Completion | None = None


class Retry(BaseModel):
    attempt: int
    at: int = Field(description="Unix ms")
    error: str


class InvocationDetail(Invocation):
    journal: list[JournalEntry]
    retries: list[Retry] = Field(description="failed attempts, oldest first")
    waiting_for_limit: str | None = Field(
        None,
        description="suspended until a permit of this limit is granted (docs/limits.md); "
        "a per-key limit's instance as NAME[KEY]",
    )


class StateView(BaseModel):
    service: str
    key: str
    version: str = Field(description="pass to POST /services/{service}/state")
    state: dict[str, Any]


class StateWrite(BaseModel):
    """``POST /services/{service}/state``: replace one key's whole state."""

    model_config = ConfigDict(extra="forbid")

    object_key: str
    new_state: dict[str, Any] = Field(description="state name -> JSON value")
    version: str | None = Field(
        None, description="the version read; the write fails with 409 if the state moved since"
    )


class StateVersion(BaseModel):
    version: str
