"""Deployments and the services they serve, as data (the invokers that reach them are the
runtime's).

A service name resolves to the newest deployment that serves it; an invocation is pinned to the
deployment it started on (``InvocationRecord.deployment_id``) and keeps using it. The core reads
the registry (to place callees and find retry policies); only the runtime changes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ritornello.protocol import DiscoveryResponse, HandlerInfo, RetryPolicy, ServiceInfo, Settings
from ritornello.store.records import DeploymentRecord


@dataclass(frozen=True, slots=True)
class Target:
    """A resolved handler: what ingress and the outbox need to create an invocation."""

    service: ServiceInfo
    handler: HandlerInfo
    deployment_id: str


class Registry:
    """In-memory view of the registered deployments (the store holds the truth)."""

    def __init__(self) -> None:
        self.deployments: dict[str, DeploymentRecord] = {}
        self._services: dict[str, tuple[ServiceInfo, str]] = {}
        self._declared: dict[str, dict[str, ServiceInfo]] = {}  # deployment -> its services
        self._wires: dict[str, str] = {}  # deployment -> the wire protocol it speaks
        self._replays: set[str] = set()  # deployments that honour replay-only requests
        #: (deployment, service, handler) -> its limit, for limited handlers only (read
        #: before every attempt: one dict lookup)
        self._limits: dict[tuple[str, str, str], str] = {}
        #: service -> an operator's overrides (``PATCH /services/{service}``; the store's)
        self._overrides: dict[str, Settings] = {}
        #: (deployment, service, handler) -> its effective settings, for handlers with any
        #: (read at every completion and attempt: one dict lookup, a miss for most)
        self._effective: dict[tuple[str, str, str], Settings] = {}
        self._any_private = False

    def add(self, record: DeploymentRecord, discovery: DiscoveryResponse) -> None:
        """Register (or refresh) a deployment; its services now resolve to it."""
        self.deployments[record.id] = record
        declared = discovery.services
        self._wires[record.id] = discovery.wire
        if discovery.replay_only:
            self._replays.add(record.id)
        else:
            self._replays.discard(record.id)
        self._declared[record.id] = {svc.name: svc for svc in declared}
        self._limits = {k: v for k, v in self._limits.items() if k[0] != record.id}
        for svc in declared:
            self._services[svc.name] = (svc, record.id)
            for h in svc.handlers:
                limit = h.limit or svc.limit
                if limit is not None:
                    self._limits[(record.id, svc.name, h.name)] = limit
        self._resolve_settings()

    def remove(self, deployment_id: str) -> bool:
        """Forget a deployment; its services fall back to the newest other one serving them."""
        found = self.deployments.pop(deployment_id, None) is not None
        self._declared.pop(deployment_id, None)
        self._wires.pop(deployment_id, None)
        self._replays.discard(deployment_id)
        self._limits = {k: v for k, v in self._limits.items() if k[0] != deployment_id}
        self._services = {}
        for dep in sorted(self.deployments.values(), key=lambda d: d.created_at):
            for svc in self._declared[dep.id].values():
                self._services[svc.name] = (svc, dep.id)
        self._resolve_settings()
        return found

    # ------------------------------------------------------------------ settings

    def set_overrides(self, overrides: dict[str, Settings]) -> None:
        """Replace every operator override (what the store holds); effective at once."""
        if overrides != self._overrides:
            self._overrides = dict(overrides)
            self._resolve_settings()

    def override(self, service: str) -> Settings | None:
        """The operator's overrides of ``service``, if any."""
        return self._overrides.get(service)

    def _resolve_settings(self) -> None:
        """Effective settings of every handler: the operator's override over the handler's
        code over its service's code, field by field."""
        effective: dict[tuple[str, str, str], Settings] = {}
        for dep_id, declared in self._declared.items():
            for svc in declared.values():
                override = self._overrides.get(svc.name)
                for h in svc.handlers:
                    merged = _merge(override, h.settings, svc.settings)
                    if merged is not None:
                        effective[(dep_id, svc.name, h.name)] = merged
        self._effective = effective
        self._any_private = any(s.ingress_private for s in effective.values())

    def shortest_retention_ms(self) -> float:
        """The shortest retention any handler sets (infinity: none sets one)."""
        found = [
            ms
            for s in self._effective.values()
            for ms in (s.journal_retention_ms, s.idempotency_retention_ms, s.workflow_retention_ms)
            if ms is not None
        ]
        return min(found, default=float("inf"))

    def any_private(self) -> bool:
        """Whether any handler is ingress-private (else the ingress checks nothing)."""
        return self._any_private

    def settings_of(self, deployment_id: str, service: str, handler: str) -> Settings | None:
        """A handler's effective settings as the given deployment declared it (None: nothing
        set anywhere: every default applies)."""
        return self._effective.get((deployment_id, service, handler))

    def service_settings(self, service: str) -> Settings:
        """A service's effective service-level settings: the operator's override over the
        code of the deployment it resolves to."""
        found = self._services.get(service)
        code = found[0].settings if found is not None else None
        return _merge(self._overrides.get(service), code) or Settings()

    def signals(self, deployment_id: str) -> bool:
        """Whether the deployment's endpoints take signals (Restate's awakeables): completions
        at negative indices below -1 (``protocol.is_signal``)."""
        return self._wires.get(deployment_id) == "restate"

    def wire(self, deployment_id: str) -> str | None:
        """The wire protocol a deployment speaks (``ritornello``, ``restate``...)."""
        return self._wires.get(deployment_id)

    def replays(self, deployment_id: str) -> bool:
        """Whether the deployment honours replay-only requests (dry runs)."""
        return deployment_id in self._replays

    def services(self) -> list[tuple[ServiceInfo, str]]:
        """Every known service with the deployment it resolves to."""
        return sorted(self._services.values(), key=lambda s: s[0].name)

    def service(self, name: str) -> tuple[ServiceInfo, str] | None:
        return self._services.get(name)

    def service_kind(self, name: str) -> str:
        """``service``, ``object`` or ``workflow`` (``service`` when nothing serves it)."""
        found = self._services.get(name)
        return found[0].kind if found is not None else "service"

    def resolve(self, service: str, handler: str) -> Target | None:
        """The target for ``service/handler``, or None if nothing serves it."""
        found = self._services.get(service)
        if found is None:
            return None
        info, deployment_id = found
        h = info.handler(handler)
        if h is None:
            return None
        return Target(info, h, deployment_id)

    def service_info(self, deployment_id: str, service: str) -> ServiceInfo | None:
        """A service as the given deployment declared it."""
        return self._declared.get(deployment_id, {}).get(service)

    def handler_info(self, deployment_id: str, service: str, handler: str) -> HandlerInfo | None:
        """A handler as the given deployment declared it (an invocation's pinned view)."""
        svc = self._declared.get(deployment_id, {}).get(service)
        return svc.handler(handler) if svc is not None else None

    def limit_of(self, deployment_id: str, service: str, handler: str) -> str | None:
        """The limit an invocation of the handler holds a permit of while it runs: the
        handler's own, else its service's (docs/limits.md)."""
        return self._limits.get((deployment_id, service, handler))

    def declared_limits(self) -> dict[str, dict[str, Any]]:
        """The limits the registered deployments' code defines (a newer deployment's
        definition wins)."""
        out: dict[str, dict[str, Any]] = {}
        for dep in sorted(self.deployments.values(), key=lambda d: d.created_at):
            for svc in self._declared.get(dep.id, {}).values():
                out.update(svc.limits)
        return out

    def policy(
        self, default: RetryPolicy, deployment_id: str, service: str, handler: str
    ) -> RetryPolicy:
        """The retry policy of a handler: its declared one over ``default``, field by field."""
        info = self.handler_info(deployment_id, service, handler)
        if info is None or info.retry is None:
            return default
        return info.retry.merged_over(default)


def _merge(*levels: Settings | None) -> Settings | None:
    """The first level's settings over the next's, and so on (None when none sets any)."""
    out: Settings | None = None
    for level in reversed(levels):
        if level is not None:
            out = level.over(out)
    return None if out is None or out.is_empty() else out
