"""``/services/{service}/state``: read and replace the state of one virtual-object or workflow
key, with an optimistic version (see ``ritornello.orchestrator.runtime._operator`` for the
rules: the write holds the key like an exclusive invocation, is refused with 409 while one
holds it, and commits fenced by the partition leader's epoch). The engine checks the key and
each value as the ingress checks a path's key and a body (400: NaN, ``1e999``, an integer
past 64 bits, nesting past 128 levels)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException

from ritornello.admin._models import StateVersion, StateView, StateWrite, errors, refused
from ritornello.orchestrator import Engine, OrchestratorError


async def _keyed(engine: Engine, service: str) -> None:
    """404 unknown service; 400 a plain service (it has no state)."""
    found = await engine.find_service(service)
    if found is None:
        raise HTTPException(404, f"service {service} not found")
    if found[0].kind not in ("object", "workflow"):
        raise HTTPException(
            400, f"{service} is a {found[0].kind}: only virtual objects and workflows have state"
        )


def state_router(engine: Engine) -> APIRouter:
    """Object state inspection and replacement."""
    router = APIRouter(tags=["state"])

    @router.get(
        "/services/{service}/state/{key}", response_model=StateView, responses=errors(400, 404)
    )
    async def get_state(service: str, key: str) -> dict[str, Any]:
        """The user state of one key (empty when it has none) and its version."""
        await _keyed(engine, service)
        version, state = await engine.read_state(service, key)
        return {"service": service, "key": key, "version": version, "state": state}

    @router.post(
        "/services/{service}/state",
        response_model=StateVersion,
        responses=errors(400, 404, 409, 503),
    )
    async def set_state(service: str, body: StateWrite) -> dict[str, str]:
        """Replace the whole user state of ``object_key``. With ``version``: only if the
        state is still at that version (else 409). 409 also while an exclusive invocation
        holds the key; 503 when another orchestrator leads the key's partition."""
        await _keyed(engine, service)
        try:
            version = await engine.write_state(
                service, body.object_key, body.new_state, body.version
            )
        except OrchestratorError as exc:
            raise refused(exc) from None
        return {"version": version}

    return router
