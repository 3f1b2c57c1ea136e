"""A throttled Lambda (issue 18): ``ritornello lambda-emulator --reserved-concurrency 2``
answers 429 TooManyRequestsException past two invocations at once, as Lambda does. The
orchestrator backs a throttled attempt off without counting it: with at most 2 attempts per
invocation, 12 sent at once all complete on their first attempt. A deployment registered with
a limit of its own (``POST /deployments {"arn", "limit"}``) is never throttled at all."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.integration.test_lambda import ARN
from tests.procs import LambdaEmulatorProcess, Orchestrator, aws_env, http, wait_until

TAGS = [f"t{i}" for i in range(12)]


class ThrottlingEmulator(LambdaEmulatorProcess):
    """The emulator serving tests/apps/throttleapp.py with a reserved concurrency."""

    def __init__(self, tmp: Path, reserved: int) -> None:
        flags = ("--reserved-concurrency", str(reserved))
        super().__init__(tmp, "tests/apps/throttleapp.py", *flags)

    def throttles(self) -> int:
        return self.output().count("throttled an Invoke")


def _run_all(orch: Orchestrator) -> list[str]:
    ids = []
    for tag in TAGS:
        status, body, _ = http("POST", f"{orch.ingress}/restate/send/Slow/hold", tag)
        assert status == 202, body
        ids.append(body["invocationId"])
    deadline = time.monotonic() + 60
    for inv_id in ids:
        while True:
            status, body, _ = http("GET", f"{orch.admin}/invocations/{inv_id}")
            assert status == 200, body
            if body["status"] in ("succeeded", "failed", "killed", "paused"):
                break
            assert time.monotonic() < deadline, (body, orch.output()[-3000:])
            time.sleep(0.05)
        assert body["status"] == "succeeded", (body, orch.output()[-3000:])
        assert body["attempt"] == 1, body  # throttles are not attempts
    return ids


@pytest.mark.timeout(120)
def test_a_throttled_lambda_is_backed_off_without_counting_attempts(tmp_path: Path) -> None:
    emulator = ThrottlingEmulator(tmp_path, reserved=2).start()
    env = {**aws_env(emulator.port, tmp_path), "RITORNELLO_RETRY_MAX_ATTEMPTS": "2"}
    orch = Orchestrator(tmp_path, **env).start()
    try:
        status, body, _ = http("POST", f"{orch.admin}/deployments", {"arn": ARN})
        assert status == 201, body
        _run_all(orch)
        assert emulator.throttles() > 0, "the test must make the emulator throttle"
    finally:
        orch.terminate()
        emulator.terminate()


@pytest.mark.timeout(120)
def test_a_deployment_with_a_limit_of_its_own_is_never_throttled(tmp_path: Path) -> None:
    emulator = ThrottlingEmulator(tmp_path, reserved=2).start()
    env = {**aws_env(emulator.port, tmp_path), "RITORNELLO_RETRY_MAX_ATTEMPTS": "2"}
    orch = Orchestrator(tmp_path, **env).start()
    try:
        status, body, _ = http("PUT", f"{orch.admin}/limits/lambda-app", {"concurrency": 2})
        assert status == 201, body
        status, body, _ = http(
            "POST", f"{orch.admin}/deployments", {"arn": ARN, "limit": "lambda-app"}
        )
        assert status == 201, body
        _run_all(orch)
        assert emulator.throttles() == 0, emulator.output()[-2000:]
        status, body, _ = http("GET", f"{orch.admin}/limits/lambda-app")
        assert (body["in_flight"], body["waiting"], body["granted_last_minute"]) == (0, 0, 12)
    finally:
        orch.terminate()
        emulator.terminate()


@pytest.mark.timeout(120)
def test_a_limited_step_on_lambda_waits_suspended(tmp_path: Path) -> None:
    """A step limited to one at a time, on a function that could run four: the waiting
    invocations are suspended (no function runs for them) and each step ran once."""
    emulator = ThrottlingEmulator(tmp_path, reserved=4).start()
    orch = Orchestrator(tmp_path, **aws_env(emulator.port, tmp_path)).start()
    try:
        status, body, _ = http("PUT", f"{orch.admin}/limits/lam-step", {"concurrency": 1})
        assert status == 201, body
        status, body, _ = http("POST", f"{orch.admin}/deployments", {"arn": ARN})
        assert status == 201, body
        ids = []
        for tag in TAGS[:4]:
            status, body, _ = http("POST", f"{orch.ingress}/restate/send/Slow/hold_limited", tag)
            assert status == 202, body
            ids.append(body["invocationId"])

        def waiting() -> int:
            statuses = [http("GET", f"{orch.admin}/invocations/{i}")[1]["status"] for i in ids]
            return statuses.count("suspended")

        wait_until(lambda: waiting() >= 2, 10, "two wait suspended, not running")
        for inv_id, tag in zip(ids, TAGS, strict=False):
            url = f"{orch.ingress}/restate/attach/{inv_id}"
            assert http("GET", url, timeout=30)[:2] == (200, tag)
            kinds = [
                e["kind"] for e in http("GET", f"{orch.admin}/invocations/{inv_id}")[1]["journal"]
            ]
            assert kinds == ["input", "permit", "run", "output"], kinds
        assert emulator.throttles() == 0
    finally:
        orch.terminate()
        emulator.terminate()
