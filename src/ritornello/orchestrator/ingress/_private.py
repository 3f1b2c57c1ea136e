"""Ingress-private services and handlers (``ingress_private=True`` in code, ``"public":
false`` through ``PATCH /services/{service}``): the ingress refuses every path into them (call,
send, attach and output, by id, idempotency key or workflow id) with Restate's 400, while
handlers still call and send to them (their calls and sends never pass through here)."""

from __future__ import annotations

from ..core import Registry
from ._input import HttpError


def refuse_private(registry: Registry, deployment_id: str, service: str, handler: str) -> None:
    """Raise a 400 if the handler, as the deployment declared it, is private (one dict
    lookup: a handler with no settings is public)."""
    settings = registry.settings_of(deployment_id, service, handler)
    if settings is not None and settings.ingress_private:
        raise HttpError(
            400, f"{service}/{handler} is private: handlers may call it, the ingress may not"
        )
