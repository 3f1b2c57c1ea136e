"""What an endpoint answers is capped as it arrives: a real ``ritornello serve`` and a hostile
endpoint (``hostile_endpoint``, uvicorn) on loopback. A discovery answer past
``max_discovery_bytes`` fails registration (502), an invocation answer or a streamed line past
``max_answer_bytes`` fails the attempt, each naming the limit; the orchestrator reads no more
than the cap (its peak RSS, ``VmHWM`` in /proc, stays far below the answer's size)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.procs import Endpoint, Orchestrator, http, wait_until

HERE = Path(__file__).parent
MIB = 1 << 20
HUGE = 256 * MIB  # what the endpoint sends; the orchestrator's defaults cap it far below
#: How much the orchestrator's peak RSS may grow while refusing a huge answer (the default
#: caps are 4 MiB for discovery and 32 MiB for answers: room for both, not for the answer)
BOUND = 96 * MIB


def peak_rss(pid: int) -> int:
    """The process's peak resident set (bytes), from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc/PID/status")


class Stack:
    def __init__(self, orch: Orchestrator, endpoint: Endpoint) -> None:
        self.orch, self.endpoint = orch, endpoint
        assert orch.proc is not None
        self.pid = orch.proc.pid
        assert http("GET", f"{orch.admin}/deployments")[0] == 200  # the admin app is built
        self.before = peak_rss(self.pid)

    def grown(self) -> int:
        return peak_rss(self.pid) - self.before


@pytest.fixture
def stack(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Stack]:
    env: dict[str, str] = request.param
    endpoint = Endpoint(tmp_path, HERE, "hostile_endpoint", **env)
    orch = Orchestrator(tmp_path, RITORNELLO_RETRY_INITIAL_MS="2000")
    try:
        endpoint.start()
        orch.start()
        yield Stack(orch, endpoint)
    finally:
        orch.terminate()
        endpoint.terminate()


def _register(stack: Stack) -> tuple[int, Any]:
    status, body, _ = http(
        "POST", f"{stack.orch.admin}/deployments", {"uri": stack.endpoint.uri}, timeout=120
    )
    return status, body


def _first_failure(stack: Stack) -> str:
    status, body = _register(stack)
    assert status == 201, (body, stack.orch.output())
    status, body, _ = http("POST", f"{stack.orch.ingress}/restate/send/Huge/answer", 1)
    assert status == 202, body
    inv = body["invocationId"]

    def failure() -> str:
        got = http("GET", f"{stack.orch.admin}/invocations/{inv}")[1]
        return str(got.get("last_failure") or "")

    wait_until(failure, 60, "a failed attempt")
    return failure()


@pytest.mark.timeout(180)
@pytest.mark.parametrize("stack", [{"HOSTILE_DISCOVERY_BYTES": str(HUGE)}], indirect=True)
def test_a_huge_discovery_answer_fails_registration_with_bounded_memory(stack: Stack) -> None:
    status, body = _register(stack)
    assert stack.grown() < BOUND, f"peak RSS grew by {stack.grown() / MIB:.0f} MiB"
    assert status == 502, body
    assert "max_discovery_bytes" in body["detail"], body
    # the orchestrator goes on serving
    assert http("GET", f"{stack.orch.admin}/deployments")[1]["deployments"] == []


@pytest.mark.timeout(180)
@pytest.mark.parametrize("stack", [{"HOSTILE_ANSWER_BYTES": str(HUGE)}], indirect=True)
def test_a_huge_invocation_answer_fails_the_attempt_naming_the_limit(stack: Stack) -> None:
    text = _first_failure(stack)
    assert stack.grown() < BOUND, f"peak RSS grew by {stack.grown() / MIB:.0f} MiB"
    assert "max_answer_bytes" in text, text


@pytest.mark.timeout(180)
@pytest.mark.parametrize("stack", [{"HOSTILE_LINE_BYTES": str(64 * MIB)}], indirect=True)
def test_a_streamed_line_past_the_cap_fails_the_attempt_naming_the_limit(stack: Stack) -> None:
    text = _first_failure(stack)
    assert stack.grown() < BOUND, f"peak RSS grew by {stack.grown() / MIB:.0f} MiB"
    assert "max_answer_bytes" in text, text


def test_the_limits_are_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from ritornello.orchestrator import load_settings

    defaults = load_settings()
    assert (defaults.max_answer_bytes, defaults.max_discovery_bytes) == (32 * MIB, 4 * MIB)
    monkeypatch.setenv("RITORNELLO_MAX_ANSWER_BYTES", "1000")
    monkeypatch.setenv("RITORNELLO_MAX_DISCOVERY_BYTES", "2000")
    settings = load_settings()
    assert (settings.max_answer_bytes, settings.max_discovery_bytes) == (1000, 2000)
