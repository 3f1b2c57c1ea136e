"""AWS Lambda durable functions on Ritornello (docs/aws-durable.md): AWS's own Python SDK,
unmodified, in tests/apps/durable_app.py behind ``ritornello lambda-emulator`` (a real process,
its ``AWS_ENDPOINT_URL_LAMBDA`` the orchestrator's ingress), registered by ARN; the orchestrator
(``ritornello serve``, a real process) invokes it through its Lambda invoker."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.procs import LambdaEmulatorProcess, Orchestrator, aws_env, http

ARN = "arn:aws:lambda:us-east-1:123456789012:function:orders:1"


class Pair:
    """An orchestrator and the emulated function, each pointed at the other."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.ledger = tmp / "ledger.txt"
        self.orch = Orchestrator(tmp, **aws_env(0, tmp))
        self.emulator = LambdaEmulatorProcess(
            tmp,
            "tests/apps/durable_app.py",
            **aws_env(self.orch.ingress_port, tmp),
            DURABLE_LEDGER=str(self.ledger),
        )
        self.orch.env.update(aws_env(self.emulator.port, tmp))

    def start(self) -> Pair:
        self.emulator.start()
        self.orch.start()
        return self

    def restart_orchestrator(self) -> None:
        """A new orchestrator process on the same ports and store (the function still points
        at its ingress)."""
        old = self.orch
        new = Orchestrator(self.tmp, **old.env)
        for flag, port in (("--ingress-port", old.ingress_port), ("--admin-port", old.admin_port)):
            new.args[new.args.index(flag) + 1] = str(port)
        new.ingress_port, new.admin_port = old.ingress_port, old.admin_port
        self.orch = new.start()

    def call(self, event: Any) -> tuple[int, Any, dict[str, str]]:
        return http("POST", f"{self.orch.ingress}/restate/call/Orders/run", event)

    def send(self, event: Any) -> str:
        status, body, _ = http("POST", f"{self.orch.ingress}/restate/send/Orders/run", event)
        assert status == 202, (body, self.orch.output())
        return str(body["invocationId"])

    def attach(self, inv_id: str) -> tuple[int, Any]:
        status, body, _ = http("GET", f"{self.orch.ingress}/restate/attach/{inv_id}")
        return status, body

    def ran(self, inv_id: str) -> Counter[str]:
        lines = self.ledger.read_text().splitlines() if self.ledger.exists() else []
        return Counter(line.split()[1] for line in lines if line.startswith(inv_id))

    def stop(self) -> None:
        self.orch.terminate()
        self.emulator.terminate()


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    p = Pair(tmp_path_factory.mktemp("durable")).start()
    try:
        body = {"arn": ARN, "protocol": "aws-durable", "service": "Orders"}
        status, answer, _ = http("POST", f"{p.orch.admin}/deployments", body)
        assert status == 201, (answer, p.orch.output())
        assert answer["services"] == [
            {
                "name": "Orders",
                "kind": "service",
                "handlers": [{"name": "run", "kind": "exclusive"}],
            }
        ]
        yield p
    finally:
        p.stop()


def journal(pair: Pair, inv_id: str) -> list[dict[str, Any]]:
    status, detail, _ = http("GET", f"{pair.orch.admin}/invocations/{inv_id}")
    assert status == 200, detail
    return list(detail["journal"])


def test_steps_and_the_result_through_the_ingress(pair: Pair) -> None:
    status, body, headers = pair.call({"mode": "steps", "numbers": [1, 2, 3]})
    assert (status, body) == (200, {"total": 6}), pair.orch.output()
    inv = headers["x-restate-id"]
    assert pair.ran(inv) == {"add-1": 1, "add-2": 1, "add-3": 1}
    entries = journal(pair, inv)
    names = [e.get("name") for e in entries if e.get("kind") == "run"]
    assert "STEP SUCCEED add-1" in names and "STEP SUCCEED add-3" in names, entries
    succeeded = next(e for e in entries if e.get("name") == "STEP SUCCEED add-2")
    assert succeeded["value"] == 2 and isinstance(succeeded["at"], int)
    # attach and output answer the finished execution too
    assert pair.attach(inv) == (200, {"total": 6})


def test_a_failed_execution_is_a_failed_invocation(pair: Pair) -> None:
    status, body, headers = pair.call({"mode": "fail"})
    assert status == 500 and "ValueError: the order is invalid" in body["message"], body
    status, detail, _ = http("GET", f"{pair.orch.admin}/invocations/{headers['x-restate-id']}")
    assert detail["status"] == "completed", detail


def test_registration_refuses_what_is_not_a_durable_function(pair: Pair) -> None:
    admin = pair.orch.admin
    unqualified = ARN.rsplit(":", 1)[0]
    for body, code, why in [
        ({"arn": ARN, "protocol": "aws-durable"}, 422, "takes arn and service"),
        ({"uri": "http://127.0.0.1:1", "protocol": "aws-durable", "service": "X"}, 422, "arn"),
        ({"arn": ARN, "protocol": "grpc", "service": "X"}, 422, "aws-durable"),
        ({"arn": unqualified, "protocol": "aws-durable", "service": "X"}, 400, "unqualified"),
        (
            {"arn": ARN.replace("orders", "other"), "protocol": "aws-durable", "service": "a/b"},
            400,
            "service 'a/b'",
        ),
        (
            {"arn": ARN.replace("orders", "other"), "protocol": "aws-durable", "service": "Orders"},
            409,
            "already served",
        ),
    ]:
        status, answer, _ = http("POST", f"{admin}/deployments", body)
        assert status == code and why in json.dumps(answer), (body, status, answer)


def test_a_wait_is_a_durable_timer_that_invokes_the_function_again(pair: Pair) -> None:
    started = time.monotonic()
    status, body, headers = pair.call({"mode": "wait", "seconds": 1})
    assert (status, body) == (200, ["before", "after"]), pair.orch.output()
    assert time.monotonic() - started >= 1.0
    inv = headers["x-restate-id"]
    assert pair.ran(inv) == {"before": 1, "after": 1}
    entries = journal(pair, inv)
    pause = next(e for e in entries if e.get("kind") == "sleep")
    assert pause["name"] == "WAIT START pause" and pause["duration_ms"] == 1000, pause


def lambda_client(pair: Pair) -> Any:
    """boto3's Lambda client pointed at the orchestrator's ingress (the durable API)."""
    import boto3

    return boto3.client(
        "lambda",
        endpoint_url=pair.orch.ingress,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def wait_for(path: Path, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text():
            return path.read_text()
        time.sleep(0.05)
    raise TimeoutError(f"nothing in {path}")


def suspended(pair: Pair, inv_id: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        detail = http("GET", f"{pair.orch.admin}/invocations/{inv_id}")[1]
        if detail["status"] == "suspended":
            return
        time.sleep(0.05)
    raise TimeoutError(f"{inv_id} did not suspend: {detail}")


def test_a_callback_resolved_through_the_durable_api(pair: Pair) -> None:
    publish = pair.tmp / "callback-api.txt"
    inv = pair.send({"mode": "callback", "publish_to": str(publish)})
    callback_id = wait_for(publish)
    suspended(pair, inv)
    client = lambda_client(pair)
    client.send_durable_execution_callback_heartbeat(CallbackId=callback_id)
    client.send_durable_execution_callback_success(
        CallbackId=callback_id, Result=json.dumps({"by": "alice"}).encode()
    )
    # the SDK hands a callback's result over as the text sent (its pass-through serdes)
    assert pair.attach(inv) == (200, {"approved": '{"by": "alice"}'}), pair.orch.output()
    assert pair.ran(inv) == {"publish": 1}
    # completed twice: refused, in Lambda's error shape (boto3 raises the modelled class)
    with pytest.raises(client.exceptions.InvalidParameterValueException):
        client.send_durable_execution_callback_success(CallbackId=callback_id, Result=b"2")
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.send_durable_execution_callback_failure(
            CallbackId=callback_id[:-3] + "AAA", Error={"ErrorMessage": "no"}
        )
    entries = journal(pair, inv)
    assert [e["kind"] for e in entries if e.get("name") == "CALLBACK START approval"] == [
        "awakeable"
    ]


def test_a_callback_rejected_through_the_awakeable_path(pair: Pair) -> None:
    publish = pair.tmp / "callback-awakeable.txt"
    inv = pair.send({"mode": "callback", "publish_to": str(publish)})
    callback_id = wait_for(publish)
    status, body, _ = http(
        "POST",
        f"{pair.orch.ingress}/restate/awakeables/{callback_id}/reject",
        raw=b"not approved",
        headers={"content-type": "text/plain"},
    )
    assert status == 202, body
    status, body = pair.attach(inv)
    assert status == 500 and "not approved" in body["message"], body


def test_a_callback_resolved_through_the_awakeable_path(pair: Pair) -> None:
    publish = pair.tmp / "callback-resolve.txt"
    inv = pair.send({"mode": "callback", "publish_to": str(publish)})
    callback_id = wait_for(publish)
    status, body, _ = http(
        "POST", f"{pair.orch.ingress}/restate/a/{callback_id}/resolve", {"by": "bob"}
    )
    assert status == 202, body
    assert pair.attach(inv) == (200, {"approved": '{"by":"bob"}'}), pair.orch.output()
    client = lambda_client(pair)
    with pytest.raises(client.exceptions.InvalidParameterValueException):
        client.send_durable_execution_callback_failure(
            CallbackId=callback_id, Error={"ErrorMessage": "too late"}
        )
