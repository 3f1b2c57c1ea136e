"""The scenarios both suites of AWS durable functions run, one function each over the ``pair``
of either app: AWS's Python SDK (test_aws_durable.py) and its JavaScript SDK
(test_aws_durable_node.py). Where the apps differ (a mode's name, its options, the steps it
ledgers), the test gives its own request; what a scenario checks holds for both SDKs."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.integration._durable import (
    ARN,
    Pair,
    callback_sent,
    execution_arn,
    journal,
    succeeded,
    suspended,
)
from tests.integration._lambda_pair import lambda_client, wait_for
from tests.procs import ROOT, Endpoint, http


def steps_and_the_result(pair: Pair) -> None:
    """Three steps called through the ingress: the result, each step run once and journaled
    with its value and time; attach answers the finished execution too."""
    status, body, headers = pair.call({"mode": "steps", "numbers": [1, 2, 3]})
    assert (status, body) == (200, {"total": 6}), (pair.orch.output(), pair.emulator.output())
    inv = headers["x-restate-id"]
    assert pair.ran(inv) == {"add-1": 1, "add-2": 1, "add-3": 1}
    entries = journal(pair, inv)
    names = [e.get("name") for e in entries if e.get("kind") == "run"]
    assert "STEP SUCCEED add-1" in names and "STEP SUCCEED add-3" in names, entries
    step = next(e for e in entries if e.get("name") == "STEP SUCCEED add-2")
    assert step["value"] == 2 and isinstance(step["at"], int), step
    assert pair.attach(inv) == (200, {"total": 6})


def a_failed_execution(pair: Pair) -> str:
    """An execution that raises after a step is a failed invocation (500), its step run once:
    the error's message."""
    status, body, headers = pair.call({"mode": "fail"})
    assert status == 500 and "the order is invalid" in body["message"], body
    inv = headers["x-restate-id"]
    status, detail, _ = http("GET", f"{pair.orch.admin}/invocations/{inv}")
    assert detail["status"] == "failed", detail
    assert pair.ran(inv) == {"doomed": 1}
    return str(body["message"])


def a_wait_is_a_durable_timer(pair: Pair) -> None:
    """A one-second wait between two steps: journaled as a timer, each step run once."""
    started = time.monotonic()
    status, body, headers = pair.call({"mode": "wait", "seconds": 1})
    assert (status, body) == (200, ["before", "after"]), pair.orch.output()
    assert time.monotonic() - started >= 1.0
    inv = headers["x-restate-id"]
    assert pair.ran(inv) == {"before": 1, "after": 1}
    pause = next(e for e in journal(pair, inv) if e.get("kind") == "sleep")
    assert pause["name"] == "WAIT START pause" and pause["duration_ms"] == 1000, pause


def a_callback_resolved_through_the_durable_api(pair: Pair) -> None:
    """A pending callback heartbeated and completed through the durable API (boto3): the
    execution gets the result; a second completion, and one of an unknown callback, are
    refused in Lambda's error shape; the callback is journaled as an awakeable."""
    inv, callback_id = callback_sent(pair, "api")
    suspended(pair, inv)
    client = lambda_client(pair.orch.ingress)
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


def callback_resolved_as_an_awakeable(
    pair: Pair, request: dict[str, Any], prefix: str, ran: dict[str, int]
) -> None:
    """The callback ``request`` waits for (its id published by a step that ledgers ``ran``),
    resolved with JSON through Ritornello's ``/restate/{prefix}/ID/resolve``: the execution
    gets the text sent; a later failure through the durable API is refused."""
    inv, callback_id = callback_sent(pair, f"resolve-{prefix}", **request)
    url = f"{pair.orch.ingress}/restate/{prefix}/{callback_id}/resolve"
    status, body, _ = http("POST", url, {"by": "bob"})
    assert status == 202, body
    assert pair.attach(inv) == (200, {"approved": '{"by":"bob"}'}), pair.orch.output()
    assert pair.ran(inv) == ran
    client = lambda_client(pair.orch.ingress)
    with pytest.raises(client.exceptions.InvalidParameterValueException):
        client.send_durable_execution_callback_failure(
            CallbackId=callback_id, Error={"ErrorMessage": "too late"}
        )


def callback_rejected_as_an_awakeable(pair: Pair, request: dict[str, Any], prefix: str) -> None:
    """The callback ``request`` waits for, rejected with text through Ritornello's
    ``/restate/{prefix}/ID/reject``: the execution fails with that text."""
    inv, callback_id = callback_sent(pair, f"reject-{prefix}", **request)
    url = f"{pair.orch.ingress}/restate/{prefix}/{callback_id}/reject"
    text = {"content-type": "text/plain"}
    status, body, _ = http("POST", url, raw=b"not approved", headers=text)
    assert status == 202, body
    status, body = pair.attach(inv)
    assert status == 500 and "not approved" in body["message"], body


def a_step_retried_after_a_durable_timer(pair: Pair) -> None:
    """A step whose first attempt fails is retried after its 1 s delay (a durable timer)."""
    marker = pair.tmp / "retry-marker"
    started = time.monotonic()
    status, body, headers = pair.call({"mode": "retry", "marker": str(marker)})
    assert (status, body) == (200, "recovered"), pair.orch.output()
    assert time.monotonic() - started >= 1.0  # the step's retry delay
    inv = headers["x-restate-id"]
    assert pair.ran(inv) == {"flaky": 2}
    kinds = [(e["kind"], e.get("name")) for e in journal(pair, inv)]
    assert ("sleep", "STEP RETRY flaky") in kinds and ("run", "STEP SUCCEED flaky") in kinds


def parallel_branches(pair: Pair) -> None:
    """Three branches in parallel, each a step in a child context: their results in order."""
    status, body, headers = pair.call({"mode": "parallel"})
    assert (status, body) == (200, [10, 20, 30]), pair.orch.output()
    names = [e.get("name") for e in journal(pair, headers["x-restate-id"])]
    assert "CONTEXT SUCCEED fan" in names, names


def a_map(pair: Pair) -> list[str | None]:
    """A map over three items: their results in order; the names in its journal."""
    status, body, headers = pair.call({"mode": "map", "items": [1, 2, 3]})
    assert (status, body) == (200, [1, 4, 9]), pair.orch.output()
    return [e.get("name") for e in journal(pair, headers["x-restate-id"])]


def wait_for_condition(pair: Pair) -> None:
    """A condition polled once a second until it holds, durable timers between the polls."""
    started = time.monotonic()
    status, body, headers = pair.call({"mode": "condition"})
    assert (status, body) == (200, 2), pair.orch.output()
    assert time.monotonic() - started >= 1.0  # one poll a second, durable timers between
    assert pair.ran(headers["x-restate-id"]) == {"poll": 2}


def a_result_over_the_answer_limit(pair: Pair) -> None:
    """A 6 MiB result, over Lambda's answer limit: the SDK checkpoints it instead."""
    size = 6 * 1024 * 1024
    inv = pair.send({"mode": "big", "size": size})
    status, body = pair.attach(inv)
    assert status == 200 and body == "x" * size, (status, str(body)[:200], pair.orch.output())
    assert pair.ran(inv) == {"big": 1}


def chained_invokes(pair: Pair, functions: tuple[str, ...]) -> None:
    """The function invokes itself (registered) by each name of ``functions``: the child's
    result, journaled as a call of ``Orders/run``; a child that fails fails its caller."""
    child = {"mode": "steps", "numbers": [7, 8]}
    for function in functions:
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


def a_chained_invoke_of_a_ritornello_handler(pair: Pair) -> None:
    """The function invokes ``Greeter/greet``, a Ritornello handler (the examples' endpoint,
    over HTTP)."""
    endpoint = Endpoint(pair.tmp, ROOT / "examples", "app").start()
    try:
        status, body, _ = http("POST", f"{pair.orch.admin}/deployments", {"uri": endpoint.uri})
        assert status == 201, body
        event = {"mode": "invoke", "function": "Greeter/greet", "payload": "durable"}
        status, body, _ = pair.call(event)
        assert (status, body) == (200, {"child": "Hello, durable!"}), pair.orch.output()
    finally:
        endpoint.terminate()


def executions_described_and_stopped(pair: Pair) -> None:
    """GetDurableExecution and StopDurableExecution through boto3: a finished execution
    described (status, result, input, ARNs), an unknown one not found; one waiting for a
    callback stopped, its callback gone with it."""
    client = lambda_client(pair.orch.ingress)
    inv = succeeded(pair, {"mode": "steps", "numbers": [4]})
    arn = execution_arn(inv)
    described = client.get_durable_execution(DurableExecutionArn=arn)
    assert described["Status"] == "SUCCEEDED" and json.loads(described["Result"]) == {"total": 4}
    assert json.loads(described["InputPayload"]) == {"mode": "steps", "numbers": [4]}
    assert described["FunctionArn"] == ARN and described["DurableExecutionArn"] == arn
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_durable_execution(DurableExecutionArn=arn.replace(inv, "inv_nothing"))

    waiting, callback_id = callback_sent(pair, "stop")
    suspended(pair, waiting)
    arn = execution_arn(waiting)
    assert client.get_durable_execution(DurableExecutionArn=arn)["Status"] == "RUNNING"
    client.stop_durable_execution(DurableExecutionArn=arn)  # no Error: a plain kill, as before
    described = client.get_durable_execution(DurableExecutionArn=arn)
    assert described["Status"] == "STOPPED", described
    assert described["Error"] == {"ErrorMessage": "killed by an operator"}, described
    assert pair.attach(waiting) == (409, {"message": "killed by an operator"})
    # its callback is gone with it: completing or heartbeating it is refused
    with pytest.raises(client.exceptions.InvalidParameterValueException, match="killed"):
        client.send_durable_execution_callback_heartbeat(CallbackId=callback_id)
    with pytest.raises(client.exceptions.InvalidParameterValueException, match="killed"):
        client.send_durable_execution_callback_success(CallbackId=callback_id, Result=b"1")


def kill9_during_a_wait_and_a_pending_callback(pair: Pair) -> None:
    """kill -9 of the orchestrator while one execution waits and another's callback is pending
    (a third's callback times out after the restart): after a restart the wait ends, the
    callback completes, the other times out, and no step ran twice."""
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
    lambda_client(pair.orch.ingress).send_durable_execution_callback_success(
        CallbackId=callback_id, Result=b'"after the crash"'
    )
    assert pair.attach(pending) == (200, {"approved": '"after the crash"'}), pair.orch.output()
    assert pair.ran(pending) == {"publish": 1}
    status, body = pair.attach(timed)
    assert status == 200 and "timed_out" in body, (body, pair.orch.output())


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
