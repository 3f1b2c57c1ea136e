"""The admin API on Lambda (``ritornello.admin.lambda_handler.handler``), fed Function URL events
(payload format 2.0, fixtures in tests/admin/events/) in the test process, over a DynamoDB
table on moto's server (its own process) that an orchestrator process — the partition leader —
shares: what the Lambda registers, the orchestrator runs; what the Lambda kills, the
orchestrator finishes.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.procs import (
    ROOT,
    Endpoint,
    Orchestrator,
    http,
    moto_process,
    store_init,
    wait_until,
)

EVENTS = Path(__file__).parent / "events"
APPS = ROOT / "tests" / "apps"
TABLE = "ritornello-admin-lambda"
STORE = f"dynamodb://{TABLE}?region=us-east-1&partitions=4"


def event(name: str, **placeholders: str) -> dict[str, Any]:
    """The fixture ``events/NAME.json`` with each placeholder (``INVOCATION_ID``...) replaced;
    a plain-text body's content-length follows the replacement."""
    text = (EVENTS / f"{name}.json").read_text()
    for placeholder, value in placeholders.items():
        text = text.replace(placeholder, value)
    ev: dict[str, Any] = json.loads(text)
    if "body" in ev and not ev["isBase64Encoded"]:
        ev["headers"]["content-length"] = str(len(ev["body"].encode()))
    return ev


def call(module: ModuleType, name: str, **placeholders: str) -> tuple[int, Any]:
    """Send one event through the Lambda handler: (status, JSON body)."""
    response = module.handler(event(name, **placeholders), None)
    assert not response["isBase64Encoded"], response
    body = response["body"]
    return response["statusCode"], json.loads(body) if body else None


@pytest.fixture
def lambda_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The handler module, its admin app closed after the test (it starts again, from the
    environment, on the next request). The AWS environment must be set before a request."""
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    from ritornello.admin import lambda_handler

    assert lambda_handler.admin.app is None, "another test left the admin app open"
    try:
        yield lambda_handler
    finally:
        lambda_handler._LOOP.run_until_complete(lambda_handler.admin.close())


@pytest.fixture
def moto(tmp_path: Path) -> Iterator[dict[str, str]]:
    with moto_process(tmp_path) as env:
        yield env


@pytest.mark.timeout(90)
def test_lambda_admin_registers_and_kills_what_the_orchestrator_runs(
    tmp_path: Path,
    moto: dict[str, str],
    lambda_env: ModuleType,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store_init(STORE, moto)
    for name, value in {**moto, "RITORNELLO_STORE": STORE}.items():
        monkeypatch.setenv(name, value)
    admin = lambda_env
    endpoint = Endpoint(tmp_path, APPS, "crashapp").start()
    orch: Orchestrator | None = None
    try:
        assert call(admin, "get_health")[0] == 200
        status, version = call(admin, "get_version")
        assert status == 200 and version["max_admin_api_version"] == 1, version

        # Registered through the Lambda (discovery runs from here) and listed by it.
        status, dep = call(admin, "post_deployment", ENDPOINT_URI=endpoint.uri)
        assert status == 201, dep
        assert dep["uri"] == endpoint.uri
        status, deps = call(admin, "get_deployments")
        assert status == 200 and [d["id"] for d in deps["deployments"]] == [dep["id"]], deps
        status, services = call(admin, "get_services")
        assert status == 200, services
        adder = {s["name"]: s for s in services["services"]}["Adder"]
        assert adder["deployment_id"] == dep["id"]
        assert "nap" in {h["name"] for h in adder["handlers"]}

        # The orchestrator, started afterwards on the same table, runs that deployment.
        home = tmp_path / "orch"
        home.mkdir()
        orch = Orchestrator(
            home,
            store=STORE,
            RITORNELLO_NODE_ID="leader",
            RITORNELLO_LEASE_S="1",
            RITORNELLO_INBOX_INTERVAL_S="0.05",
            **moto,
        ).start()
        status, deps_there, _ = http("GET", f"{orch.admin}/deployments")
        assert [d["id"] for d in deps_there["deployments"]] == [dep["id"]], deps_there
        status, sent, _ = http("POST", f"{orch.ingress}/restate/send/Adder/nap", 60)
        assert status == 202, sent
        inv = sent["invocationId"]

        def suspended() -> bool:
            status, body = call(admin, "get_invocation", INVOCATION_ID=inv)
            assert status == 200, body
            return bool(body["status"] == "suspended")

        wait_until(suspended, 20, f"{inv} suspended in its 60 s sleep")
        status, seen = call(admin, "get_invocation", INVOCATION_ID=inv)
        assert (seen["target"], seen["deployment_id"]) == ("Adder/nap", dep["id"]), seen
        assert [e["kind"] for e in seen["journal"]] == ["input", "sleep"], seen["journal"]
        assert "completion" not in seen["journal"][1]
        status, listed = call(admin, "get_invocations_of_service")
        assert status == 200 and inv in [i["id"] for i in listed["invocations"]], listed

        # Killed through the Lambda (it leads no partition); the leader finishes it: a caller
        # attached to the orchestrator's ingress gets the failure at once, not in 60 s.
        with ThreadPoolExecutor(1) as pool:
            attached = pool.submit(http, "GET", f"{orch.ingress}/restate/attach/{inv}")
            time.sleep(0.3)
            assert not attached.done()
            killed_at = time.monotonic()
            status, killed = call(admin, "patch_invocation_kill", INVOCATION_ID=inv)
            assert (status, killed["status"]) == (200, "killed"), killed
            status, answer, _ = attached.result(timeout=10)
        assert (status, answer) == (409, {"message": "killed by an operator"})
        assert time.monotonic() - killed_at < 5
        status, there, _ = http("GET", f"{orch.admin}/invocations/{inv}")
        assert (status, there["status"]) == (200, "killed"), there
        assert call(admin, "patch_invocation_kill", INVOCATION_ID=inv)[0] == 409

        status, missing = call(
            admin, "get_invocation", INVOCATION_ID="inv_1unknown0000000000000000"
        )
        assert status == 404, missing
        status, refused = call(admin, "post_deployment_malformed")
        assert 400 <= status < 500, refused
    finally:
        if orch is not None:
            orch.terminate()
        endpoint.terminate()


def test_handler_keeps_its_loop_across_calls_and_after_asyncio_run(
    tmp_path: Path, lambda_env: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mangum runs each request on the thread's current event loop; the handler makes that its
    own loop on every call, so the engine it started on the first request (whose tasks live on
    that loop) serves the next ones, whatever ``asyncio.run`` did to the current loop between
    them."""
    monkeypatch.setenv("RITORNELLO_STORE", f"sqlite:///{tmp_path / 'admin.db'}")
    admin = lambda_env

    async def elsewhere() -> str:
        await asyncio.sleep(0)
        return "ran"

    assert asyncio.run(elsewhere()) == "ran"  # leaves no current loop behind
    assert call(admin, "get_health") == (200, {"status": "ok"})
    engine = admin.admin.engine
    assert engine is not None
    assert asyncio.get_event_loop() is admin._LOOP
    assert call(admin, "get_version")[0] == 200
    assert admin.admin.engine is engine

    assert asyncio.run(elsewhere()) == "ran"  # a new loop, then none current again
    assert call(admin, "get_deployments") == (200, {"deployments": []})
    assert admin.admin.engine is engine
    assert call(admin, "get_invocation", INVOCATION_ID="inv_1unknown0000000000000000")[0] == 404
    assert not admin._LOOP.is_running() and not admin._LOOP.is_closed()


def test_lambda_admin_logs_through_powertools(tmp_path: Path) -> None:
    """With Powertools installed, the admin Lambda's records (``ritornello.*``) come out as
    Powertools' JSON lines on stdout, with the request id and the cold start flag. A fresh
    interpreter: Powertools configures the ``ritornello`` logger once per process."""
    import os
    import subprocess
    import sys

    script = (
        "import json, sys, types\n"
        "from ritornello.admin import lambda_handler as h\n"
        "ctx = types.SimpleNamespace(aws_request_id='req-1')\n"
        "for _ in range(2):\n"
        "    r = h.handler(json.loads(sys.argv[1]), ctx)\n"
        "    assert r['statusCode'] == 200, r\n"
        "h._LOOP.run_until_complete(h.admin.close())\n"
    )
    env = {
        **os.environ,
        "RITORNELLO_STORE": f"sqlite:///{tmp_path / 'admin.db'}",
        "PYTHONPATH": str(ROOT / "src"),
        "POWERTOOLS_LOG_LEVEL": "INFO",
    }
    out = subprocess.run(
        [sys.executable, "-c", script, json.dumps(event("get_health"))],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    ready = [x for x in lines if str(x.get("message", "")).startswith("admin API ready over")]
    assert len(ready) == 1, out.stdout + out.stderr
    record = ready[0]
    assert record["service"] == "ritornello" and record["level"] == "INFO", record
    assert record["function_request_id"] == "req-1" and record["cold_start"] is True, record
    assert "sqlite" in record["message"] and "location" in record and "timestamp" in record
