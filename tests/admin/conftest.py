"""A stack per test module for the admin API tests: ``adminapp`` under uvicorn and a
``ritornello serve`` process over a fresh SQLite file, both on loopback ports."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.procs import Endpoint, Orchestrator, http, wait_until

HERE = Path(__file__).resolve().parent


class Api:
    """The running stack and small helpers over its admin and ingress APIs."""

    def __init__(self, orch: Orchestrator, endpoint: Endpoint, deployment_id: str) -> None:
        self.orch = orch
        self.endpoint = endpoint
        self.deployment_id = deployment_id

    def admin(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        status, payload, _ = http(method, f"{self.orch.admin}{path}", body)
        return status, payload

    def raw(self, path: str) -> tuple[int, Any, dict[str, str]]:
        return http("GET", f"{self.orch.admin}{path}")

    def call(self, path: str, body: Any = None, **headers: str) -> tuple[int, Any, str]:
        """POST to the ingress; (status, body, invocation id)."""
        status, payload, hdrs = http("POST", f"{self.orch.ingress}{path}", body, headers=headers)
        return status, payload, hdrs.get("x-restate-id", "")

    def send(self, path: str, body: Any = None) -> str:
        """A one-way send; its invocation id."""
        status, payload, _ = http("POST", f"{self.orch.ingress}/restate/send{path}", body)
        assert status == 202, payload
        return str(payload["invocationId"])

    def invocation(self, inv_id: str) -> dict[str, Any]:
        status, body = self.admin("GET", f"/invocations/{inv_id}")
        assert status == 200, body
        return dict(body)

    def wait_status(self, inv_id: str, *statuses: str, within_s: float = 20) -> dict[str, Any]:
        wait_until(
            lambda: self.invocation(inv_id)["status"] in statuses,
            within_s,
            f"{inv_id} {'/'.join(statuses)}",
        )
        return self.invocation(inv_id)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    tmp = tmp_path_factory.mktemp("admin")
    endpoint = Endpoint(tmp, HERE, "adminapp").start()
    orch = Orchestrator(tmp).start()
    try:
        status, body, _ = http("POST", f"{orch.admin}/deployments", {"uri": endpoint.uri})
        assert status == 201, body
        yield Api(orch, endpoint, body["id"])
    finally:
        orch.terminate()
        endpoint.terminate()
