"""Restate's endpoint manifest (what ``GET /discover`` answers), read into a
``DiscoveryResponse``, and the protocol version both sides speak.

Kinds map one to one (``SERVICE``/``VIRTUAL_OBJECT``/``WORKFLOW`` to service/object/workflow;
``EXCLUSIVE``/``SHARED``/``WORKFLOW`` to exclusive/shared/workflow; a handler without ``ty``
is exclusive, and a workflow's handler without one is shared, as Restate reads it). A handler's
retry policy (manifest v4) becomes its ``RetryPolicy``; its ``input.jsonSchema`` and
``output.jsonSchema`` its ``input_schema`` and ``output_schema``, and ``input.required`` its
``input_required``. The manifest itself is kept as served (``wire_info["manifest"]``); its
documentation, metadata, timeouts, retention and ``ingressPrivate`` (of a service and of each
handler) also become their ``Settings``.

Versions: Ritornello speaks V5 and V6 of the service protocol and picks the highest the
endpoint also speaks — V6 for the current SDKs (they serve V5..V7), as Restate 1.7 does.
"""

from __future__ import annotations

from typing import Any

from ritornello.protocol import (
    DiscoveryResponse,
    HandlerInfo,
    ProtocolError,
    RetryPolicy,
    ServiceInfo,
    Settings,
)

#: Service protocol versions this side speaks.
MIN_VERSION, MAX_VERSION = 5, 6
MODES = frozenset({"BIDI_STREAM", "REQUEST_RESPONSE"})
_SERVICE_KINDS = {"SERVICE": "service", "VIRTUAL_OBJECT": "object", "WORKFLOW": "workflow"}
_HANDLER_KINDS = {"EXCLUSIVE": "exclusive", "SHARED": "shared", "WORKFLOW": "workflow"}


def content_type(version: int) -> str:
    """The content type of an invocation's request and answer at ``version``."""
    return f"application/vnd.restate.invocation.v{version}"


def is_manifest(message: Any) -> bool:
    """Whether a decoded discovery answer is a Restate endpoint manifest."""
    return isinstance(message, dict) and bool(
        {"minProtocolVersion", "maxProtocolVersion", "protocolMode"} & message.keys()
    )


def negotiate(low: Any, high: Any) -> int:
    """The highest version both sides speak (``ProtocolError`` when there is none)."""
    if not (isinstance(low, int) and isinstance(high, int)) or low > high:
        raise ProtocolError(f"manifest protocol versions {low!r}..{high!r} are not a range")
    version = min(high, MAX_VERSION)
    if version < max(low, MIN_VERSION):
        raise ProtocolError(
            f"the endpoint speaks service protocol V{low}..V{high}; "
            f"Ritornello speaks V{MIN_VERSION}..V{MAX_VERSION}"
        )
    return version


_RETRY_FIELDS = (
    "retryPolicyInitialInterval",
    "retryPolicyMaxInterval",
    "retryPolicyMaxAttempts",
    "retryPolicyExponentiationFactor",
    "retryPolicyOnMaxAttempts",
)


def _retry(h: dict[str, Any]) -> RetryPolicy | None:
    """The retry policy of a handler's fields (merged over its service's by the caller).
    Max attempts 0 is 1, as Restate reads it."""
    attempts = h.get("retryPolicyMaxAttempts")
    if attempts == 0:
        h = {**h, "retryPolicyMaxAttempts": 1}
    fields: dict[str, Any] = {
        "initial_interval_ms": h.get("retryPolicyInitialInterval"),
        "max_interval_ms": h.get("retryPolicyMaxInterval"),
        "max_attempts": h.get("retryPolicyMaxAttempts"),
        "factor": h.get("retryPolicyExponentiationFactor"),
        "on_max_attempts": (h.get("retryPolicyOnMaxAttempts") or "").lower() or None,
    }
    given = {k: v for k, v in fields.items() if v is not None}
    if not given:
        return None
    try:
        return RetryPolicy(**given)
    except (TypeError, ValueError) as exc:
        raise ProtocolError(f"handler {h.get('name')!r}: {exc}") from None


#: Manifest fields (milliseconds) -> the ``Settings`` field each one sets.
_DURATION_FIELDS = {
    "journalRetention": "journal_retention_ms",
    "idempotencyRetention": "idempotency_retention_ms",
    "workflowCompletionRetention": "workflow_retention_ms",
    "inactivityTimeout": "inactivity_timeout_ms",
    "abortTimeout": "abort_timeout_ms",
}


def _settings(obj: dict[str, Any], where: str) -> Settings | None:
    """The settings a manifest's service or handler sets: retention and timeouts (ms),
    ``ingressPrivate``, ``documentation`` and ``metadata``; None when it sets none."""
    values: dict[str, Any] = {
        ours: obj[theirs]
        for theirs, ours in _DURATION_FIELDS.items()
        if obj.get(theirs) is not None
    }
    for theirs, ours in (("ingressPrivate", "ingress_private"), ("documentation", "description")):
        if obj.get(theirs) is not None:
            values[ours] = obj[theirs]
    meta = obj.get("metadata")
    if meta:
        if not isinstance(meta, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in meta.items()
        ):
            raise ProtocolError(f"{where}: metadata must map strings to strings")
        values["metadata"] = tuple(sorted(meta.items()))
    if not values:
        return None
    try:
        return Settings(**values)
    except (TypeError, ValueError) as exc:
        raise ProtocolError(f"{where}: {exc}") from None


def _payloads(h: dict[str, Any]) -> dict[str, Any]:
    """What a handler's ``input`` and ``output`` say of its JSON: their ``jsonSchema``s, and
    whether an input is required (``input: {}`` is no input at all: never required). JSON
    without a schema is any JSON (``{}``); no content type, or another one, has none. A
    boolean schema (``true``, as the Python SDK sends for ``-> object``) is ``{}`` or
    ``{"not": {}}``. Documentation only: what is not a schema (or a boolean ``required``) is
    left out, never a reason to refuse the endpoint."""
    out: dict[str, Any] = {}
    for side in ("input", "output"):
        payload = h.get(side)
        if not isinstance(payload, dict):
            continue
        schema = payload.get("jsonSchema")
        if isinstance(schema, bool):
            schema = {} if schema else {"not": {}}
        elif schema is None and _is_json(payload.get("contentType")):
            schema = {}  # JSON of any shape
        if isinstance(schema, dict):
            out[f"{side}_schema"] = schema
        required = payload.get("required", False)
        if side == "input" and isinstance(required, bool):
            out["input_required"] = required
    return out


def _is_json(content_type: Any) -> bool:
    if not isinstance(content_type, str):
        return False
    media = content_type.split(";")[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def _name(obj: dict[str, Any], what: str) -> str:
    name = obj.get("name")
    if not isinstance(name, str) or not name:
        raise ProtocolError(f"a {what} in the manifest has no name")
    return name


def read_manifest(message: dict[str, Any]) -> DiscoveryResponse:
    """The services of an endpoint manifest (``ProtocolError`` when it is not a valid one)."""
    version = negotiate(message.get("minProtocolVersion"), message.get("maxProtocolVersion"))
    mode = message.get("protocolMode", "BIDI_STREAM")
    if mode not in MODES:
        raise ProtocolError(f"unknown protocolMode {mode!r}")
    raw_services = message.get("services")
    if not isinstance(raw_services, list):
        raise ProtocolError("the manifest's services must be a list")
    services = []
    for s in raw_services:
        if not isinstance(s, dict):
            raise ProtocolError("a service in the manifest is not an object")
        name = _name(s, "service")
        kind = _SERVICE_KINDS.get(s.get("ty", ""))
        if kind is None:
            raise ProtocolError(f"service {name!r} has an unknown ty {s.get('ty')!r}")
        handlers = []
        for h in s.get("handlers") or []:
            if not isinstance(h, dict):
                raise ProtocolError(f"a handler of {name!r} is not an object")
            ty = h.get("ty")
            if ty is None:
                handler_kind = "shared" if kind == "workflow" else "exclusive"
            elif ty in _HANDLER_KINDS:
                handler_kind = _HANDLER_KINDS[ty]
            else:
                raise ProtocolError(f"handler {name}/{h.get('name')} has an unknown ty {ty!r}")
            inherited = {k: s[k] for k in _RETRY_FIELDS if k in s}  # the service's, per field
            handlers.append(
                HandlerInfo(
                    name=_name(h, "handler"),
                    kind=handler_kind,
                    retry=_retry({**inherited, **h}),
                    settings=_settings(h, f"handler {name}/{h.get('name')}"),
                    **_payloads(h),
                )
            )
        services.append(
            ServiceInfo(
                name=name,
                kind=kind,
                handlers=tuple(handlers),
                settings=_settings(s, f"service {name}"),
            )
        )
    return DiscoveryResponse(
        services=tuple(services),
        wire="restate",
        wire_info={"version": version, "mode": mode, "manifest": message},
    )
