"""``/health``, ``/version`` and ``/cluster``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from ritornello.admin._models import Cluster, Health, VersionInfo
from ritornello.admin._views import app_version
from ritornello.orchestrator import Engine
from ritornello.protocol import PROTOCOL_VERSION


def health_router(engine: Engine) -> APIRouter:
    """Liveness, versions and cluster membership."""
    router = APIRouter(tags=["health"])

    @router.get("/health", response_model=Health)
    @router.head("/health", include_in_schema=False)  # load balancers' checks (public)
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/version", response_model=VersionInfo)
    async def get_version() -> dict[str, Any]:
        return {
            "version": app_version(),
            "min_admin_api_version": 1,
            "max_admin_api_version": 1,
            "protocol_version": PROTOCOL_VERSION,
        }

    @router.get("/cluster", response_model=Cluster)
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
            "renewals": engine.leadership.stats.view(),
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

    return router
