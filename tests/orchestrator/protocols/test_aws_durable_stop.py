"""StopDurableExecution's ``Error`` (``protocols.aws_durable._stop``): checked as Lambda's model
has it, kept in the killed invocation's failure, and read back by GetDurableExecution, the
history and a caller's chained invoke; pure, without processes (boto3 against real processes:
tests/integration/test_aws_durable.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ritornello.orchestrator.core import KILLED_RESULT, completion_text
from ritornello.orchestrator.protocols.aws_durable import (
    Runs,
    StopError,
    check_updates,
    history,
    stop_error,
    stopped_error,
    stopped_result,
)
from ritornello.orchestrator.protocols.aws_durable._operations import entries_of, operations

INV = "inv_aaaaaaaaaaaaaaaaaaaaaaaaaa"
FN = "arn:aws:lambda:us-east-1:123456789012:function:orders:1"
ERROR = {
    "ErrorMessage": "over budget",
    "ErrorType": "Budget.Exceeded",
    "ErrorData": '{"spent": 12}',
    "StackTrace": ["at a (x.py:1)", "at b (x.py:2)"],
}


def test_an_error_object_is_taken_as_lambdas_model_has_it() -> None:
    assert stop_error(json.dumps(ERROR).encode()) == ERROR
    assert stop_error(b'{"ErrorMessage": "why"}') == {"ErrorMessage": "why"}
    for nothing in (b"", b"  ", b"{}"):  # botocore sends no body when Error is not given
        assert stop_error(nothing) is None


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"not json", "not JSON"),
        (b'["a"]', "JSON object"),
        (b'"why"', "JSON object"),
        (b'{"ErrorMessage": 1}', "ErrorMessage must be a string"),
        (b'{"ErrorType": null}', "ErrorType must be a string"),
        (b'{"ErrorData": {"a": 1}}', "ErrorData must be a string"),
        (b'{"StackTrace": "at a"}', "StackTrace must be a list of strings"),
        (b'{"StackTrace": ["a", 2]}', "StackTrace must be a list of strings"),
        (b'{"Error": {"ErrorMessage": "wrapped"}}', "no member 'Error'"),
        (b'{"errorMessage": "x"}', "no member 'errorMessage'"),
        (json.dumps({"ErrorData": "x" * (1024 * 1024 + 1)}).encode(), "exceed 1,048,576"),
        (
            json.dumps({"ErrorMessage": "x" * 600_000, "StackTrace": ["y" * 600_000]}).encode(),
            "exceed",  # the fields' combined size
        ),
    ],
)
def test_a_malformed_error_is_refused(body: bytes, why: str) -> None:
    with pytest.raises(StopError, match=why):
        stop_error(body)


def test_a_stop_keeps_its_error_beside_the_kills_code_and_message() -> None:
    assert stopped_result(None) is None  # no Error: the engine's own kill, unchanged
    kept = json.loads(stopped_result(ERROR) or "")
    plain = json.loads(KILLED_RESULT)
    # what the Restate-compatible paths and a Ritornello caller read is the kill's own
    assert {k: v for k, v in kept["failure"].items() if k != "aws"} == plain["failure"]
    assert kept["failure"]["aws"] == ERROR
    # GetDurableExecution's Error of a stopped execution
    assert stopped_error(stopped_result(ERROR)) == ERROR
    assert stopped_error(KILLED_RESULT) == {"ErrorMessage": "killed by an operator"}
    assert stopped_error(None) == {"ErrorMessage": "killed by an operator"}


def test_the_stopped_executions_history_ends_with_its_error() -> None:
    texts = [json.dumps({"kind": "input", "value": 1})]
    result = stopped_result(ERROR)
    events = history(INV, texts, {}, 0, ("Stopped", 7), result)
    assert [e["EventType"] for e in events] == ["ExecutionStarted", "ExecutionStopped"]
    assert events[-1]["ExecutionStoppedDetails"] == {"Error": {"Payload": ERROR}}
    plain = history(INV, texts, {}, 0, ("Stopped", 7), KILLED_RESULT)
    assert plain[-1]["ExecutionStoppedDetails"] == {
        "Error": {"Payload": {"ErrorMessage": "killed by an operator"}}
    }


def _chained() -> list[str]:
    runs = Runs(b"k" * 32)
    runs.functions[FN] = "Orders"
    update = {
        "Id": "i",
        "Type": "CHAINED_INVOKE",
        "Action": "START",
        "ChainedInvokeOptions": {"FunctionName": "orders"},
    }
    (entry,) = entries_of(check_updates([update]), INV, 1, 0, runs.target_of)
    return [json.dumps({"kind": "input", "value": None}), json.dumps(entry)]


def _callee(result: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the chained invoke's operation, its completion event) when the callee ended so."""
    texts = _chained()
    done = {1: completion_text(1, result)}
    events = history(INV, texts, done, 0, None, None, {"Orders": FN})
    return operations(INV, texts, done, 0)["i"], events[2]


def test_a_callee_stopped_with_an_error_is_stopped_with_it() -> None:
    op, event = _callee(stopped_result(ERROR) or "")
    assert op["Status"] == "STOPPED" and op["ChainedInvokeDetails"] == {"Error": ERROR}
    assert event["EventType"] == "ChainedInvokeStopped"
    assert event["ChainedInvokeStoppedDetails"] == {"Error": {"Payload": ERROR}}
    op, event = _callee(KILLED_RESULT)  # stopped without one: as before
    assert op["Status"] == "STOPPED" and event["EventType"] == "ChainedInvokeStopped"
    killed = {"ErrorType": "InvokeError", "ErrorMessage": "killed by an operator"}
    assert op["ChainedInvokeDetails"] == {"Error": killed}
    # a callee's own failures are not stops, whatever their code
    for failure in (
        {"code": 409, "message": "cancelled"},
        {"code": 500, "message": "killed by an operator"},
        {"code": 409, "message": "no", "aws": ERROR},
    ):
        op, event = _callee(json.dumps({"failure": failure}))
        assert op["Status"] == "FAILED" and event["EventType"] == "ChainedInvokeFailed", failure
