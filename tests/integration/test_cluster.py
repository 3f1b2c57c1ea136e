"""A cluster of orchestrators on one DynamoDB table (moto's serialized server over real HTTP on
loopback), without crashes: what the cluster must get right when orchestrators join, leave and
register deployments (issue 23).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.procs import ROOT, Endpoint, Orchestrator, http, moto_process, store_init

APPS = ROOT / "tests" / "apps"


@pytest.fixture
def moto(tmp_path: Path) -> Iterator[dict[str, str]]:
    with moto_process(tmp_path) as env:
        yield env


def _orchestrators(
    tmp_path: Path, url: str, moto: dict[str, str], names: list[str], **env: str
) -> list[Orchestrator]:
    orchs = []
    for name in names:
        home = tmp_path / name
        home.mkdir()
        orchs.append(
            Orchestrator(home, store=url, RITORNELLO_NODE_ID=name, **moto, **env).start()
        )
    return orchs


@pytest.mark.timeout(120)
def test_a_deployment_registered_through_one_orchestrator_is_found_at_once_by_another(
    tmp_path: Path, moto: dict[str, str]
) -> None:
    """Register through A, then 20 concurrent calls to B at once: every one is served. A miss
    on an unknown service waits for a refresh of the deployments that started after it, one
    shared by all the requests missing meanwhile, before it may answer 404 (it used to answer
    404 to most of them: a refresh ran at most every 0.5 s and misses did not wait for it)."""
    url = "dynamodb://ritornello-registration?region=us-east-1&partitions=4"
    store_init(url, moto)
    endpoint = Endpoint(
        tmp_path, APPS, "crashapp", RITORNELLO_TEST_LEDGER=str(tmp_path / "ledger.txt")
    ).start()
    a, b = _orchestrators(tmp_path, url, moto, ["a", "b"])
    try:
        # B has read the (empty) deployments and answers 404 for the service, as it should
        status, body, _ = http("POST", f"{b.ingress}/restate/call/Adder/add", [1, 2])
        assert status == 404, body
        status, body, _ = http("POST", f"{a.admin}/deployments", {"uri": endpoint.uri})
        assert status == 201, body

        def call(n: int) -> tuple[int, object]:
            status, body, _ = http("POST", f"{b.ingress}/restate/call/Adder/add", [n, 1])
            return status, body

        with ThreadPoolExecutor(20) as pool:
            results = list(pool.map(call, range(20)))
        assert results == [(200, n + 1) for n in range(20)], results
    finally:
        for orch in (a, b):
            orch.kill9()
        endpoint.terminate()
