"""AWS Lambda durable functions on Ritornello (docs/aws-durable.md): AWS's own Python SDK,
unmodified, in tests/apps/durable_app.py behind ``ritornello lambda-emulator`` (a real process,
its ``AWS_ENDPOINT_URL_LAMBDA`` the orchestrator's ingress), registered by ARN; the orchestrator
(``ritornello serve``, a real process) invokes it through its Lambda invoker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.procs import (
    ROOT,
    Endpoint,
    LambdaEmulatorProcess,
    Orchestrator,
    aws_env,
    check_store,
    http,
)

ARN = "arn:aws:lambda:us-east-1:123456789012:function:orders:1"


class Pair:
    """An orchestrator and the emulated function, each pointed at the other."""

    def __init__(self, tmp: Path, app: str = "tests/apps/durable_app.py") -> None:
        self.tmp = tmp
        self.ledger = tmp / "ledger.txt"
        self.orch = Orchestrator(tmp, **aws_env(0, tmp), RITORNELLO_ATTEMPT_TIMEOUT_S="2")
        self.emulator = LambdaEmulatorProcess(
            tmp,
            app,
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
    assert detail["status"] == "failed", detail


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


def test_a_callback_times_out_and_a_late_completion_is_refused(pair: Pair) -> None:
    """The SDK sees the callback TIMED_OUT; a late success, failure or heartbeat through the
    durable API, and a late resolve or reject through Ritornello's awakeable paths, are all
    refused and change nothing; after a kill -9 and a restart the execution replays the
    callback as TIMED_OUT again (a replay that saw it completed would run another step)."""
    publish = pair.tmp / "callback-timeout.txt"
    event = {"mode": "callback", "publish_to": str(publish), "timeout_s": 1, "after_s": 3}
    inv = pair.send(event)
    callback_id = wait_for(publish)
    deadline = time.monotonic() + 10
    while pair.ran(inv)["saw-timed_out"] != 1:  # the SDK saw the timeout: its step ran
        assert time.monotonic() < deadline, pair.orch.output()
        time.sleep(0.05)
    suspended(pair, inv)  # in the wait after it
    before = journal(pair, inv)
    (awakeable,) = [e for e in before if e["kind"] == "awakeable"]
    assert awakeable["completion"]["failure"]["timed_out"] == "TIMEOUT", awakeable
    timer = [e for e in before if "callback_timeout" in e]
    assert [(e["kind"], e["duration_ms"]) for e in timer] == [("sleep", 1000)], timer
    ingress = pair.orch.ingress
    for path, body, kind in (
        (f"/restate/awakeables/{callback_id}/resolve", b'"late"', "application/json"),
        (f"/restate/a/{callback_id}/resolve", b'"late"', "application/json"),
        (f"/restate/awakeables/{callback_id}/reject", b"late", "text/plain"),
    ):
        status, answer, _ = http("POST", ingress + path, raw=body, headers={"content-type": kind})
        assert status == 409 and "timed out" in json.dumps(answer), (path, status, answer)
    client = lambda_client(pair)
    for late in (
        lambda: client.send_durable_execution_callback_success(CallbackId=callback_id, Result=b"1"),
        lambda: client.send_durable_execution_callback_failure(
            CallbackId=callback_id, Error={"ErrorMessage": "late"}
        ),
        lambda: client.send_durable_execution_callback_heartbeat(CallbackId=callback_id),
    ):
        with pytest.raises(client.exceptions.InvalidParameterValueException, match="timed out"):
            late()
    assert journal(pair, inv) == before  # nothing changed
    pair.orch.kill9()  # during the wait that follows: the function replays after it
    pair.restart_orchestrator()
    status, body = pair.attach(inv)
    assert status == 200 and "timed_out" in body, (body, pair.orch.output())
    assert pair.ran(inv) == {"publish": 1, "saw-timed_out": 1}  # no saw-approved: no divergence
    # as before, but for the wait's completion
    after = [
        {k: v for k, v in e.items() if k != "completion" or e["name"] != "WAIT START after"}
        for e in journal(pair, inv)
    ]
    assert after[: len(before)] == before, (before, after)
    arn = f"{ARN}/durable-execution/{inv}/{inv}"
    events = client.get_durable_execution_history(DurableExecutionArn=arn)["Events"]
    timed_out = [e for e in events if e["EventType"] == "CallbackTimedOut"]
    assert len(timed_out) == 1 and timed_out[0]["Name"] == "approval", events
    error = timed_out[0]["CallbackTimedOutDetails"]["Error"]["Payload"]
    assert error["ErrorType"] == "Callback.Timeout", error


def test_a_timeout_and_a_completion_racing_one_wins(pair: Pair) -> None:
    """Completions sent within milliseconds of their callbacks' timeouts, through both paths:
    each callback ends exactly one way — the completion accepted and the execution approved,
    or the completion refused and the execution timed out — and the journal says the same."""
    runs = []
    for n in range(8):
        publish = pair.tmp / f"callback-race-{n}.txt"
        runs.append(
            (pair.send({"mode": "callback", "publish_to": str(publish), "timeout_s": 1}), publish)
        )
    accepted: dict[str, bool] = {}

    def complete(at: float, inv: str, callback_id: str, durable_api: bool) -> None:
        time.sleep(max(0.0, at - time.time()))
        if durable_api:
            client = lambda_client(pair)
            try:
                client.send_durable_execution_callback_success(
                    CallbackId=callback_id, Result=b'"raced"'
                )
                accepted[inv] = True
            except client.exceptions.InvalidParameterValueException:
                accepted[inv] = False
            return
        status, _, _ = http(
            "POST", f"{pair.orch.ingress}/restate/awakeables/{callback_id}/resolve", "raced"
        )
        assert status in (202, 409), status
        accepted[inv] = status == 202

    # each run's completion is timed from its own timer and started as soon as that is known
    # (the runs may start some time apart: each concurrent one is a cold start of the function)
    targets = []
    threads = []
    for n, (inv, publish) in enumerate(runs):
        callback_id = wait_for(publish)
        (awakeable,) = [e for e in journal(pair, inv) if e["kind"] == "awakeable"]
        (timer,) = [e for e in journal(pair, inv) if "callback_timeout" in e]
        # around the timer's due time: from 100 ms before to 250 ms after it
        target = (timer["wake_at"] / 1000 - 0.1 + n * 0.05, inv, callback_id, n % 2)
        targets.append(target)
        threads.append(threading.Thread(target=complete, args=target))
        threads[-1].start()
    for t in threads:
        t.join(30)
    for _, inv, _, _ in targets:
        status, body = pair.attach(inv)
        assert status == 200, (body, pair.orch.output())
        (awakeable,) = [e for e in journal(pair, inv) if e["kind"] == "awakeable"]
        timed_out = "timed_out" in awakeable["completion"].get("failure", {})
        assert accepted[inv] is not timed_out, (accepted[inv], awakeable, body)
        assert ("timed_out" in body) is timed_out, (body, awakeable)
    # both outcomes happened (else the race was not run): the completions straddle the timer
    assert set(accepted.values()) == {True, False}, accepted


def test_heartbeats_keep_a_callback_alive(pair: Pair) -> None:
    publish = pair.tmp / "callback-heartbeat.txt"
    inv = pair.send({"mode": "callback", "publish_to": str(publish), "heartbeat_s": 1})
    callback_id = wait_for(publish)
    client = lambda_client(pair)
    until = time.monotonic() + 2.5  # over twice its heartbeat timeout
    while time.monotonic() < until:
        client.send_durable_execution_callback_heartbeat(CallbackId=callback_id)
        time.sleep(0.3)
    client.send_durable_execution_callback_success(CallbackId=callback_id, Result=b'"ok"')
    assert pair.attach(inv) == (200, {"approved": '"ok"'}), pair.orch.output()
    timers = [e for e in journal(pair, inv) if "callback_timeout" in e]
    assert len(timers) >= 2 and all(e["callback_timeout"]["heartbeat"] for e in timers), timers


def test_a_heartbeat_timeout_fires_without_heartbeats(pair: Pair) -> None:
    publish = pair.tmp / "callback-heartbeat-timeout.txt"
    inv = pair.send({"mode": "callback", "publish_to": str(publish), "heartbeat_s": 1})
    wait_for(publish)
    status, body = pair.attach(inv)
    assert status == 200 and "timed_out" in body, (body, pair.orch.output())


def test_a_heartbeat_survives_kill9_of_the_orchestrator(pair: Pair) -> None:
    """A heartbeat is in the store: after a kill -9 right after it and a restart, the
    heartbeat timeout counts from it — the callback outlives its first deadline and can still
    be completed, and one left alone times out a heartbeat timeout after the heartbeat."""
    client = lambda_client(pair)
    invs, ids = [], []
    for name in ("kept", "left"):
        publish = pair.tmp / f"callback-heartbeat-kill9-{name}.txt"
        invs.append(pair.send({"mode": "callback", "publish_to": str(publish), "heartbeat_s": 6}))
        ids.append(wait_for(publish))
    for inv in invs:
        suspended(pair, inv)
    first = max(e["wake_at"] for inv in invs for e in journal(pair, inv) if "callback_timeout" in e)
    time.sleep(max(0.0, first / 1000 - 4 - time.time()))  # 2 s into the 6
    for callback_id in ids:
        client.send_durable_execution_callback_heartbeat(CallbackId=callback_id)
    pair.orch.kill9()
    pair.restart_orchestrator()
    time.sleep(max(0.0, first / 1000 + 0.5 - time.time()))  # past the first deadline
    for inv in invs:
        (awakeable,) = [e for e in journal(pair, inv) if e["kind"] == "awakeable"]
        assert "completion" not in awakeable, (awakeable, pair.orch.output())
    client = lambda_client(pair)
    client.send_durable_execution_callback_success(CallbackId=ids[0], Result=b'"late but alive"')
    assert pair.attach(invs[0]) == (200, {"approved": '"late but alive"'}), pair.orch.output()
    status, body = pair.attach(invs[1])
    assert status == 200 and "Callback heartbeat timed out" in body["timed_out"], body
    entries = journal(pair, invs[1])
    beats = [
        e["completion"]["heartbeat"] for e in entries if "heartbeat" in e.get("completion", {})
    ]
    assert len(beats) == 1, entries
    arn = f"{ARN}/durable-execution/{invs[1]}/{invs[1]}"
    events = client.get_durable_execution_history(DurableExecutionArn=arn)["Events"]
    (timed_out,) = [e for e in events if e["EventType"] == "CallbackTimedOut"]
    at = timed_out["EventTimestamp"].timestamp()
    assert beats[0] / 1000 + 6 - 0.05 <= at < beats[0] / 1000 + 9, (beats, at)
    assert timed_out["CallbackTimedOutDetails"]["Error"]["Payload"]["ErrorType"] == (
        "Callback.Heartbeat"
    )
    check_store(pair.orch.store)  # timers, completions and statuses agree (ritornello check)


def test_a_zombie_run_cannot_checkpoint(pair: Pair) -> None:
    """The first run outlives its attempt (2 s): the attempt after it starts a new run, and
    the zombie's checkpoint token is refused when it wakes; its step's result is never
    journaled (the step re-ran in the new run: at-least-once, as AWS's steps are)."""
    marker = pair.tmp / "zombie-marker"

    def refusals() -> int:  # in the whole log: earlier tests' runs are refused too
        return pair.emulator.log.read_text(errors="replace").count("Invalid checkpoint token")

    refused = refusals()
    inv = pair.send({"mode": "zombie", "marker": str(marker), "sleep_s": 2.6})
    assert pair.attach(inv) == (200, "slow"), pair.orch.output()
    deadline = time.monotonic() + 10
    while refusals() <= refused:
        assert time.monotonic() < deadline, pair.emulator.output()
        time.sleep(0.1)
    assert pair.ran(inv) == {"first": 1, "slow": 2}
    names = [e.get("name") for e in journal(pair, inv)]
    assert names.count("STEP SUCCEED slow") == 1 and names.count("STEP SUCCEED first") == 1


def test_forged_tokens_and_malformed_checkpoints_are_refused(pair: Pair) -> None:
    client = lambda_client(pair)
    status, body, headers = pair.call({"mode": "steps", "numbers": [5]})
    assert status == 200, body
    inv = headers["x-restate-id"]
    arn = f"{ARN}/durable-execution/{inv}/{inv}"
    update = {"Id": "x", "Type": "STEP", "Action": "SUCCEED", "Payload": "1"}
    for token in ["", "nonsense", f"{inv}.1.00.00", f"{inv}.1.abcd.{'0' * 32}"]:
        with pytest.raises(client.exceptions.InvalidParameterValueException) as err:
            client.checkpoint_durable_execution(
                DurableExecutionArn=arn, CheckpointToken=token or "x", Updates=[update]
            )
        assert "Invalid checkpoint token" in str(err.value)
    with pytest.raises(client.exceptions.InvalidParameterValueException):
        client.get_durable_execution_state(DurableExecutionArn=arn, CheckpointToken="x.1.2.3")
    quoted = arn.replace("/", "%2F")
    url = f"{pair.orch.ingress}/2025-12-01/durable-executions/{quoted}/checkpoint"
    for raw, why in [
        (b"{not json", "not JSON"),
        (b"[1]", "JSON object"),
        (b'{"CheckpointToken": 7}', "CheckpointToken"),
        (b'{"CheckpointToken": "t", "Updates": {}}', "Updates must be a list"),
        (b'{"CheckpointToken": "t", "Updates": [{"Id": "a", "Type": "STEP"}]}', "Action"),
        (
            b'{"CheckpointToken": "t", "Updates": [{"Id": "", "Type": "STEP", "Action": "START"}]}',
            ".Id",
        ),
        (
            b'{"CheckpointToken": "t", "Updates": [{"Id": "a", "Type": "WAIT", '
            b'"Action": "START"}]}',
            "WaitSeconds",
        ),
        (
            b'{"CheckpointToken": "t", "Updates": [{"Id": "a", "Type": "WAIT", "Action": "START",'
            b' "WaitOptions": {"WaitSeconds": -1}}]}',
            "WaitSeconds",
        ),
        (
            b'{"CheckpointToken": "t", "Updates": [{"Id": "a", "Type": "STEP", "Action": "RETRY",'
            b' "StepOptions": {"NextAttemptDelaySeconds": "1"}}]}',
            "NextAttemptDelaySeconds",
        ),
        (
            b'{"CheckpointToken": "t", "Updates": [{"Id": "a", "Type": "WAIT", "Action": "RETRY",'
            b' "WaitOptions": {"WaitSeconds": 1}}]}',
            "only a STEP",
        ),
        (
            b'{"CheckpointToken": "t", "Updates": [{"Id": "a", "Type": "STEP", "Action": "FAIL",'
            b' "Error": "x"}]}',
            "Error must be an object",
        ),
        (
            b'{"CheckpointToken": "t", "Updates": [{"Id": "a", "Type": "CHAINED_INVOKE",'
            b' "Action": "START"}]}',
            "FunctionName must be a name",
        ),
        (
            b'{"CheckpointToken": "t", "Updates": [{"Id": "a", "Type": "EXECUTION",'
            b' "Action": "START"}]}',
            "SUCCEED or a FAIL",
        ),
    ]:
        status, answer, headers = http("POST", url, raw=raw)
        assert status == 400, (raw, status, answer)
        assert headers["x-amzn-errortype"] == "InvalidParameterValueException", headers
        assert why in answer["message"], (raw, answer)
    # a body past the ingress's limit (10 MiB by default) is refused, in Lambda's error shape
    status, answer, headers = http("POST", url, raw=b" " * (10 * 1024 * 1024 + 1))
    assert status == 413, (status, answer)
    assert headers["x-amzn-errortype"] == "RequestTooLargeException", headers
    # nothing of it reached the journal
    assert sum(1 for e in journal(pair, inv) if e.get("name") == "STEP SUCCEED x") == 0
    status, answer, headers = http("GET", f"{pair.orch.ingress}/2025-12-01/nothing-here")
    assert status == 404 and headers["x-amzn-errortype"] == "UnknownOperationException"


def test_executions_are_described_and_stopped_through_boto3(pair: Pair) -> None:
    client = lambda_client(pair)
    status, body, headers = pair.call({"mode": "steps", "numbers": [4]})
    assert status == 200, body
    inv = headers["x-restate-id"]
    arn = f"{ARN}/durable-execution/{inv}/{inv}"
    described = client.get_durable_execution(DurableExecutionArn=arn)
    assert described["Status"] == "SUCCEEDED" and json.loads(described["Result"]) == {"total": 4}
    assert json.loads(described["InputPayload"]) == {"mode": "steps", "numbers": [4]}
    assert described["FunctionArn"] == ARN and described["DurableExecutionArn"] == arn
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_durable_execution(DurableExecutionArn=arn.replace(inv, "inv_nothing"))

    publish = pair.tmp / "callback-stop.txt"
    waiting = pair.send({"mode": "callback", "publish_to": str(publish)})
    wait_for(publish)
    suspended(pair, waiting)
    arn = f"{ARN}/durable-execution/{waiting}/{waiting}"
    assert client.get_durable_execution(DurableExecutionArn=arn)["Status"] == "RUNNING"
    client.stop_durable_execution(DurableExecutionArn=arn)
    assert client.get_durable_execution(DurableExecutionArn=arn)["Status"] == "STOPPED"
    assert pair.attach(waiting)[0] == 409
    # its callback is gone with it: completing or heartbeating it is refused
    callback_id = publish.read_text()
    with pytest.raises(client.exceptions.InvalidParameterValueException, match="killed"):
        client.send_durable_execution_callback_heartbeat(CallbackId=callback_id)
    with pytest.raises(client.exceptions.InvalidParameterValueException, match="killed"):
        client.send_durable_execution_callback_success(CallbackId=callback_id, Result=b"1")


def test_a_step_retried_after_a_durable_timer(pair: Pair) -> None:
    marker = pair.tmp / "retry-marker"
    started = time.monotonic()
    status, body, headers = pair.call({"mode": "retry", "marker": str(marker)})
    assert (status, body) == (200, "recovered"), pair.orch.output()
    assert time.monotonic() - started >= 1.0  # the step's retry delay
    inv = headers["x-restate-id"]
    assert pair.ran(inv) == {"flaky": 2}
    kinds = [(e["kind"], e.get("name")) for e in journal(pair, inv)]
    assert ("sleep", "STEP RETRY flaky") in kinds and ("run", "STEP SUCCEED flaky") in kinds


def test_parallel_branches_in_child_contexts(pair: Pair) -> None:
    status, body, headers = pair.call({"mode": "parallel"})
    assert (status, body) == (200, [10, 20, 30]), pair.orch.output()
    names = [e.get("name") for e in journal(pair, headers["x-restate-id"])]
    assert "CONTEXT SUCCEED fan" in names, names


def test_map_and_wait_for_condition(pair: Pair) -> None:
    status, body, _ = pair.call({"mode": "map", "items": [1, 2, 3]})
    assert (status, body) == (200, [1, 4, 9]), pair.orch.output()
    started = time.monotonic()
    status, body, headers = pair.call({"mode": "condition"})
    assert (status, body) == (200, 2), pair.orch.output()
    assert time.monotonic() - started >= 1.0  # one poll a second, durable timers between
    assert pair.ran(headers["x-restate-id"]) == {"poll": 2}


def test_cancel_ends_a_waiting_execution(pair: Pair) -> None:
    publish = pair.tmp / "callback-cancel.txt"
    inv = pair.send({"mode": "callback", "publish_to": str(publish)})
    wait_for(publish)
    suspended(pair, inv)
    status, body, _ = http("PATCH", f"{pair.orch.admin}/invocations/{inv}/cancel")
    assert status in (200, 202), body
    status, body = pair.attach(inv)
    assert status == 409 and "cancelled" in body["message"], body


def test_history_and_listing_through_boto3(pair: Pair) -> None:
    client = lambda_client(pair)
    status, body, headers = pair.call({"mode": "wait", "seconds": 1})
    assert status == 200, body
    inv = headers["x-restate-id"]
    arn = f"{ARN}/durable-execution/{inv}/{inv}"
    events = client.get_durable_execution_history(DurableExecutionArn=arn)["Events"]
    kinds = [e["EventType"] for e in events]
    assert kinds[0] == "ExecutionStarted" and kinds[-1] == "ExecutionSucceeded", kinds
    assert kinds.index("WaitStarted") < kinds.index("WaitSucceeded"), kinds
    assert [e["EventId"] for e in events] == list(range(1, len(events) + 1))
    first = client.get_durable_execution_history(DurableExecutionArn=arn, MaxItems=2)
    assert len(first["Events"]) == 2 and first["NextMarker"] == "2"

    listed = client.list_durable_executions_by_function(FunctionName="orders")
    arns = [e["DurableExecutionArn"] for e in listed["DurableExecutions"]]
    assert arn in arns
    assert {e["Status"] for e in listed["DurableExecutions"]} >= {"SUCCEEDED", "FAILED"}
    failed = client.list_durable_executions_by_function(FunctionName=ARN, Statuses=["FAILED"])
    assert {e["Status"] for e in failed["DurableExecutions"]} == {"FAILED"}
    other = ARN.rsplit(":", 1)[0]
    assert client.list_durable_executions_by_function(FunctionName=other, Qualifier="1")[
        "DurableExecutions"
    ]
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.list_durable_executions_by_function(FunctionName="orders", Qualifier="2")
    with pytest.raises(client.exceptions.InvalidParameterValueException):
        client.get_durable_execution_history(DurableExecutionArn=arn, Marker="x")


def test_history_events_of_failed_steps_waits_and_stopped_executions(pair: Pair) -> None:
    """GetDurableExecutionHistory through boto3 (which parses each event by Lambda's model):
    a step that failed for good, a retried one, a wait's schedule and a stopped execution."""
    client = lambda_client(pair)

    def events(inv: str) -> list[dict[str, Any]]:
        arn = f"{ARN}/durable-execution/{inv}/{inv}"
        return list(client.get_durable_execution_history(DurableExecutionArn=arn)["Events"])

    status, body, headers = pair.call({"mode": "failing-step"})
    assert status == 500 and "no stock left" in body["message"], body
    failed = events(headers["x-restate-id"])
    kinds = [e["EventType"] for e in failed]
    assert kinds[1:3] == ["StepStarted", "StepFailed"] and kinds[-1] == "ExecutionFailed", kinds
    step = failed[2]
    assert step["Name"] == "reserve" and step["StepFailedDetails"]["RetryDetails"] == {
        "CurrentAttempt": 1
    }, step
    error = step["StepFailedDetails"]["Error"]["Payload"]
    assert error["ErrorType"] == "RuntimeError" and error["ErrorMessage"] == "no stock left"
    assert failed[-1]["ExecutionFailedDetails"]["Error"]["Payload"]["ErrorType"], failed[-1]

    status, body, headers = pair.call({"mode": "retry", "marker": str(pair.tmp / "h-retry")})
    assert status == 200, body
    retried = [e for e in events(headers["x-restate-id"]) if e["EventType"] == "StepFailed"]
    (attempt,) = retried
    assert attempt["StepFailedDetails"]["RetryDetails"] == {
        "CurrentAttempt": 1,
        "NextAttemptDelaySeconds": 1,
    }, attempt
    assert attempt["StepFailedDetails"]["Error"]["Payload"]["ErrorMessage"] == (
        "first attempt fails"
    )

    status, body, headers = pair.call({"mode": "wait", "seconds": 1})
    assert status == 200, body
    waited = events(headers["x-restate-id"])
    (started,) = [e for e in waited if e["EventType"] == "WaitStarted"]
    details = started["WaitStartedDetails"]
    assert details["Duration"] == 1, details
    late = details["ScheduledEndTimestamp"] - started["EventTimestamp"]
    assert 0.9 < late.total_seconds() < 1.5, details

    publish = pair.tmp / "callback-history-stop.txt"
    inv = pair.send({"mode": "callback", "publish_to": str(publish)})
    wait_for(publish)
    suspended(pair, inv)
    client.stop_durable_execution(DurableExecutionArn=f"{ARN}/durable-execution/{inv}/{inv}")
    stopped = events(inv)
    assert stopped[-1]["EventType"] == "ExecutionStopped", stopped
    assert stopped[-1]["ExecutionStoppedDetails"]["Error"]["Payload"]["ErrorMessage"], stopped


def test_a_result_over_the_answer_limit_is_checkpointed(pair: Pair) -> None:
    size = 6 * 1024 * 1024
    inv = pair.send({"mode": "big", "size": size})
    status, body = pair.attach(inv)
    assert status == 200 and body == "x" * size, (status, str(body)[:200], pair.orch.output())
    assert pair.ran(inv) == {"big": 1}


def test_a_chained_invoke_calls_another_durable_function(pair: Pair) -> None:
    child = {"mode": "steps", "numbers": [7, 8]}
    for function in ("orders", ARN, "Orders/run"):  # its name, its ARN, the handler
        status, body, headers = pair.call(
            {"mode": "invoke", "function": function, "payload": child}
        )
        assert (status, body) == (200, {"child": {"total": 15}}), (function, pair.orch.output())
    calls = [e for e in journal(pair, headers["x-restate-id"]) if e["kind"] == "call"]
    assert [c["name"] for c in calls] == ["Orders/run"] and calls[0]["input"] == child
    # a Ritornello handler (the examples' endpoint, over HTTP)
    endpoint = Endpoint(pair.tmp, ROOT / "examples", "app").start()
    try:
        status, body, _ = http("POST", f"{pair.orch.admin}/deployments", {"uri": endpoint.uri})
        assert status == 201, body
        event = {"mode": "invoke", "function": "Greeter/greet", "payload": "durable"}
        status, body, _ = pair.call(event)
        assert (status, body) == (200, {"child": "Hello, durable!"}), pair.orch.output()
    finally:
        endpoint.terminate()
    # a child that fails fails its caller's invoke; an unknown function fails the execution
    status, body, _ = pair.call(
        {"mode": "invoke", "function": "orders", "payload": {"mode": "fail"}}
    )
    assert status == 500 and "the order is invalid" in body["message"], body
    status, body, _ = pair.call({"mode": "invoke", "function": "nothing", "payload": {}})
    assert status == 500 and "no durable function nor handler 'nothing'" in body["message"], body


def test_kill9_of_the_orchestrator_during_a_wait_and_a_pending_callback(pair: Pair) -> None:
    kill9_during_a_wait_and_a_pending_callback(pair)


def kill9_during_a_wait_and_a_pending_callback(pair: Pair) -> None:
    """kill -9 of the orchestrator while one execution waits and another's callback is pending
    (the function's app: Python's here, Node's in test_aws_durable_node.py): after a restart
    the wait ends, the callback completes, and no step ran twice."""
    publish = pair.tmp / "callback-kill9.txt"
    pending = pair.send({"mode": "callback", "publish_to": str(publish)})
    inv = pair.send({"mode": "wait", "seconds": 2})
    # a callback timeout is a durable timer too: it fires after the restart
    timing_out = pair.tmp / "callback-kill9-timeout.txt"
    timed = pair.send({"mode": "callback", "publish_to": str(timing_out), "timeout_s": 3})
    callback_id = wait_for(publish)
    wait_for(timing_out)
    suspended(pair, timed)
    deadline = time.monotonic() + 10
    while pair.ran(inv) != {"before": 1}:
        assert time.monotonic() < deadline, pair.orch.output()
        time.sleep(0.05)
    suspended(pair, inv)
    suspended(pair, pending)
    pair.orch.kill9()
    pair.restart_orchestrator()
    assert pair.attach(inv) == (200, ["before", "after"]), pair.orch.output()
    assert pair.ran(inv) == {"before": 1, "after": 1}
    lambda_client(pair).send_durable_execution_callback_success(
        CallbackId=callback_id, Result=b'"after the crash"'
    )
    assert pair.attach(pending) == (200, {"approved": '"after the crash"'}), pair.orch.output()
    assert pair.ran(pending) == {"publish": 1}
    status, body = pair.attach(timed)
    assert status == 200 and "timed_out" in body, (body, pair.orch.output())


def test_kill9_of_the_orchestrator_during_a_step(pair: Pair) -> None:
    """The function is inside a step when the orchestrator dies: its checkpoint cannot land
    (nor, once it is back, with that run's token); the re-driven attempt replays the journaled
    step and runs the interrupted one again (at-least-once), and the execution finishes."""
    kill9_during_a_step(pair, {"mode": "zombie", "sleep_s": 1.0})


def kill9_during_a_step(pair: Pair, request: dict[str, Any]) -> None:
    """kill -9 of the orchestrator while ``request`` (a mode of the function's app that runs
    step ``first``, then writes the ``marker`` it is given and runs the slow step ``slow``) is
    inside ``slow``: the execution finishes, ``first`` ran once, ``slow`` at most twice, and
    each is journaled once."""
    marker = pair.tmp / "kill9-step-marker"
    inv = pair.send({**request, "marker": str(marker)})
    wait_for(marker)
    pair.orch.kill9()
    pair.restart_orchestrator()
    assert pair.attach(inv) == (200, "slow"), pair.orch.output()
    ran = pair.ran(inv)
    assert ran["first"] == 1 and ran["slow"] in (1, 2), ran
    names = [e.get("name") for e in journal(pair, inv)]
    assert names.count("STEP SUCCEED first") == 1 and names.count("STEP SUCCEED slow") == 1


def test_kill9_during_an_at_most_once_step_does_not_run_it_again(pair: Pair) -> None:
    """At-most-once per retry (START journaled before the step runs): after the crash the
    replay finds it started, never finished, and the SDK raises instead of running it again."""
    kill9_during_an_at_most_once_step(pair, {"mode": "at-most-once", "sleep_s": 1.0})


def kill9_during_an_at_most_once_step(pair: Pair, request: dict[str, Any]) -> None:
    """kill -9 of the orchestrator while ``request`` (a mode of the function's app whose
    at-most-once step ``once`` writes the ``marker`` it is given, then sleeps) is inside the
    step: the replay finds it started, never finished, and the function reports it
    interrupted instead of running it again."""
    marker = pair.tmp / "at-most-once-marker"
    inv = pair.send({**request, "marker": str(marker)})
    wait_for(marker)
    pair.orch.kill9()
    pair.restart_orchestrator()
    status, body = pair.attach(inv)
    assert status == 200 and body.startswith("interrupted: "), (body, pair.orch.output())
    assert pair.ran(inv) == {"once": 1}


def aws_cli(pair: Pair, *args: str) -> Any:
    """The AWS CLI (``aws lambda ...``, the awscli package: its own botocore) pointed at the
    orchestrator's ingress; its JSON answer, or AssertionError with its stderr."""
    aws = Path(sys.executable).with_name("aws")
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }
    command = [str(aws), "lambda", *args, "--endpoint-url", pair.orch.ingress, "--output", "json"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, (args, done.stderr)
    return json.loads(done.stdout) if done.stdout.strip() else None


def test_the_aws_cli_describes_lists_completes_and_stops_executions(pair: Pair) -> None:
    status, body, headers = pair.call({"mode": "steps", "numbers": [6]})
    assert status == 200, body
    inv = headers["x-restate-id"]
    arn = f"{ARN}/durable-execution/{inv}/{inv}"
    described = aws_cli(pair, "get-durable-execution", "--durable-execution-arn", arn)
    assert described["Status"] == "SUCCEEDED" and json.loads(described["Result"]) == {"total": 6}
    listed = aws_cli(
        pair,
        "list-durable-executions-by-function",
        "--function-name",
        ARN.rsplit(":", 1)[0],
        "--qualifier",
        "1",
    )
    assert arn in [e["DurableExecutionArn"] for e in listed["DurableExecutions"]]
    history = aws_cli(pair, "get-durable-execution-history", "--durable-execution-arn", arn)
    kinds = [e["EventType"] for e in history["Events"]]
    assert kinds[0] == "ExecutionStarted" and "StepSucceeded" in kinds, kinds
    assert kinds[-1] == "ExecutionSucceeded", kinds

    # a callback completed through the CLI, then another execution stopped through it
    publish = pair.tmp / "callback-cli.txt"
    waiting = pair.send({"mode": "callback", "publish_to": str(publish)})
    callback_id = wait_for(publish)
    suspended(pair, waiting)
    aws_cli(pair, "send-durable-execution-callback-heartbeat", "--callback-id", callback_id)
    aws_cli(
        pair,
        "send-durable-execution-callback-success",
        "--callback-id",
        callback_id,
        "--result",
        '{"by": "cli"}',
    )
    assert pair.attach(waiting) == (200, {"approved": '{"by": "cli"}'}), pair.orch.output()

    publish = pair.tmp / "callback-cli-stop.txt"
    stopping = pair.send({"mode": "callback", "publish_to": str(publish)})
    wait_for(publish)
    suspended(pair, stopping)
    arn = f"{ARN}/durable-execution/{stopping}/{stopping}"
    aws_cli(pair, "stop-durable-execution", "--durable-execution-arn", arn)
    described = aws_cli(pair, "get-durable-execution", "--durable-execution-arn", arn)
    assert described["Status"] == "STOPPED", described


def test_a_durable_function_is_operated_as_any_service(pair: Pair) -> None:
    """Item 2 of the issue: sent with a delay and an idempotency key, attached, killed,
    inspected through the CLI, and called by a Ritornello handler's ``ctx.call``."""
    headers = {"idempotency-key": "order-17"}
    body = {"mode": "steps", "numbers": [1, 2]}
    url = f"{pair.orch.ingress}/restate/send/Orders/run?delay=1s"
    sent = [http("POST", url, body, headers=headers) for _ in range(2)]
    assert [s[0] for s in sent] == [202, 202], sent
    inv = sent[0][1]["invocationId"]
    assert sent[1][1]["invocationId"] == inv  # the same key: the same execution
    status, detail, _ = http("GET", f"{pair.orch.admin}/invocations/{inv}")
    assert status == 200 and detail["status"] == "scheduled", detail
    assert pair.ran(inv) == {}  # nothing runs before its delay
    assert pair.attach(inv) == (200, {"total": 3}), pair.orch.output()
    assert pair.ran(inv) == {"add-1": 1, "add-2": 1}

    # the CLI shows its operations by name and kind, as the journal view does
    shown = subprocess.run(
        [
            sys.executable,
            "-m",
            "ritornello",
            "invocations",
            "show",
            inv,
            "--admin-url",
            pair.orch.admin,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "160"},
    )
    assert shown.returncode == 0, shown.stderr
    for name in ("STEP START add-1", "STEP SUCCEED add-1", "STEP SUCCEED add-2"):
        assert name in shown.stdout, shown.stdout

    # killed by an operator while it waits for a callback
    publish = pair.tmp / "callback-kill.txt"
    waiting = pair.send({"mode": "callback", "publish_to": str(publish)})
    wait_for(publish)
    suspended(pair, waiting)
    status, answer, _ = http("PATCH", f"{pair.orch.admin}/invocations/{waiting}/kill")
    assert status in (200, 202), answer
    assert pair.attach(waiting)[0] == 409
    described = lambda_client(pair).get_durable_execution(
        DurableExecutionArn=f"{ARN}/durable-execution/{waiting}/{waiting}"
    )
    assert described["Status"] == "STOPPED", described

    # called by a Ritornello handler (ctx.call "Orders/run")
    endpoint = Endpoint(pair.tmp, ROOT / "tests" / "apps", "durable_caller").start()
    try:
        status, answer, _ = http("POST", f"{pair.orch.admin}/deployments", {"uri": endpoint.uri})
        assert status == 201, answer
        status, answer, _ = http(
            "POST",
            f"{pair.orch.ingress}/restate/call/Caller/order",
            {"mode": "steps", "numbers": [5]},
        )
        assert (status, answer) == (200, {"via": "ctx.call", "result": {"total": 5}}), answer
    finally:
        endpoint.terminate()
