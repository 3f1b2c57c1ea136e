"""A shared stack for the integration tests: the examples' endpoint under uvicorn and an
orchestrator process, both on loopback ports, one per test module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.procs import ROOT, Endpoint, Orchestrator, http, moto_process


class Stack:
    def __init__(self, orch: Orchestrator, endpoint: Endpoint) -> None:
        self.orch = orch
        self.endpoint = endpoint

    def call(self, path: str, body: object = None, **kw: object) -> tuple[int, object, dict]:
        return http("POST", f"{self.orch.ingress}{path}", body, **kw)  # type: ignore[arg-type]

    def get(self, path: str) -> tuple[int, object, dict]:
        return http("GET", f"{self.orch.ingress}{path}")

    def admin(self, method: str, path: str, body: object = None) -> tuple[int, object, dict]:
        return http(method, f"{self.orch.admin}{path}", body)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp: Path = tmp_path_factory.mktemp("stack")
    endpoint = Endpoint(tmp, ROOT / "examples", "app").start()
    orch = Orchestrator(tmp, RITORNELLO_MAX_BODY_BYTES="65536").start()
    try:
        status, body, _ = http("POST", f"{orch.admin}/deployments", {"uri": endpoint.uri})
        assert status == 201, body
        yield Stack(orch, endpoint)
    finally:
        orch.terminate()
        endpoint.terminate()


@pytest.fixture
def moto(tmp_path: Path) -> Iterator[dict[str, str]]:
    """moto's server as its own process; the AWS environment that points boto3 at it."""
    with moto_process(tmp_path) as env:
        yield env
