"""Operators' overrides of service settings: ``PATCH /services/{service}`` in Restate's terms,
read from and written to the store.

An override is kept per service, apart from any deployment, so it survives re-registrations
and restarts, and beats what the code declares until an operator changes it again. Every
orchestrator reads the overrides with its deployments (at start and at every registry refresh),
so a change reaches the others within that interval; the one that took the PATCH applies it
at once.

Restate's fields map to ``Settings``: ``public`` is the inverse of ``ingress_private``;
``journal_retention``, ``idempotency_retention``, ``workflow_completion_retention``,
``inactivity_timeout`` and ``abort_timeout`` are humantime durations (``"30d"``, ``"1h
30m"``, ``"PT10S"``), or milliseconds as a JSON integer.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from ritornello.protocol import Settings, parse_duration
from ritornello.protocol._settings import MAX_DURATION_MS
from ritornello.store import ServiceSettingsRecord, Store

from .._clock import Clock
from ..core import Registry
from ..errors import InvalidRequestError

log = logging.getLogger("ritornello.engine")

#: Restate's PATCH fields that are durations -> the ``Settings`` field each sets.
PATCH_DURATIONS = {
    "journal_retention": "journal_retention_ms",
    "idempotency_retention": "idempotency_retention_ms",
    "workflow_completion_retention": "workflow_retention_ms",
    "inactivity_timeout": "inactivity_timeout_ms",
    "abort_timeout": "abort_timeout_ms",
}
PATCH_FIELDS = frozenset({"public", *PATCH_DURATIONS})


def parse_patch(body: Any) -> dict[str, Any]:
    """The ``Settings`` fields a PATCH body sets (InvalidRequestError, naming the field, for
    a body that is not an object, an unknown field, a wrong type or a bad duration)."""
    if not isinstance(body, dict):
        raise InvalidRequestError("the body must be a JSON object")
    unknown = sorted(set(body) - PATCH_FIELDS)
    if unknown:
        raise InvalidRequestError(
            f"unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(PATCH_FIELDS))}"
        )
    if not body:
        raise InvalidRequestError(
            f"nothing to change: give one of {', '.join(sorted(PATCH_FIELDS))}"
        )
    out: dict[str, Any] = {}
    for name, value in body.items():
        if name == "public":
            if not isinstance(value, bool):
                raise InvalidRequestError("public must be true or false")
            out["ingress_private"] = not value
            continue
        if isinstance(value, str):
            try:
                ms = parse_duration(value, name)
            except ValueError as exc:
                raise InvalidRequestError(str(exc)) from None
        elif isinstance(value, int) and not isinstance(value, bool):
            if not 0 <= value <= MAX_DURATION_MS:
                raise InvalidRequestError(f"{name} must be between 0 and 1000 years, in ms")
            ms = value
        else:
            raise InvalidRequestError(
                f'{name} must be a duration such as "30d" or "1h 30m" (or ms as an integer)'
            )
        out[PATCH_DURATIONS[name]] = ms
    return out


def decode(record: ServiceSettingsRecord) -> Settings | None:
    """The overrides a record holds (None, logged, when it cannot be read)."""
    try:
        return Settings.from_dict(json.loads(record.settings), f"service {record.service}")
    except ValueError as exc:
        log.warning("ignoring the stored settings of %s: %s", record.service, exc)
        return None


async def load_overrides(store: Store) -> dict[str, Settings]:
    """Every service's overrides as the store holds them."""
    found: dict[str, Settings] = {}
    for record in await store.list_service_settings():
        settings = decode(record)
        if settings is not None and not settings.is_empty():
            found[record.service] = settings
    return found


async def patch_service(
    store: Store, registry: Registry, clock: Clock, service: str, changes: dict[str, Any]
) -> Settings:
    """Merge ``changes`` (``parse_patch``'s) into the service's stored overrides, write them,
    and apply them here at once; the service's overrides after the change."""
    current = {r.service: r for r in await store.list_service_settings()}.get(service)
    base = (decode(current) if current is not None else None) or Settings()
    merged = Settings(**{**base.to_dict_raw(), **changes})
    record = ServiceSettingsRecord(service, json.dumps(merged.to_dict()), clock.now_ms())
    await store.put_service_settings(record)
    registry.set_overrides({**await load_overrides(store), service: merged})
    return merged
