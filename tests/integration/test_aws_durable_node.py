"""AWS Lambda durable functions written with AWS's SDK for JavaScript
(``@aws/durable-execution-sdk-js``, pinned by tests/aws_durable_node/package-lock.json), unmodified,
on Ritornello (docs/aws-durable.md): tests/aws_durable_node/app.mjs behind ``ritornello
lambda-emulator app.mjs`` (a real Node process, its ``AWS_ENDPOINT_URL_LAMBDA`` the orchestrator's
ingress), registered by ARN; the orchestrator (``ritornello serve``, a real process) invokes it
through its Lambda invoker.

Without ``node`` or the npm packages (``make install`` runs ``npm ci --prefix
tests/aws_durable_node``) the tests skip locally and fail in CI (``CI`` set)."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator

import pytest

from tests.integration.test_aws_durable import (
    ARN,
    Pair,
    journal,
    kill9_during_a_step,
    kill9_during_a_wait_and_a_pending_callback,
    kill9_during_an_at_most_once_step,
    lambda_client,
    suspended,
    wait_for,
)
from tests.procs import ROOT, Endpoint, http

APP = ROOT / "tests" / "aws_durable_node"


def _node_app_or_skip() -> None:
    why = ""
    if shutil.which("node") is None:
        why = "node is not installed"
    elif not (APP / "node_modules" / "@aws" / "durable-execution-sdk-js").is_dir():
        why = "the npm packages are missing: npm ci --prefix tests/aws_durable_node"
    if why:
        if os.environ.get("CI"):
            pytest.fail(f"{why} (CI must have them: make install installs them)")
        pytest.skip(why)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    _node_app_or_skip()
    p = Pair(tmp_path_factory.mktemp("durable-node"), str(APP / "app.mjs")).start()
    try:
        body = {"arn": ARN, "protocol": "aws-durable", "service": "Orders"}
        status, answer, _ = http("POST", f"{p.orch.admin}/deployments", body)
        assert status == 201, (answer, p.orch.output())
        yield p
    finally:
        p.stop()


def test_steps_and_the_result(pair: Pair) -> None:
    status, body, headers = pair.call({"mode": "steps", "numbers": [1, 2, 3]})
    assert (status, body) == (200, {"total": 6}), (pair.orch.output(), pair.emulator.output())
    inv = headers["x-restate-id"]
    assert pair.ran(inv) == {"add-1": 1, "add-2": 1, "add-3": 1}
    names = [e.get("name") for e in journal(pair, inv) if e.get("kind") == "run"]
    assert "STEP SUCCEED add-1" in names and "STEP SUCCEED add-3" in names, names


def test_a_failed_execution_is_a_failed_invocation(pair: Pair) -> None:
    status, body, headers = pair.call({"mode": "fail"})
    assert status == 500 and "the order is invalid" in body["message"], body
    inv = headers["x-restate-id"]
    status, detail, _ = http("GET", f"{pair.orch.admin}/invocations/{inv}")
    assert detail["status"] == "failed", detail
    assert pair.ran(inv) == {"doomed": 1}


def test_a_wait_is_a_durable_timer(pair: Pair) -> None:
    started = time.monotonic()
    status, body, headers = pair.call({"mode": "wait", "seconds": 1})
    assert (status, body) == (200, ["before", "after"]), pair.orch.output()
    assert time.monotonic() - started >= 1.0
    inv = headers["x-restate-id"]
    assert pair.ran(inv) == {"before": 1, "after": 1}
    pause = next(e for e in journal(pair, inv) if e.get("kind") == "sleep")
    assert pause["name"] == "WAIT START pause" and pause["duration_ms"] == 1000, pause


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
    assert pair.attach(inv) == (200, {"approved": '{"by": "alice"}'}), pair.orch.output()
    assert pair.ran(inv) == {"publish": 1}
    with pytest.raises(client.exceptions.InvalidParameterValueException):
        client.send_durable_execution_callback_success(CallbackId=callback_id, Result=b"2")


def test_wait_for_callback_resolved_and_rejected_through_the_awakeable_path(pair: Pair) -> None:
    publish = pair.tmp / "callback-awakeable.txt"
    inv = pair.send({"mode": "wait-for-callback", "publish_to": str(publish)})
    callback_id = wait_for(publish)
    status, body, _ = http(
        "POST", f"{pair.orch.ingress}/restate/awakeables/{callback_id}/resolve", {"by": "bob"}
    )
    assert status == 202, body
    assert pair.attach(inv) == (200, {"approved": '{"by":"bob"}'}), pair.orch.output()
    assert pair.ran(inv) == {"submit": 1}

    publish = pair.tmp / "callback-reject.txt"
    inv = pair.send({"mode": "wait-for-callback", "publish_to": str(publish)})
    callback_id = wait_for(publish)
    status, body, _ = http(
        "POST",
        f"{pair.orch.ingress}/restate/a/{callback_id}/reject",
        raw=b"not approved",
        headers={"content-type": "text/plain"},
    )
    assert status == 202, body
    status, body = pair.attach(inv)
    assert status == 500 and "not approved" in body["message"], body


def test_parallel_and_map(pair: Pair) -> None:
    status, body, headers = pair.call({"mode": "parallel"})
    assert (status, body) == (200, [10, 20, 30]), pair.orch.output()
    names = [e.get("name") for e in journal(pair, headers["x-restate-id"])]
    assert "CONTEXT SUCCEED fan" in names, names
    status, body, headers = pair.call({"mode": "map", "items": [1, 2, 3]})
    assert (status, body) == (200, [1, 4, 9]), pair.orch.output()
    names = [e.get("name") for e in journal(pair, headers["x-restate-id"])]
    assert "CONTEXT SUCCEED squares" in names and "STEP SUCCEED square-3" in names, names


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


def test_wait_for_condition_and_a_child_context(pair: Pair) -> None:
    started = time.monotonic()
    status, body, headers = pair.call({"mode": "condition"})
    assert (status, body) == (200, 2), pair.orch.output()
    assert time.monotonic() - started >= 1.0  # one poll a second, durable timers between
    assert pair.ran(headers["x-restate-id"]) == {"poll": 2}
    status, body, headers = pair.call({"mode": "child"})
    assert (status, body) == (200, 3), pair.orch.output()
    names = [e.get("name") for e in journal(pair, headers["x-restate-id"])]
    assert "CONTEXT SUCCEED group" in names and "STEP SUCCEED two" in names, names


def test_a_chained_invoke_of_a_durable_function_and_a_handler(pair: Pair) -> None:
    child = {"mode": "steps", "numbers": [7, 8]}
    for function in ("orders", ARN):
        status, body, headers = pair.call(
            {"mode": "invoke", "function": function, "payload": child}
        )
        assert (status, body) == (200, {"child": {"total": 15}}), (function, pair.orch.output())
    calls = [e for e in journal(pair, headers["x-restate-id"]) if e["kind"] == "call"]
    assert [c["name"] for c in calls] == ["Orders/run"] and calls[0]["input"] == child
    status, body, _ = pair.call(
        {"mode": "invoke", "function": "orders", "payload": {"mode": "fail"}}
    )
    assert status == 500 and "the order is invalid" in body["message"], body


def test_a_result_over_the_answer_limit_is_checkpointed(pair: Pair) -> None:
    size = 6 * 1024 * 1024
    inv = pair.send({"mode": "big", "size": size})
    status, body = pair.attach(inv)
    assert status == 200 and body == "x" * size, (status, str(body)[:200], pair.orch.output())
    assert pair.ran(inv) == {"big": 1}


def test_a_chained_invoke_of_a_ritornello_handler(pair: Pair) -> None:
    endpoint = Endpoint(pair.tmp, ROOT / "examples", "app").start()
    try:
        status, body, _ = http("POST", f"{pair.orch.admin}/deployments", {"uri": endpoint.uri})
        assert status == 201, body
        event = {"mode": "invoke", "function": "Greeter/greet", "payload": "durable"}
        status, body, _ = pair.call(event)
        assert (status, body) == (200, {"child": "Hello, durable!"}), pair.orch.output()
    finally:
        endpoint.terminate()


def test_executions_are_described_and_stopped(pair: Pair) -> None:
    client = lambda_client(pair)
    status, body, headers = pair.call({"mode": "steps", "numbers": [4]})
    assert status == 200, body
    inv = headers["x-restate-id"]
    arn = f"{ARN}/durable-execution/{inv}/{inv}"
    described = client.get_durable_execution(DurableExecutionArn=arn)
    assert described["Status"] == "SUCCEEDED" and json.loads(described["Result"]) == {"total": 4}
    publish = pair.tmp / "callback-stop.txt"
    waiting = pair.send({"mode": "callback", "publish_to": str(publish)})
    wait_for(publish)
    suspended(pair, waiting)
    arn = f"{ARN}/durable-execution/{waiting}/{waiting}"
    client.stop_durable_execution(DurableExecutionArn=arn)
    assert client.get_durable_execution(DurableExecutionArn=arn)["Status"] == "STOPPED"
    assert pair.attach(waiting)[0] == 409


def test_kill9_of_the_orchestrator_during_a_wait_and_a_pending_callback(pair: Pair) -> None:
    kill9_during_a_wait_and_a_pending_callback(pair)


def test_kill9_of_the_orchestrator_during_a_step(pair: Pair) -> None:
    """The function is inside a step when the orchestrator dies: the re-driven attempt replays
    the journaled step and runs the interrupted one again (at-least-once); the execution
    finishes with each step journaled once."""
    kill9_during_a_step(pair, {"mode": "slow-step", "sleep_ms": 1000})


def test_kill9_during_an_at_most_once_step_does_not_run_it_again(pair: Pair) -> None:
    """At-most-once per retry (START journaled before the step runs): after the crash the
    replay finds it started, never finished, and the SDK raises instead of running it again."""
    kill9_during_an_at_most_once_step(pair, {"mode": "at-most-once", "sleep_ms": 1000})
