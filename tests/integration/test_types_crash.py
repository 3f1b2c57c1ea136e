"""Every SDK type through a crash and a replay, over HTTP and on the Lambda path: the
endpoint's process is killed (SIGKILL, by the handler's own step) after the typed steps,
state, call and awakeable were committed; the orchestrator retries on a restarted endpoint,
which replays them all from the journal and must hand the handler identical, typed values.
On the Lambda path the process killed is the function's sandbox (the emulator's worker: the
emulator answers a runtime exit and serves the retry from a fresh worker)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from tests.procs import (
    ROOT,
    Endpoint,
    LambdaEmulatorProcess,
    Orchestrator,
    Proc,
    aws_env,
    http,
)

ARN = "arn:aws:lambda:us-east-1:123456789012:function:types:1"
NAMES = [
    "dataclass",
    "pydantic",
    "typeddict",
    "enum",
    "datetime",
    "decimal",
    "bytes",
    "none",
    "state",
    "call",
    "awakeable",
]
TYPES = {
    "dataclass": "Line",
    "pydantic": "Customer",
    "typeddict": "dict",
    "enum": "Color",
    "datetime": "datetime",
    "decimal": "Decimal",
    "bytes": "bytes",
    "none": "NoneType",
    "state": "Line",
    "call": "Customer",
    "awakeable": "Color",
}


def _restart_when_killed(endpoint: Proc, within_s: float = 60) -> None:
    """Wait for the handler to kill its endpoint, then start it again (same port)."""
    assert endpoint.proc is not None
    deadline = time.monotonic() + within_s
    while endpoint.proc.poll() is None:
        assert time.monotonic() < deadline, "the endpoint was never killed"
        time.sleep(0.05)
    assert endpoint.proc.returncode == -9
    endpoint.start()


def _killed_once(
    orch: Orchestrator, endpoint: Proc, path: str, body: object = None, *, sandbox: bool = False
) -> Any:
    """Call ``path`` on the ingress while its handler kills the endpoint once (``sandbox``:
    only its Lambda worker, the emulator goes on); the answer."""
    result: dict[str, Any] = {}

    def call() -> None:
        result["answer"] = http("POST", f"{orch.ingress}{path}", body, timeout=90)

    caller = threading.Thread(target=call)
    caller.start()
    if not sandbox:
        _restart_when_killed(endpoint)
    caller.join(90)
    if sandbox:
        assert endpoint.proc is not None and endpoint.proc.poll() is None  # it went on
        assert "Runtime.ExitError" in orch.output()  # the killed run, answered as Lambda does
    status, answer, _ = result["answer"]
    assert status == 200, (answer, orch.output())
    return answer


def _roundtrip(orch: Orchestrator, endpoint: Proc, *, sandbox: bool = False) -> None:
    body = _killed_once(orch, endpoint, "/restate/call/TypesBox/k1/roundtrip", sandbox=sandbox)
    assert sorted(body) == sorted(NAMES)
    for name in NAMES:
        type_name, equal, attempt = body[name]
        assert (type_name, equal) == (TYPES[name], True), (name, body[name])
        assert attempt >= 2  # the answer comes from an attempt after the kill: a replay
    line = {"sku": "A-1", "price": "19.99", "at": "2026-12-05T01:02:03.456789+02:00"}
    flow = _killed_once(orch, endpoint, "/restate/call/TypesFlow/w1/settle", line, sandbox=sandbox)
    assert sorted(flow) == ["input", "peek", "promise"]
    assert all(seen[:2] == ["Line", True] and seen[2] >= 2 for seen in flow.values()), flow


def test_types_survive_a_kill_and_a_replay_over_http(tmp_path: Path) -> None:
    endpoint = Endpoint(
        tmp_path, ROOT / "tests" / "apps", "typesapp", RITORNELLO_TEST_DIR=str(tmp_path)
    ).start()
    orch = Orchestrator(tmp_path).start()
    try:
        status, body, _ = http("POST", f"{orch.admin}/deployments", {"uri": endpoint.uri})
        assert status == 201, body
        _roundtrip(orch, endpoint)
    finally:
        orch.terminate()
        endpoint.terminate()


def test_types_survive_a_kill_and_a_replay_on_lambda(tmp_path: Path) -> None:
    emulator = LambdaEmulatorProcess(
        tmp_path, "tests/apps/typesapp.py", RITORNELLO_TEST_DIR=str(tmp_path)
    ).start()
    orch = Orchestrator(tmp_path, **aws_env(emulator.port, tmp_path)).start()
    try:
        status, body, _ = http("POST", f"{orch.admin}/deployments", {"arn": ARN})
        assert status == 201, body
        _roundtrip(orch, emulator, sandbox=True)
        assert (tmp_path / "died").exists() and (tmp_path / "died-flow").exists()
    finally:
        orch.terminate()
        emulator.terminate()
