"""Handlers that misbehave, against a real orchestrator and real endpoint processes:

* a handler that raises is retried, then succeeds; every failed attempt is counted;
* a handler that ``os._exit``s its endpoint mid-step: the invocation backs off on transport
  errors, and completes once the test restarts the endpoint;
* a handler that hangs past the attempt timeout: the attempt is abandoned and retried, and the
  hung attempt's late answer never reaches the journal (it would journal "attempt-1");
* an endpoint answering garbage (not JSON, an unknown status, a wrong protocol version): the
  invocation backs off with a clear ``last_failure``, and the server keeps serving.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.chaos._support import APPS, journal, read_ledger
from tests.procs import Endpoint, Orchestrator, Proc, free_port, http, wait_port, wait_until

ATTEMPT_TIMEOUT_S = 1.0


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[Orchestrator, Endpoint, Path]]:
    ledger = tmp_path / "ledger.txt"
    endpoint = Endpoint(tmp_path, APPS, "chaosapp", RITORNELLO_TEST_LEDGER=str(ledger)).start()
    orch = Orchestrator(
        tmp_path,
        RITORNELLO_ATTEMPT_TIMEOUT_S=str(ATTEMPT_TIMEOUT_S),
        RITORNELLO_RETRY_INITIAL_MS="20",
        RITORNELLO_RETRY_MAX_MS="200",
    ).start()
    try:
        status, body, _ = http("POST", f"{orch.admin}/deployments", {"uri": endpoint.uri})
        assert status == 201, body
        yield orch, endpoint, ledger
    finally:
        orch.kill9()
        endpoint.terminate()


def _send(orch: Orchestrator, target: str, arg: Any) -> str:
    status, body, _ = http("POST", f"{orch.ingress}/restate/send/{target}", arg)
    assert status == 202, body
    return str(body["invocationId"])


def _info(orch: Orchestrator, inv: str) -> dict[str, Any]:
    status, body, _ = http("GET", f"{orch.admin}/invocations/{inv}")
    assert status == 200, body
    return body  # type: ignore[no-any-return]


def _attach(orch: Orchestrator, inv: str) -> tuple[int, Any]:
    status, body, _ = http("GET", f"{orch.ingress}/restate/attach/{inv}", timeout=60)
    return status, body


def test_raising_handler_is_retried_then_succeeds(
    stack: tuple[Orchestrator, Endpoint, Path],
) -> None:
    orch, _, ledger = stack
    invs = {n: _send(orch, "Faults/raises", n) for n in (1, 3, 6)}
    for n, inv in invs.items():
        assert _attach(orch, inv) == (200, f"ok on attempt {n + 1}")
        info = _info(orch, inv)
        assert info["status"] == "succeeded" and info["attempt"] == n + 1, info
        # the step before the raise was journaled by the first attempt and never re-run
        (run,) = [e for e in info["journal"] if e["kind"] == "run"]
        executions = read_ledger(ledger)
        assert [t.token for t in executions[(inv, "raises-1")]] == [run["value"]]
        assert not any(executions[(inv, f"raises-{a}")] for a in range(2, n + 2))


@pytest.mark.timeout(120)
def test_endpoint_exits_mid_step_and_invocation_completes_after_restart(
    stack: tuple[Orchestrator, Endpoint, Path], tmp_path: Path
) -> None:
    orch, endpoint, ledger = stack
    marker = tmp_path / "died"
    inv = _send(orch, "Faults/dies", str(marker))
    assert endpoint.proc is not None
    wait_until(lambda: endpoint.proc is not None and endpoint.proc.poll() is not None, 30, "exit")
    assert endpoint.proc.returncode == 3
    wait_until(lambda: int(_info(orch, inv)["attempt"]) >= 3, 30, "failed attempts counted")
    info = _info(orch, inv)
    assert info["status"] in ("backing-off", "running"), info
    assert "transport" in str(info["last_failure"]), info
    # the server keeps serving meanwhile
    assert http("GET", f"{orch.admin}/invocations?limit=5")[0] == 200
    endpoint.start()  # same port
    status, body = _attach(orch, inv)
    assert status == 200, body
    runs = {e["name"]: e["value"] for e in journal(orch, inv) if e["kind"] == "run"}
    assert body == f"{runs['before']}:{runs['during']}"
    executions = read_ledger(ledger)
    for step in ("before", "during"):
        tokens = executions[(inv, step)]
        assert tokens and tokens[-1].token == runs[step], (step, tokens)
    assert len(executions[(inv, "during")]) == 1  # the first one died before its effect


@pytest.mark.timeout(120)
def test_hung_attempt_is_abandoned_and_its_late_answer_refused(
    stack: tuple[Orchestrator, Endpoint, Path],
) -> None:
    orch, _, ledger = stack
    hang_s = ATTEMPT_TIMEOUT_S * 4
    started = time.monotonic()
    inv = _send(orch, "Faults/hangs", hang_s)
    assert _attach(orch, inv) == (200, "attempt-2")
    assert time.monotonic() - started < hang_s  # it did not wait for the hung attempt
    info = _info(orch, inv)
    assert info["attempt"] == 2, info
    # Let the hung attempt finish and answer (to a request the orchestrator abandoned).
    wait_until(lambda: read_ledger(ledger)[(inv, "hang-attempt-1")], hang_s + 10, "late effect")
    time.sleep(0.5)
    entries = journal(orch, inv)
    runs = [e for e in entries if e["kind"] == "run"]
    assert [e["value"] for e in runs] == ["attempt-2"], entries
    assert "attempt-1" not in str(entries)
    assert _info(orch, inv)["status"] == "succeeded"
    assert _attach(orch, inv) == (200, "attempt-2")


@pytest.fixture
def garbage_endpoint(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    proc = Proc(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "chaosapp:garbage_app",
            "--app-dir",
            str(APPS),
            "--port",
            str(port),
            "--host",
            "127.0.0.1",
            "--log-level",
            "warning",
        ],
        tmp_path / "garbage.log",
    ).start()
    try:
        wait_port(port, proc.proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("handler", "expected"),
    [
        ("notjson", "protocol"),
        ("badstatus", "status"),
        ("badversion", "version"),
        ("notobject", "protocol"),  # a list: was a TypeError crash loop, now a failure
    ],
)
def test_garbage_answers_back_off_with_a_clear_failure(
    stack: tuple[Orchestrator, Endpoint, Path], garbage_endpoint: str, handler: str, expected: str
) -> None:
    orch, _, _ = stack
    status, body, _ = http("POST", f"{orch.admin}/deployments", {"uri": garbage_endpoint})
    assert status == 201, body
    inv = _send(orch, f"Junk/{handler}", 1)
    wait_until(lambda: int(_info(orch, inv)["attempt"]) >= 3, 30, "garbage attempts retried")
    info = _info(orch, inv)
    assert info["status"] in ("backing-off", "running"), info
    failure = str(info["last_failure"])
    assert expected in failure.lower(), failure
    assert [e["kind"] for e in info["journal"]] == ["input"], info
    # The server keeps serving: ingress, admin, and the healthy endpoint.
    status, body, _ = http("POST", f"{orch.ingress}/restate/call/Faults/raises", 0)
    assert (status, body) == (200, "ok on attempt 1")
    assert http("GET", f"{orch.admin}/invocations/{inv}")[0] == 200
    status, body, _ = http("PATCH", f"{orch.admin}/invocations/{inv}/kill")
    assert status == 200, body
    print(f"{handler}: last_failure={failure!r}")
