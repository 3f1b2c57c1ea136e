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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration import _durable_scenarios as scenario
from tests.integration._durable import (
    ARN,
    Pair,
    callback_sent,
    execution_arn,
    journal,
    register,
    succeeded,
    suspended,
)
from tests.integration._lambda_pair import lambda_client, wait_for
from tests.procs import ROOT, Endpoint, check_store, http


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    p = Pair(tmp_path_factory.mktemp("durable")).start()
    try:
        assert register(p.orch)["services"] == [
            {
                "name": "Orders",
                "kind": "service",
                "handlers": [{"name": "run", "kind": "exclusive"}],
            }
        ]
        yield p
    finally:
        p.stop()


def test_steps_and_the_result_through_the_ingress(pair: Pair) -> None:
    scenario.steps_and_the_result(pair)


def test_a_failed_execution_is_a_failed_invocation(pair: Pair) -> None:
    assert "ValueError: the order is invalid" in scenario.a_failed_execution(pair)


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
    scenario.a_wait_is_a_durable_timer(pair)


def test_a_callback_resolved_through_the_durable_api(pair: Pair) -> None:
    scenario.a_callback_resolved_through_the_durable_api(pair)


def test_a_callback_rejected_through_the_awakeable_path(pair: Pair) -> None:
    scenario.callback_rejected_as_an_awakeable(pair, {"mode": "callback"}, "awakeables")


def test_a_callback_resolved_through_the_awakeable_path(pair: Pair) -> None:
    scenario.callback_resolved_as_an_awakeable(pair, {"mode": "callback"}, "a", {"publish": 1})


def test_a_callback_times_out_and_a_late_completion_is_refused(pair: Pair) -> None:
    """The SDK sees the callback TIMED_OUT; a late success, failure or heartbeat through the
    durable API, and a late resolve or reject through Ritornello's awakeable paths, are all
    refused and change nothing; after a kill -9 and a restart the execution replays the
    callback as TIMED_OUT again (a replay that saw it completed would run another step)."""
    inv, callback_id = callback_sent(pair, "timeout", timeout_s=1, after_s=3)
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
    client = lambda_client(pair.orch.ingress)
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
    arn = execution_arn(inv)
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
            client = lambda_client(pair.orch.ingress)
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
    inv, callback_id = callback_sent(pair, "heartbeat", heartbeat_s=1)
    client = lambda_client(pair.orch.ingress)
    until = time.monotonic() + 2.5  # over twice its heartbeat timeout
    while time.monotonic() < until:
        client.send_durable_execution_callback_heartbeat(CallbackId=callback_id)
        time.sleep(0.3)
    client.send_durable_execution_callback_success(CallbackId=callback_id, Result=b'"ok"')
    assert pair.attach(inv) == (200, {"approved": '"ok"'}), pair.orch.output()
    timers = [e for e in journal(pair, inv) if "callback_timeout" in e]
    assert len(timers) >= 2 and all(e["callback_timeout"]["heartbeat"] for e in timers), timers


def test_a_heartbeat_timeout_fires_without_heartbeats(pair: Pair) -> None:
    inv, _ = callback_sent(pair, "heartbeat-timeout", heartbeat_s=1)
    status, body = pair.attach(inv)
    assert status == 200 and "timed_out" in body, (body, pair.orch.output())


def test_a_heartbeat_survives_kill9_of_the_orchestrator(pair: Pair) -> None:
    """A heartbeat is in the store: after a kill -9 right after it and a restart, the
    heartbeat timeout counts from it — the callback outlives its first deadline and can still
    be completed, and one left alone times out a heartbeat timeout after the heartbeat."""
    client = lambda_client(pair.orch.ingress)
    invs, ids = [], []
    for name in ("kept", "left"):
        inv, callback_id = callback_sent(pair, f"heartbeat-kill9-{name}", heartbeat_s=6)
        invs.append(inv)
        ids.append(callback_id)
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
    client = lambda_client(pair.orch.ingress)
    client.send_durable_execution_callback_success(CallbackId=ids[0], Result=b'"late but alive"')
    assert pair.attach(invs[0]) == (200, {"approved": '"late but alive"'}), pair.orch.output()
    status, body = pair.attach(invs[1])
    assert status == 200 and "Callback heartbeat timed out" in body["timed_out"], body
    entries = journal(pair, invs[1])
    beats = [
        e["completion"]["heartbeat"] for e in entries if "heartbeat" in e.get("completion", {})
    ]
    assert len(beats) == 1, entries
    arn = execution_arn(invs[1])
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
    client = lambda_client(pair.orch.ingress)
    inv = succeeded(pair, {"mode": "steps", "numbers": [5]})
    arn = execution_arn(inv)
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
    scenario.executions_described_and_stopped(pair)


def test_a_step_retried_after_a_durable_timer(pair: Pair) -> None:
    scenario.a_step_retried_after_a_durable_timer(pair)


def test_parallel_branches_in_child_contexts(pair: Pair) -> None:
    scenario.parallel_branches(pair)


def test_map_and_wait_for_condition(pair: Pair) -> None:
    scenario.a_map(pair)
    scenario.wait_for_condition(pair)


def test_cancel_ends_a_waiting_execution(pair: Pair) -> None:
    inv, _ = callback_sent(pair, "cancel")
    suspended(pair, inv)
    status, body, _ = http("PATCH", f"{pair.orch.admin}/invocations/{inv}/cancel")
    assert status in (200, 202), body
    status, body = pair.attach(inv)
    assert status == 409 and "cancelled" in body["message"], body


def test_history_and_listing_through_boto3(pair: Pair) -> None:
    client = lambda_client(pair.orch.ingress)
    inv = succeeded(pair, {"mode": "wait", "seconds": 1})
    arn = execution_arn(inv)
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
    client = lambda_client(pair.orch.ingress)

    def events(inv: str) -> list[dict[str, Any]]:
        arn = execution_arn(inv)
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

    retry = {"mode": "retry", "marker": str(pair.tmp / "h-retry")}
    (attempt,) = [e for e in events(succeeded(pair, retry)) if e["EventType"] == "StepFailed"]
    assert attempt["StepFailedDetails"]["RetryDetails"] == {
        "CurrentAttempt": 1,
        "NextAttemptDelaySeconds": 1,
    }, attempt
    assert attempt["StepFailedDetails"]["Error"]["Payload"]["ErrorMessage"] == (
        "first attempt fails"
    )

    waited = events(succeeded(pair, {"mode": "wait", "seconds": 1}))
    (started,) = [e for e in waited if e["EventType"] == "WaitStarted"]
    details = started["WaitStartedDetails"]
    assert details["Duration"] == 1, details
    late = details["ScheduledEndTimestamp"] - started["EventTimestamp"]
    assert 0.9 < late.total_seconds() < 1.5, details

    inv, _ = callback_sent(pair, "history-stop")
    suspended(pair, inv)
    arn = execution_arn(inv)
    # a malformed Error (botocore checks types itself: sent raw) is refused, nothing stopped
    quoted = arn.replace("/", "%2F")
    stop = f"{pair.orch.ingress}/2025-12-01/durable-executions/{quoted}/stop"
    for bad in ({"ErrorMessage": 1}, {"Error": {"ErrorMessage": "wrapped"}}, ["no"]):
        status, answer, headers = http("POST", stop, bad)
        assert status == 400, (bad, status, answer)
        assert headers["x-amzn-errortype"] == "InvalidParameterValueException", headers
        assert answer["Type"] == "User" and "Error" in answer["message"], answer
    assert client.get_durable_execution(DurableExecutionArn=arn)["Status"] == "RUNNING"
    why = {
        "ErrorMessage": "over budget",
        "ErrorType": "Budget.Exceeded",
        "ErrorData": '{"spent": 12}',
        "StackTrace": ["at charge (orders.py:12)"],
    }
    client.stop_durable_execution(DurableExecutionArn=arn, Error=why)
    stopped = events(inv)
    assert stopped[-1]["EventType"] == "ExecutionStopped", stopped
    assert stopped[-1]["ExecutionStoppedDetails"]["Error"]["Payload"] == why, stopped
    described = client.get_durable_execution(DurableExecutionArn=arn)
    assert described["Status"] == "STOPPED" and described["Error"] == why, described
    # the Restate-compatible paths answer what a kill without a reason answers
    assert pair.attach(inv) == (409, {"message": "killed by an operator"})


def test_a_result_over_the_answer_limit_is_checkpointed(pair: Pair) -> None:
    scenario.a_result_over_the_answer_limit(pair)


def test_a_chained_invoke_calls_another_durable_function(pair: Pair) -> None:
    scenario.chained_invokes(pair, ("orders", ARN, "Orders/run"))  # its name, its ARN, the handler
    scenario.a_chained_invoke_of_a_ritornello_handler(pair)
    # an unknown function fails the execution
    status, body, _ = pair.call({"mode": "invoke", "function": "nothing", "payload": {}})
    assert status == 500 and "no durable function nor handler 'nothing'" in body["message"], body


def test_kill9_of_the_orchestrator_during_a_wait_and_a_pending_callback(pair: Pair) -> None:
    scenario.kill9_during_a_wait_and_a_pending_callback(pair)


def test_kill9_of_the_orchestrator_during_a_step(pair: Pair) -> None:
    """The function is inside a step when the orchestrator dies: its checkpoint cannot land
    (nor, once it is back, with that run's token); the re-driven attempt replays the journaled
    step and runs the interrupted one again (at-least-once), and the execution finishes."""
    scenario.kill9_during_a_step(pair, {"mode": "zombie", "sleep_s": 1.0})


def test_kill9_during_an_at_most_once_step_does_not_run_it_again(pair: Pair) -> None:
    """At-most-once per retry (START journaled before the step runs): after the crash the
    replay finds it started, never finished, and the SDK raises instead of running it again."""
    scenario.kill9_during_an_at_most_once_step(pair, {"mode": "at-most-once", "sleep_s": 1.0})


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
    inv = succeeded(pair, {"mode": "steps", "numbers": [6]})
    arn = execution_arn(inv)
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
    waiting, callback_id = callback_sent(pair, "cli")
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

    stopping, _ = callback_sent(pair, "cli-stop")
    suspended(pair, stopping)
    arn = execution_arn(stopping)
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
    waiting, _ = callback_sent(pair, "kill")
    suspended(pair, waiting)
    status, answer, _ = http("PATCH", f"{pair.orch.admin}/invocations/{waiting}/kill")
    assert status in (200, 202), answer
    assert pair.attach(waiting)[0] == 409
    described = lambda_client(pair.orch.ingress).get_durable_execution(
        DurableExecutionArn=execution_arn(waiting)
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


#: A second durable function (the same app), registered with a 2 s execution timeout.
TIMED_ARN = ARN.replace(":orders:", ":timed:")
TIMED_S = 2


#: And a third, with a 60 s one (none of its executions comes near it).
ROOMY_ARN, ROOMY_S = ARN.replace(":orders:", ":roomy:"), 60


@pytest.fixture(scope="module")
def timed(pair: Pair) -> str:
    """Registers ``TIMED_ARN`` as service ``Timed`` with ``execution_timeout_s`` 2 (and
    ``ROOMY_ARN`` as ``Roomy`` with 60): its ARN."""
    for arn, service, seconds in ((TIMED_ARN, "Timed", TIMED_S), (ROOMY_ARN, "Roomy", ROOMY_S)):
        body = {"arn": arn, "protocol": "aws-durable", "service": service}
        status, answer, _ = http(
            "POST", f"{pair.orch.admin}/deployments", {**body, "execution_timeout_s": seconds}
        )
        assert status == 201 and answer["execution_timeout_s"] == seconds, answer
    return TIMED_ARN


def _send_timed(pair: Pair, event: Any, service: str = "Timed") -> tuple[str, float]:
    """Sends ``event`` to ``service``: the invocation's id and when it was accepted."""
    status, body, _ = http("POST", f"{pair.orch.ingress}/restate/send/{service}/run", event)
    assert status == 202, (body, pair.orch.output())
    return str(body["invocationId"]), time.time()


def _timed_execution(inv: str, function_arn: str = TIMED_ARN) -> str:
    return f"{function_arn}/durable-execution/{inv}/{inv}"


def test_execution_timeout_registration_is_checked(pair: Pair, timed: str) -> None:
    """A bad ``execution_timeout_s`` is a 400 naming the bounds and registers nothing; one
    without the aws-durable protocol is refused like the other misplaced fields (422); a
    function registered without it has none (no deadline, no DurableConfig)."""
    admin = pair.orch.admin
    other = ARN.replace(":orders:", ":other:")
    for bad in (0, -1, 31_622_401, 2.5, "10", True, [3]):
        body = {"arn": other, "protocol": "aws-durable", "service": "Other"}
        status, answer, _ = http(
            "POST", f"{admin}/deployments", {**body, "execution_timeout_s": bad}
        )
        assert status == 400 and "from 1 to 31622400" in json.dumps(answer), (bad, answer)
    status, answer, _ = http(
        "POST", f"{admin}/deployments", {"arn": other, "execution_timeout_s": 5}
    )
    assert status == 422 and "goes with protocol" in json.dumps(answer), answer
    deployments = http("GET", f"{admin}/deployments")[1]["deployments"]
    assert not [d for d in deployments if "other" in d["uri"]]  # nothing registered
    shown = {d["services"][0]["name"]: d["execution_timeout_s"] for d in deployments}
    assert shown["Timed"] == TIMED_S and shown["Orders"] is None, shown
    inv = succeeded(pair, {"mode": "steps", "numbers": [1]})  # Orders: no option
    assert not [e for e in journal(pair, inv) if "execution_timeout" in e]
    described = lambda_client(pair.orch.ingress).get_durable_execution(
        DurableExecutionArn=execution_arn(inv)
    )
    assert "DurableConfig" not in described and described["Status"] == "SUCCEEDED"


def test_executions_time_out_at_their_deadline(pair: Pair, timed: str) -> None:
    """Executions of a function with a 2 s execution timeout, at once: one suspended on a 30 s
    wait ends TIMED_OUT at its deadline (not when the wait ends), with the Error, the
    history's ExecutionTimedOut and the listing's status; one that finishes first is
    unaffected, also once its deadline has passed; one inside a 3 s step when the deadline
    passes ends TIMED_OUT at the deadline, and its zombie run's checkpoint is refused. And one
    of a function with a 60 s timeout, suspended on a 1 s wait (its deadline's timer waited on
    beside it), is woken by its wait and succeeds. An execution (without a timeout) whose
    chained invoke of the 2 s one times out sees it TIMED_OUT (ChainedInvokeTimedOut)."""
    waiting, sent = _send_timed(pair, {"mode": "wait", "seconds": 30})
    callee = {"mode": "wait", "seconds": 30}
    caller = pair.send({"mode": "invoke", "function": "timed", "payload": callee})
    roomy, _ = _send_timed(pair, {"mode": "wait", "seconds": 1}, "Roomy")
    quick, _ = _send_timed(pair, {"mode": "steps", "numbers": [1, 2]})
    marker = pair.tmp / "timed-step-marker"
    log = pair.emulator.log
    refused = log.read_text(errors="replace").count("Invalid checkpoint token")
    stepping, _ = _send_timed(pair, {"mode": "zombie", "marker": str(marker), "sleep_s": 3})

    status, body = pair.attach(waiting)
    took = time.time() - sent
    assert status == 500 and "Execution.Timeout" in json.dumps(body), (body, pair.orch.output())
    assert TIMED_S - 0.1 <= took < TIMED_S + 2.5, took  # at the deadline, not after the wait
    assert pair.ran(waiting) == {"before": 1}
    client = lambda_client(pair.orch.ingress)
    described = client.get_durable_execution(DurableExecutionArn=_timed_execution(waiting))
    assert described["Status"] == "TIMED_OUT", described
    assert described["Error"] == {
        "ErrorType": "Execution.Timeout",
        "ErrorMessage": f"Execution timed out after {TIMED_S} s",
    }
    assert described["DurableConfig"] == {"ExecutionTimeout": TIMED_S}
    ran_for = (described["EndTimestamp"] - described["StartTimestamp"]).total_seconds()
    assert TIMED_S - 0.1 <= ran_for < TIMED_S + 2.0, described
    events = client.get_durable_execution_history(DurableExecutionArn=_timed_execution(waiting))
    kinds = [e["EventType"] for e in events["Events"]]
    assert kinds[0] == "ExecutionStarted" and kinds[-1] == "ExecutionTimedOut", kinds
    assert kinds.count("ExecutionTimedOut") == 1 and "WaitSucceeded" not in kinds, kinds
    assert events["Events"][0]["ExecutionStartedDetails"]["ExecutionTimeout"] == TIMED_S
    details = events["Events"][-1]["ExecutionTimedOutDetails"]
    assert details["Error"]["Payload"]["ErrorType"] == "Execution.Timeout", details
    listed = client.list_durable_executions_by_function(
        FunctionName="timed", Statuses=["TIMED_OUT"]
    )
    arns = {e["DurableExecutionArn"]: e["Status"] for e in listed["DurableExecutions"]}
    assert arns.get(_timed_execution(waiting)) == "TIMED_OUT", arns
    assert set(arns.values()) == {"TIMED_OUT"}
    failed = client.list_durable_executions_by_function(FunctionName="timed", Statuses=["FAILED"])
    assert _timed_execution(waiting) not in str(failed["DurableExecutions"])
    # the Restate-compatible views: a failed invocation with the timeout's message
    status, detail, _ = http("GET", f"{pair.orch.admin}/invocations/{waiting}")
    assert detail["status"] == "failed", detail
    assert detail["result"]["failure"]["message"].startswith("Execution.Timeout: "), detail

    assert pair.attach(quick) == (200, {"total": 3}), pair.orch.output()
    (timer,) = [e for e in journal(pair, quick) if "execution_timeout" in e]
    assert timer["kind"] == "sleep" and timer["duration_ms"] == TIMED_S * 1000, timer
    time.sleep(max(0.0, timer["wake_at"] / 1000 + 0.3 - time.time()))  # past its deadline
    described = client.get_durable_execution(DurableExecutionArn=_timed_execution(quick))
    assert described["Status"] == "SUCCEEDED" and pair.attach(quick)[0] == 200, described
    assert pair.attach(roomy) == (200, ["before", "after"]), pair.orch.output()
    assert pair.ran(roomy) == {"before": 1, "after": 1}
    described = client.get_durable_execution(DurableExecutionArn=_timed_execution(roomy, ROOMY_ARN))
    assert described["Status"] == "SUCCEEDED", described
    assert described["DurableConfig"] == {"ExecutionTimeout": ROOMY_S}, described

    status, body = pair.attach(stepping)
    assert status == 500 and "Execution.Timeout" in json.dumps(body), (body, pair.orch.output())
    deadline = time.monotonic() + 10
    # the run, retired at the deadline, wakes from its step: its checkpoint is refused
    while log.read_text(errors="replace").count("Invalid checkpoint token") <= refused:
        assert time.monotonic() < deadline, pair.emulator.output()
        time.sleep(0.05)
    assert pair.ran(stepping) == {"first": 1, "slow": 1}
    # retired at the deadline, in its first attempt (not after the attempt's own timeout)
    assert http("GET", f"{pair.orch.admin}/invocations/{stepping}")[1]["attempt"] == 1

    status, body = pair.attach(caller)  # the SDK raises the chained invoke's error
    assert status == 500, (body, pair.orch.output())
    events = client.get_durable_execution_history(DurableExecutionArn=execution_arn(caller))
    (timed_out,) = [e for e in events["Events"] if e["EventType"] == "ChainedInvokeTimedOut"]
    error = timed_out["ChainedInvokeTimedOutDetails"]["Error"]["Payload"]
    assert error["ErrorType"] == "Execution.Timeout", timed_out
    names = [e.get("name") for e in journal(pair, stepping)]
    assert "STEP SUCCEED first" in names and "STEP SUCCEED slow" not in names, names
    assert (
        client.get_durable_execution(DurableExecutionArn=_timed_execution(stepping))["Status"]
        == "TIMED_OUT"
    )


def test_an_execution_timeout_survives_kill9_of_the_orchestrator(pair: Pair, timed: str) -> None:
    """kill -9 of the orchestrator while an execution waits: the restarted one times it out
    once, at its deadline (its timer is durable), and keeps the registration's option."""
    inv, sent = _send_timed(pair, {"mode": "wait", "seconds": 30})
    suspended(pair, inv)
    client = lambda_client(pair.orch.ingress)
    described = client.get_durable_execution(DurableExecutionArn=_timed_execution(inv))
    falls = described["ExpectedExecutionTimeoutTimestamp"].timestamp()
    assert sent - 0.1 <= falls - TIMED_S <= sent + 1.0, (sent, described)
    pair.orch.kill9()
    pair.restart_orchestrator()
    back = time.time()
    status, body = pair.attach(inv)
    assert status == 500 and "Execution.Timeout" in json.dumps(body), (body, pair.orch.output())
    client = lambda_client(pair.orch.ingress)
    described = client.get_durable_execution(DurableExecutionArn=_timed_execution(inv))
    ended = described["EndTimestamp"].timestamp()
    assert falls - 0.05 <= ended <= max(falls, back) + 2.0, (falls, back, described)
    assert described["Status"] == "TIMED_OUT" and pair.ran(inv) == {"before": 1}
    entries = journal(pair, inv)
    assert [e.get("name") for e in entries].count("EXECUTION TIMEOUT") == 1, entries
    kinds = [
        e["EventType"]
        for e in client.get_durable_execution_history(DurableExecutionArn=_timed_execution(inv))[
            "Events"
        ]
    ]
    assert kinds.count("ExecutionTimedOut") == 1 and kinds[-1] == "ExecutionTimedOut", kinds
    # the option is the stored deployment's: a new execution after the restart has it too
    later, _ = _send_timed(pair, {"mode": "steps", "numbers": [1]})
    assert pair.attach(later) == (200, {"total": 1}), pair.orch.output()
    described = client.get_durable_execution(DurableExecutionArn=_timed_execution(later))
    assert described["DurableConfig"] == {"ExecutionTimeout": TIMED_S}, described
