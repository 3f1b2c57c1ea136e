"""Handlers on "Lambda": ``ritornello lambda-emulator tests/apps/crashapp.py`` (the real
``Endpoint.lambda_handler()`` behind Lambda's Invoke API) and ``ritornello serve`` pointed at it
with the standard AWS settings, both as processes on loopback. The orchestrator registers the
function by its qualified ARN and drives steps, calls, sleeps and state through boto3 invokes."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.procs import LambdaEmulatorProcess, Orchestrator, aws_env, http

ARN = "arn:aws:lambda:us-east-1:123456789012:function:app:1"


@pytest.fixture(scope="module")
def lam(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, LambdaEmulatorProcess]]:
    tmp = tmp_path_factory.mktemp("lambda")
    ledger = tmp / "ledger.txt"
    emulator = LambdaEmulatorProcess(
        tmp, "tests/apps/crashapp.py", RITORNELLO_TEST_LEDGER=str(ledger)
    )
    emulator.start()
    try:
        yield tmp, emulator
    finally:
        emulator.terminate()


def test_handlers_run_on_lambda_through_the_invoke_api(
    lam: tuple[Path, LambdaEmulatorProcess],
) -> None:
    tmp, emulator = lam
    orch = Orchestrator(tmp, **aws_env(emulator.port, tmp)).start()
    try:
        admin = orch.admin
        status, body, _ = http("POST", f"{admin}/deployments", {"arn": ARN})
        assert status == 201, (body, orch.output())
        assert body["uri"] == ARN
        assert {s["name"] for s in body["services"]} == {"Worker", "Adder"}

        status, body, _ = http("POST", f"{orch.ingress}/restate/call/Adder/add", [2, 3])
        assert (status, body) == (200, 5), orch.output()
        # ~6 MB of input: the InvokeRequest goes gzip-enveloped, the SDK unwraps it
        big = [2, 3] + [0] * 2_000_000
        status, body, _ = http("POST", f"{orch.ingress}/restate/call/Adder/add", big)
        assert (status, body) == (200, 5), orch.output()

        started = time.monotonic()
        status, body, headers = http("POST", f"{orch.ingress}/restate/call/Worker/w1/work", 5)
        assert status == 200, (body, orch.output())
        assert body == {"total": 10, "progress": 5}
        assert time.monotonic() - started >= 0.3  # two 150 ms sleeps (steps 0 and 3)
        status, body, _ = http("POST", f"{orch.ingress}/restate/call/Worker/w1/status")
        assert (status, body) == (200, {"progress": 5, "total": 10})

        inv = headers["x-restate-id"]
        status, detail, _ = http("GET", f"{admin}/invocations/{inv}")
        assert status == 200 and detail["status"] == "succeeded", detail
        # no crash: every step's side effect ran exactly once, across many Lambda invokes
        ran = Counter(
            line.split()[1]
            for line in (tmp / "ledger.txt").read_text().splitlines()
            if line.startswith(inv)
        )
        assert ran == {f"step-{i}": 1 for i in range(5)}
    finally:
        orch.terminate()

    # A restart rebuilds the Lambda invoker from the stored ARN.
    orch = Orchestrator(tmp, **aws_env(emulator.port, tmp)).start()
    try:
        status, body, _ = http("POST", f"{orch.ingress}/restate/call/Worker/w1/work", 2)
        assert (status, body) == (200, {"total": 1, "progress": 2}), orch.output()
        status, body, _ = http("GET", f"{orch.admin}/deployments")
        assert [d["uri"] for d in body["deployments"]] == [ARN]
    finally:
        orch.terminate()


def test_registration_refuses_what_is_not_a_pinned_function(
    lam: tuple[Path, LambdaEmulatorProcess],
) -> None:
    tmp, emulator = lam
    sub = tmp / "refusals"
    sub.mkdir()
    orch = Orchestrator(sub, **aws_env(emulator.port, tmp)).start()
    role = "arn:aws:iam::123456789012:role/invoker"
    unqualified = ARN.rsplit(":", 1)[0]
    try:
        for body, code, why in [
            ({}, 422, "exactly one of uri or arn"),
            ({"uri": "http://127.0.0.1:1", "arn": ARN}, 422, "exactly one of uri or arn"),
            ({"uri": "http://127.0.0.1:1", "assume_role_arn": role}, 422, "goes with arn"),
            ({"arn": "http://127.0.0.1:1"}, 422, "Lambda function ARN"),
            ({"arn": unqualified}, 400, "unqualified"),
            ({"arn": f"{unqualified}:$LATEST"}, 400, "$LATEST"),
            ({"arn": ARN, "assume_role_arn": "nope"}, 400, "not an IAM role ARN"),
        ]:
            status, answer, _ = http("POST", f"{orch.admin}/deployments", body)
            assert status == code and why in str(answer), (body, status, answer)
        status, answer, _ = http("GET", f"{orch.admin}/deployments")
        assert answer == {"deployments": []}
    finally:
        orch.terminate()


def test_kill9_of_the_orchestrator_mid_invocation_on_lambda(
    lam: tuple[Path, LambdaEmulatorProcess],
) -> None:
    tmp, emulator = lam
    orch = Orchestrator(tmp, **aws_env(emulator.port, tmp)).start()
    try:
        assert http("POST", f"{orch.admin}/deployments", {"arn": ARN})[0] == 201
        ids = [
            http("POST", f"{orch.ingress}/restate/send/Worker/k{i}/work", 7)[1]["invocationId"]
            for i in range(6)
        ]
        time.sleep(0.3)
        orch.kill9()
        orch.start()
        for inv in ids:
            status, body, _ = http("GET", f"{orch.ingress}/restate/attach/{inv}", timeout=60)
            assert (status, body) == (200, {"total": 21, "progress": 7}), orch.output()
        executions: dict[tuple[str, str], list[str]] = {}
        for line in (tmp / "ledger.txt").read_text().splitlines():
            inv, step, token = line.split()
            executions.setdefault((inv, step), []).append(token)
        for inv in ids:
            journal = http("GET", f"{orch.admin}/invocations/{inv}")[1]["journal"]
            runs = [e for e in journal if e["kind"] == "run"]
            assert len(runs) == 7
            for entry in runs:
                # The committed execution is the last one: no journaled step ran again.
                assert executions[(inv, entry["name"])][-1] == entry["value"]
    finally:
        orch.kill9()
