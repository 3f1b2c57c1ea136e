"""AWS durable operations <-> journal entries (``protocols.aws_durable``): the pure fold, the
update checks and the checkpoint tokens, without processes (the SDK end to end is
tests/integration/test_aws_durable.py)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from ritornello.orchestrator.core import KILLED_RESULT, completion_text
from ritornello.orchestrator.protocols.aws_durable import (
    INVALID_TOKEN,
    Checkpoint,
    Runs,
    UpdateError,
    check_updates,
    execution_arn,
    history,
    invocation_of,
    to_wire,
)
from ritornello.orchestrator.protocols.aws_durable._adapter import completed_marker
from ritornello.orchestrator.protocols.aws_durable._callbacks import (
    decide,
    due,
    heartbeat_result,
    heartbeat_timer,
    timeout_result,
)
from ritornello.orchestrator.protocols.aws_durable._operations import (
    entries_of,
    operations,
    waiting,
)
from ritornello.protocol import parse_awakeable_id

INV = "inv_aaaaaaaaaaaaaaaaaaaaaaaaaa"
FN = "arn:aws:lambda:us-east-1:123456789012:function:orders:1"


def journal(*updates: dict[str, Any], at: int = 1000) -> list[str]:
    """Journal texts: the input, then one entry per update (as the core stores them: a sleep
    gets its ``wake_at``)."""
    texts = [json.dumps({"kind": "input", "value": {"n": 1}})]
    for entry in entries_of(check_updates(list(updates)), INV, len(texts), at):
        if entry["kind"] == "sleep":
            entry["wake_at"] = at + entry["duration_ms"]
        texts.append(json.dumps(entry))
    return texts


def test_steps_fold_into_operations_with_their_results() -> None:
    texts = journal(
        {"Id": "s1", "Type": "STEP", "Action": "START", "Name": "charge"},
        {"Id": "s1", "Type": "STEP", "Action": "SUCCEED", "Payload": "42"},
        {"Id": "s2", "Type": "STEP", "Action": "FAIL", "Error": {"ErrorMessage": "no"}},
    )
    ops = operations(INV, texts, {}, 500)
    assert list(ops) == [INV, "s1", "s2"]
    assert ops[INV]["ExecutionDetails"] == {"InputPayload": '{"n":1}'}
    assert ops["s1"]["Status"] == "SUCCEEDED" and ops["s1"]["Name"] == "charge"
    assert ops["s1"]["StepDetails"] == {"Attempt": 0, "Result": "42"}
    assert ops["s2"]["Status"] == "FAILED"
    assert ops["s2"]["StepDetails"]["Error"] == {"ErrorMessage": "no"}
    entries = [json.loads(t) for t in texts]
    assert [e["name"] for e in entries[1:]] == [
        "STEP START charge",
        "STEP SUCCEED s1",
        "STEP FAIL s2",
    ]
    assert entries[2]["value"] == 42 and entries[3]["failure"]["message"] == "no"


def test_a_wait_succeeds_with_its_timers_completion() -> None:
    texts = journal(
        {"Id": "w", "Type": "WAIT", "Action": "START", "WaitOptions": {"WaitSeconds": 3}}
    )
    assert json.loads(texts[1])["duration_ms"] == 3000
    op = operations(INV, texts, {}, 0)["w"]
    assert op["Status"] == "STARTED" and op["WaitDetails"] == {"ScheduledEndTimestamp": 4000}
    assert waiting(texts, {}) == [1]
    done = {1: '{"index":1,"value":null}'}
    assert operations(INV, texts, done, 0)["w"]["Status"] == "SUCCEEDED"
    assert waiting(texts, done) == []
    wire = to_wire(operations(INV, texts, done, 0)["w"])
    assert wire["WaitDetails"] == {"ScheduledEndTimestamp": 4.0} and wire["EndTimestamp"] == 4.0


def test_a_callback_is_an_awakeable_with_the_text_sent_as_its_result() -> None:
    texts = journal({"Id": "c", "Type": "CALLBACK", "Action": "START", "Name": "ok"})
    entry = json.loads(texts[1])
    assert entry["kind"] == "awakeable" and parse_awakeable_id(entry["id"]) == (INV, 1)
    op = operations(INV, texts, {}, 0)["c"]
    assert op["CallbackDetails"] == {"CallbackId": entry["id"]}
    sent = {1: '{"index":1,"value":{"a":1},"text":"{\\"a\\": 1}"}'}
    assert operations(INV, texts, sent, 0)["c"]["CallbackDetails"]["Result"] == '{"a": 1}'
    resolved = {1: '{"index":1,"value":{"a":1}}'}  # Ritornello's awakeable path
    assert operations(INV, texts, resolved, 0)["c"]["CallbackDetails"]["Result"] == '{"a":1}'
    rejected = {1: '{"index":1,"failure":{"code":500,"message":"no"}}'}
    op = operations(INV, texts, rejected, 0)["c"]
    assert op["Status"] == "FAILED"
    assert op["CallbackDetails"]["Error"] == {"ErrorType": "CallbackError", "ErrorMessage": "no"}


def completion(index: int, result: str) -> str:
    """A completion text as the core stores it."""
    return f'{{"index":{index},{result[1:]}'


def test_a_callback_is_timed_out_only_by_its_awakeables_completion() -> None:
    options = {"TimeoutSeconds": 5, "HeartbeatTimeoutSeconds": 2}
    start = {"Id": "c", "Type": "CALLBACK", "Action": "START", "CallbackOptions": options}
    texts = journal(start, at=1000)
    timers = [json.loads(t) for t in texts[2:]]
    assert [(t["callback_timeout"], t["duration_ms"]) for t in timers] == [
        ({"of": 1, "heartbeat": False}, 5000),
        ({"of": 1, "heartbeat": True}, 2000),
    ]
    # only the heartbeat timer can be completed from outside (by a heartbeat): it has an id
    assert "id" not in timers[0] and parse_awakeable_id(timers[1]["id"]) == (INV, 3)
    assert waiting(texts, {}) == [1, 2, 3] and due(texts, {}) == []
    fired = {3: '{"index":3,"value":null}'}  # the heartbeat timer fired: nothing decided yet
    assert operations(INV, texts, fired, 0)["c"]["Status"] == "STARTED"
    assert [d.index for d in due(texts, fired)] == [3]
    renew, expire = decide(texts, fired, {}, INV, 3000)
    assert renew == [] and expire == {1: True}
    # the decision is the awakeable's completion: that alone makes it TIMED_OUT
    done = {**fired, 1: completion(1, timeout_result(True, 3000))}
    op = operations(INV, texts, done, 0)["c"]
    assert op["Status"] == "TIMED_OUT" and op["EndTimestamp"] == 3000
    assert op["CallbackDetails"]["Error"]["ErrorType"] == "Callback.Heartbeat"
    assert waiting(texts, done) == [] and due(texts, done) == []
    events = history(INV, texts, done, 0, None)
    assert events[-1]["EventType"] == "CallbackTimedOut" and events[-1]["EventTimestamp"] == 3000
    assert events[-1]["CallbackTimedOutDetails"]["Error"]["Payload"]["ErrorType"] == (
        "Callback.Heartbeat"
    )
    # completed first (a success): the timers that fire later decide nothing
    early = {**fired, 2: '{"index":2,"value":null}', 1: '{"index":1,"value":1,"at":2500}'}
    assert due(texts, early) == [] and operations(INV, texts, early, 0)["c"]["Status"] == (
        "SUCCEEDED"
    )


def test_a_heartbeat_renews_the_heartbeat_timer_from_its_time() -> None:
    options = {"HeartbeatTimeoutSeconds": 2}
    start = {"Id": "c", "Type": "CALLBACK", "Action": "START", "CallbackOptions": options}
    texts = journal(start, at=1000)
    index, timer = heartbeat_timer(texts, 1) or (0, {})
    assert index == 2 and timer["callback_timeout"] == {"of": 1, "heartbeat": True}
    beat = {2: completion(2, heartbeat_result(2500))}
    (renewed,), expire = decide(texts, beat, {}, INV, 2600)
    assert expire == {} and renewed["duration_ms"] == 1900  # 2500 + 2000 - 2600
    assert parse_awakeable_id(renewed["id"]) == (INV, 3)
    after = [*texts, json.dumps({**renewed, "wake_at": 4500})]
    assert waiting(after, beat) == [1, 3] and due(after, beat) == []
    assert heartbeat_timer(after, 1) == (3, json.loads(after[3]))
    # fired in this process's memory, but the store has the heartbeat: the heartbeat wins
    slept = {2: '{"index":2,"value":null}'}
    assert decide(texts, slept, beat, INV, 2600)[1] == {}
    assert decide(texts, slept, {}, INV, 2600)[1] == {1: True}
    # a heartbeat whose timeout has passed since (the orchestrator was down): timed out
    assert decide(texts, beat, {}, INV, 4600) == ([], {1: True})
    # both timers due: the timeout wins, no new heartbeat timer
    both = journal(
        {**start, "CallbackOptions": {"TimeoutSeconds": 1, "HeartbeatTimeoutSeconds": 2}}, at=0
    )
    fired = {2: '{"index":2,"value":null}', 3: completion(3, heartbeat_result(900))}
    assert decide(both, fired, {}, INV, 1000) == ([], {1: False})


def test_a_retried_step_is_pending_then_ready() -> None:
    texts = journal(
        {"Id": "s", "Type": "STEP", "Action": "START"},
        {
            "Id": "s",
            "Type": "STEP",
            "Action": "RETRY",
            "Error": {"ErrorMessage": "flaky"},
            "StepOptions": {"NextAttemptDelaySeconds": 2},
        },
    )
    op = operations(INV, texts, {}, 0)["s"]
    assert op["Status"] == "PENDING" and op["StepDetails"]["Attempt"] == 1
    assert op["StepDetails"]["NextAttemptTimestamp"] == 3000
    assert operations(INV, texts, {2: '{"index":2,"value":null}'}, 0)["s"]["Status"] == "READY"
    assert "Result" not in op["StepDetails"]
    # wait_for_condition: a retry carries the state polled so far, read back as the result
    polled = journal(
        {
            "Id": "c",
            "Type": "STEP",
            "Action": "RETRY",
            "Payload": "1",
            "StepOptions": {"NextAttemptDelaySeconds": 1},
        }
    )
    assert operations(INV, polled, {}, 0)["c"]["StepDetails"]["Result"] == "1"


def test_an_execution_result_is_the_output_entry_last() -> None:
    updates = check_updates(
        [
            {"Id": "e", "Type": "EXECUTION", "Action": "SUCCEED", "Payload": '"big"'},
            {"Id": "s", "Type": "STEP", "Action": "SUCCEED", "Payload": "1"},
        ]
    )
    entries = entries_of(updates, INV, 3, 0)
    assert [e["kind"] for e in entries] == ["run", "output"] and entries[-1]["value"] == "big"
    failed = check_updates(
        [{"Id": "e", "Type": "EXECUTION", "Action": "FAIL", "Error": {"ErrorMessage": "no"}}]
    )
    assert entries_of(failed, INV, 3, 0) == [
        {"kind": "output", "failure": {"code": 500, "message": "no", "aws": {"ErrorMessage": "no"}}}
    ]


def test_a_chained_invoke_is_a_call_of_the_handler_its_function_names() -> None:
    runs = Runs(b"k" * 32)
    runs.functions[FN] = "Orders"
    update = {
        "Id": "i",
        "Type": "CHAINED_INVOKE",
        "Action": "START",
        "Payload": '{"n": 2}',
        "ChainedInvokeOptions": {"FunctionName": "orders"},
    }
    (entry,) = entries_of(check_updates([update]), INV, 1, 0, runs.target_of)
    assert (entry["kind"], entry["name"], entry["input"]) == ("call", "Orders/run", {"n": 2})
    texts = [json.dumps({"kind": "input", "value": None}), json.dumps(entry)]
    assert waiting(texts, {}) == [1]
    op = operations(INV, texts, {1: '{"index":1,"value":{"t":3}}'}, 0)["i"]
    assert op["Status"] == "SUCCEEDED" and op["ChainedInvokeDetails"] == {"Result": '{"t":3}'}
    events = history(INV, texts, {1: '{"index":1,"value":{"t":3}}'}, 0, None, None, {"Orders": FN})
    callee = entry["id"]
    assert events[1]["ChainedInvokeStartedDetails"] == {
        "FunctionName": "orders",
        "Input": {"Payload": '{"n": 2}'},
        "ExecutedVersion": "1",
        "DurableExecutionArn": f"{FN}/durable-execution/{callee}/{callee}",
    }
    assert events[2]["ChainedInvokeSucceededDetails"] == {"Result": {"Payload": '{"t":3}'}}
    failed = operations(INV, texts, {1: '{"index":1,"failure":{"code":500,"message":"x"}}'}, 0)
    assert failed["i"]["Status"] == "FAILED"
    # a callee an operator killed (StopDurableExecution): STOPPED, and so in the history
    killed = {1: completion_text(1, KILLED_RESULT)}
    assert operations(INV, texts, killed, 0)["i"]["Status"] == "STOPPED"
    stopped = history(INV, texts, killed, 0, ("Stopped", 5), KILLED_RESULT)
    assert [e["EventType"] for e in stopped] == [
        "ExecutionStarted",
        "ChainedInvokeStarted",
        "ChainedInvokeStopped",
        "ExecutionStopped",
    ]
    error = {"ErrorType": "InvokeError", "ErrorMessage": "killed by an operator"}
    assert stopped[2]["ChainedInvokeStoppedDetails"] == {"Error": {"Payload": error}}
    assert stopped[3]["ExecutionStoppedDetails"] == {
        "Error": {"Payload": {"ErrorMessage": "killed by an operator"}}
    }
    for named, target in [
        (FN, "Orders/run"),
        ("123456789012:function:orders:1", "Orders/run"),
        ("orders:2", None),
        ("arn:aws:lambda:eu-west-1:123456789012:function:orders", None),
        ("Greeter/greet", "Greeter/greet"),
        ("a/b/c", None),
        ("orders:$LATEST", "Orders/run"),
        (FN.removesuffix(":1") + ":$LATEST", "Orders/run"),
        ("other:$LATEST", None),
    ]:
        assert runs.target_of(named) == target, named
    # $LATEST: the version registered last
    runs.functions[FN.removesuffix(":1") + ":2"] = "OrdersV2"
    assert runs.target_of("orders:$LATEST") == "OrdersV2/run"
    assert runs.target_of("orders:1") == "Orders/run"
    with pytest.raises(UpdateError, match="no durable function nor handler"):
        entries_of(check_updates([update]), INV, 1, 0)


def test_history_lists_updates_and_completions_in_order() -> None:
    texts = journal(
        {"Id": "s", "Type": "STEP", "Action": "SUCCEED", "Payload": "1"},
        {"Id": "w", "Type": "WAIT", "Action": "START", "WaitOptions": {"WaitSeconds": 1}},
    )
    events = history(INV, texts, {2: '{"index":2,"value":null}'}, 0, ("Succeeded", 9000))
    assert [e["EventType"] for e in events] == [
        "ExecutionStarted",
        "StepSucceeded",
        "WaitStarted",
        "WaitSucceeded",
        "ExecutionSucceeded",
    ]
    assert [e["EventId"] for e in events] == [1, 2, 3, 4, 5]


def test_a_failed_run_is_an_invocation_completed_event_with_its_error() -> None:
    """A run that ended in a function error (a runtime exit) is journaled with the error, and
    the history shows it as Lambda does (1-17, 1-18 of AWS's conformance requirements)."""
    texts = journal({"Id": "s", "Type": "STEP", "Action": "START"})
    error = {"ErrorType": "Runtime.ExitError", "ErrorMessage": "RequestId: r Error: x"}
    texts.append(json.dumps(completed_marker(5000, 6000, error)))
    texts.append(json.dumps(completed_marker(7000, 8000)))
    events = history(INV, texts, {}, 0, None)
    assert [e["EventType"] for e in events] == [
        "ExecutionStarted",
        "StepStarted",
        "InvocationCompleted",
        "InvocationCompleted",
    ]
    assert events[2]["InvocationCompletedDetails"] == {
        "StartTimestamp": 5000,
        "EndTimestamp": 6000,
        "Error": {"Payload": error},
    }
    assert "Error" not in events[3]["InvocationCompletedDetails"]
    assert operations(INV, texts, {}, 0).keys() == operations(INV, texts[:2], {}, 0).keys()


def test_history_events_carry_their_details_and_the_runs_that_ended() -> None:
    """Lambda's detail shapes; an ``invocation_completed`` marker is an InvocationCompleted
    event, and a completion the run suspended on follows it (what invoked the function
    again); the marker is no operation."""
    texts = journal(
        {"Id": "s", "Type": "STEP", "Action": "RETRY", "Error": {"ErrorMessage": "x"},
         "StepOptions": {"NextAttemptDelaySeconds": 2}},
        {"Id": "s", "Type": "STEP", "Action": "SUCCEED", "Payload": '"ok"'},
        {"Id": "c", "Type": "CALLBACK", "Action": "START", "Name": "approve"},
    )  # fmt: skip
    texts.append(json.dumps(completed_marker(5000, 6000)))
    failed = '{"index":3,"failure":{"code":500,"message":"no","aws":{"ErrorType":"E"}}}'
    result = '{"failure":{"code":500,"message":"E: no"}}'
    events = history(INV, texts, {3: failed}, 0, ("Failed", 9000), result)
    assert [e["EventType"] for e in events] == [
        "ExecutionStarted",
        "StepFailed",
        "StepSucceeded",
        "CallbackStarted",
        "InvocationCompleted",
        "CallbackFailed",
        "ExecutionFailed",
    ]
    assert [e["EventId"] for e in events] == list(range(1, 8))
    assert events[0]["ExecutionStartedDetails"] == {"Input": {"Payload": '{"n":1}'}}
    assert events[1]["StepFailedDetails"] == {
        "Error": {"Payload": {"ErrorMessage": "x"}},
        "RetryDetails": {"CurrentAttempt": 1, "NextAttemptDelaySeconds": 2},
    }
    assert events[2]["StepSucceededDetails"] == {
        "Result": {"Payload": '"ok"', "Truncated": False},
        "RetryDetails": {"CurrentAttempt": 2},
    }
    callback_id = json.loads(texts[3])["id"]
    assert events[3]["CallbackStartedDetails"] == {"CallbackId": callback_id}
    assert events[4]["InvocationCompletedDetails"] == {"StartTimestamp": 5000, "EndTimestamp": 6000}
    assert events[5]["Id"] == "c" and events[5]["Name"] == "approve"
    assert events[5]["CallbackFailedDetails"] == {"Error": {"Payload": {"ErrorType": "E"}}}
    assert "EventTimestamp" not in events[5]  # a time unknown (no run followed to bound it)
    # timed: after the last run that ended before it, else inside the run it happened in
    late = history(INV, texts, {3: failed.replace('{"index":3,', '{"index":3,"at":7000,')}, 0, None)
    assert [e["EventType"] for e in late[4:6]] == ["InvocationCompleted", "CallbackFailed"]
    assert late[5]["EventTimestamp"] == 7000
    early = history(
        INV, texts, {3: failed.replace('{"index":3,', '{"index":3,"at":5500,')}, 0, None
    )
    assert [e["EventType"] for e in early[4:6]] == ["CallbackFailed", "InvocationCompleted"]
    assert events[6]["ExecutionFailedDetails"] == {"Error": {"Payload": {"ErrorMessage": "E: no"}}}
    # the marker is no operation, and nothing waits on it
    assert list(operations(INV, texts, {}, 0)) == [INV, "s", "c"]
    assert waiting(texts, {}) == [1, 3]


def test_history_shows_a_poll_of_wait_for_condition_as_a_succeeded_step() -> None:
    poll = {"Id": "p", "Type": "STEP", "Action": "RETRY", "Payload": "1"}
    poll["SubType"] = "WaitForCondition"
    texts = journal({**poll, "StepOptions": {"NextAttemptDelaySeconds": 1}})
    (_, event) = history(INV, texts, {}, 0, None)
    assert event["EventType"] == "StepSucceeded" and event["SubType"] == "WaitForCondition"
    assert event["StepSucceededDetails"]["Result"] == {"Payload": "1", "Truncated": False}


def test_history_of_a_succeeded_execution_gives_its_result() -> None:
    texts = journal(
        {"Id": "w", "Type": "WAIT", "Action": "START", "WaitOptions": {"WaitSeconds": 3}}
    )
    events = history(
        INV, texts, {1: '{"index":1,"value":null}'}, 0, ("Succeeded", 9), '{"value":[1]}'
    )
    assert events[1]["WaitStartedDetails"] == {"Duration": 3, "ScheduledEndTimestamp": 4000}
    assert events[2]["WaitSucceededDetails"] == {"Duration": 3}  # no run ended between
    assert events[-1]["ExecutionSucceededDetails"] == {"Result": {"Payload": "[1]"}}


@pytest.mark.parametrize(
    ("updates", "why"),
    [
        ("x", "must be a list"),
        ([1], "must be an object"),
        ([{"Id": "a" * 257, "Type": "STEP", "Action": "START"}], ".Id"),
        ([{"Id": "a", "Type": "TIMER", "Action": "START"}], ".Type"),
        ([{"Id": "a", "Type": "CHAINED_INVOKE", "Action": "START"}], "FunctionName"),
        ([{"Id": "a", "Type": "STEP", "Action": "START", "Name": 3}], ".Name must be"),
        ([{"Id": "a", "Type": "STEP", "Action": "START", "Name": "n" * 300}], "longer"),
        ([{"Id": "a", "Type": "WAIT", "Action": "START", "WaitOptions": {"WaitSeconds": 0}}], "1"),
        ([{"Id": "a", "Type": "WAIT", "Action": "START", "WaitOptions": {}}], "WaitSeconds"),
        (
            [{"Id": "a", "Type": "WAIT", "Action": "START", "WaitOptions": {"WaitSeconds": True}}],
            "WaitSeconds",
        ),
        ([{"Id": "a", "Type": "CALLBACK", "Action": "RETRY"}], "only a STEP"),
        (
            [{"Id": "a", "Type": "CALLBACK", "Action": "START", "CallbackOptions": 3}],
            "TimeoutSeconds",
        ),
        (
            [
                {
                    "Id": "a",
                    "Type": "CALLBACK",
                    "Action": "START",
                    "CallbackOptions": {"HeartbeatTimeoutSeconds": -1},
                }
            ],
            "HeartbeatTimeoutSeconds",
        ),
    ],
)
def test_malformed_updates_are_refused(updates: Any, why: str) -> None:
    with pytest.raises(UpdateError, match=why):
        check_updates(updates)


def test_execution_arns_name_their_invocation() -> None:
    arn = execution_arn(FN, INV)
    assert invocation_of(arn) == INV
    for other in [FN, f"{FN}/durable-execution/x/{INV}", f"{FN}/durable-execution/{INV}/y", ""]:
        assert invocation_of(other) is None, other


def test_a_token_is_refused_once_its_run_is_superseded_or_altered() -> None:
    async def main() -> None:
        runs = Runs(b"k" * 32)
        first = runs.start(INV, 1)
        assert runs.live(first.token, INV) is first
        assert runs.live(first.token, "inv_bbbbbbbbbbbbbbbbbbbbbbbbbb") is None
        altered = first.token[:-1] + ("1" if first.token.endswith("0") else "0")  # one MAC digit
        assert runs.live(altered, INV) is None
        assert runs.live(None, INV) is None
        waiting_reply = asyncio.get_running_loop().create_future()
        first.inbox.put_nowait(Checkpoint([], waiting_reply))
        second = runs.start(INV, 2)  # supersedes the first: its token and its waiters refused
        assert runs.live(first.token, INV) is None and runs.live(second.token, INV) is second
        status, kind, body = waiting_reply.result()
        assert (status, kind) == (400, "InvalidParameterValueException")
        assert body["message"].startswith(INVALID_TOKEN)
        assert Runs(b"j" * 32).live(second.token, INV) is None  # another key: forged
        runs.end(second)
        assert runs.live(second.token, INV) is None

    asyncio.run(main())
