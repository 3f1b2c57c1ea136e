"""JSON shapes of the admin API: request bodies and the record -> JSON views.

Every view is a pure function of a store record; routers never build these dicts themselves, so a
shape lives in exactly one place.
"""

from __future__ import annotations

import json
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from pydantic import BaseModel, Field, model_validator

from ritornello.admin._status import api_status
from ritornello.protocol import DiscoveryResponse
from ritornello.store import DeploymentRecord, InvocationRecord


class RegisterDeployment(BaseModel):
    """``POST /deployments`` body: ``{"uri": ...}``, ``{"arn": ..., "assume_role_arn": ...}``
    or ``{"arn": ..., "protocol": "aws-durable", "service": ...}``."""

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
    use_http_11: bool = Field(
        False,
        description="a Restate SDK endpoint: reach it over HTTP/1.1 only (request/response), "
        "never over HTTP/2 (BIDI_STREAM), as Restate's field of the same name",
    )
    limit: str | None = Field(
        None,
        description="a named limit (PUT /limits/NAME) every invocation of this deployment's "
        "handlers holds a permit of while it runs, unless its handler or service names its "
        "own: a Lambda's reserved concurrency, say (docs/limits.md)",
    )
    protocol: str | None = Field(
        None,
        description='"aws-durable" (with arn and service): an AWS Lambda durable function, '
        "registered as service SERVICE with one handler, run (docs/aws-durable.md)",
    )
    service: str | None = Field(
        None, description='the service name of an "aws-durable" function (with protocol)'
    )
    execution_timeout_s: Any = Field(
        None,
        description="an \"aws-durable\" function's execution timeout (AWS's DurableConfig."
        "ExecutionTimeout): a whole number of seconds from 1 to 31622400; an execution running "
        "longer ends TIMED_OUT. Absent: no timeout. Any other value is a 400",
        json_schema_extra={"type": "integer", "minimum": 1, "maximum": 31_622_400},
    )

    @model_validator(mode="after")
    def _one_target(self) -> RegisterDeployment:
        if self.protocol is not None or self.service is not None:
            if self.protocol != "aws-durable":
                raise ValueError('protocol must be "aws-durable" (the only one named here)')
            if self.arn is None or self.uri is not None or self.service is None:
                raise ValueError('protocol "aws-durable" takes arn and service (not uri)')
            if self.assume_role_arn is not None or self.limit is not None:
                raise ValueError('protocol "aws-durable" takes no assume_role_arn nor limit')
        elif self.execution_timeout_s is not None:
            raise ValueError('execution_timeout_s goes with protocol "aws-durable"')
        if (self.uri is None) == (self.arn is None):
            raise ValueError("give exactly one of uri or arn")
        if self.assume_role_arn is not None and self.arn is None:
            raise ValueError("assume_role_arn goes with arn")
        if self.arn is not None and not self.arn.startswith("arn:"):
            raise ValueError("arn must be a Lambda function ARN (arn:aws:lambda:...)")
        return self


def app_version() -> str:
    """The installed package version (``0.0.0`` from a bare source tree)."""
    try:
        return version("ritornello")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0.0.0"


def deployment_view(d: DeploymentRecord) -> dict[str, Any]:
    """A deployment with its discovered services (and an aws-durable function's execution
    timeout, kept in its discovery's ``wire_info``)."""
    found = DiscoveryResponse.decode(d.services)
    services = found.to_dict()["services"]
    timeout = (found.wire_info or {}).get("execution_timeout_s")
    return {
        "id": d.id,
        "uri": d.uri,
        "created_at": d.created_at,
        "services": services,
        "execution_timeout_s": timeout if found.wire == "aws-durable" else None,
    }


def invocation_view(r: InvocationRecord) -> dict[str, Any]:
    """The invocation object (see docs/admin-api.md)."""
    target = f"{r.service}/{r.key}/{r.handler}" if r.key is not None else f"{r.service}/{r.handler}"
    return {
        "id": r.id,
        "target": target,
        "service": r.service,
        "handler": r.handler,
        "key": r.key,
        "status": api_status(r),
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


#: Entry fields that hold a Restate endpoint's replay bytes (docs/restate-protocol.md): base64
#: of protobuf payloads and raw values, for replay only; the view leaves them out.
_REPLAY_BYTES = ("rb", "rv")


def journal_view(entries: list[str], completions: list[str]) -> list[dict[str, Any]]:
    """Journal entries in order, each with its completion (if any) folded in."""
    done = {c["index"]: c for c in map(json.loads, completions)}
    journal = []
    for index, text in enumerate(entries):
        entry = json.loads(text)
        for name in _REPLAY_BYTES:
            entry.pop(name, None)
        item = {"index": index, **entry}
        if index in done:
            item["completion"] = {k: v for k, v in done[index].items() if k != "index"}
        journal.append(item)
    return journal


def retries_view(r: InvocationRecord) -> list[dict[str, Any]]:
    """The failed attempts of ``r``, oldest first: ``InvocationRecord.history`` (JSON text of
    ``[{attempt, at, error}]``, None when there were none or on stores that predate it)."""
    history = getattr(r, "history", None)
    if not history:
        return []
    items = json.loads(history) if isinstance(history, str) else history
    return [
        {"attempt": int(h["attempt"]), "at": int(h["at"]), "error": str(h["error"])}
        for h in items
        if isinstance(h, dict)
    ]
