"""Execution timeouts (``protocols.aws_durable._deadline``): the registration's value checked as
Lambda's model bounds it, kept in the stored discovery, the deadline's timer entry found where
it is journaled, the timed-out result told from a failure, and the history's events; pure,
without processes (the engine and the SDK as real processes: tests/integration/
test_aws_durable.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ritornello.orchestrator.core import completion_text
from ritornello.orchestrator.protocols.aws_durable import (
    MAX_TIMEOUT_S,
    Runs,
    check_timeout,
    check_updates,
    deadline_of,
    discovery,
    execution_timeout_of,
    history,
    is_timed_out,
)
from ritornello.orchestrator.protocols.aws_durable._deadline import (
    Deadline,
    deadline_entry,
    needs_deadline,
    timed_out_result,
    with_deadline,
)
from ritornello.orchestrator.protocols.aws_durable._operations import entries_of, operations
from ritornello.protocol import DiscoveryResponse

INV = "inv_aaaaaaaaaaaaaaaaaaaaaaaaaa"
FN = "arn:aws:lambda:us-east-1:123456789012:function:timed:1"
INPUT = json.dumps({"kind": "input", "value": {"order": 1}})


def _journaled(seconds: int, now_ms: int) -> str:
    """The deadline entry as the core journals it (it adds ``wake_at``)."""
    entry = deadline_entry(seconds, now_ms)
    return json.dumps({**entry, "wake_at": now_ms + entry["duration_ms"]})


def test_the_timeout_is_an_integer_within_lambdas_bounds() -> None:
    assert check_timeout(None) is None
    assert check_timeout(1) == 1
    assert check_timeout(MAX_TIMEOUT_S) == MAX_TIMEOUT_S == 31_622_400  # Lambda's model
    for bad in (0, -5, MAX_TIMEOUT_S + 1, 2.5, 2.0, "10", True, [3], {"s": 3}):
        with pytest.raises(ValueError, match="from 1 to 31622400") as caught:
            check_timeout(bad)
        assert json.dumps(bad, separators=(",", ":"))[:10] in str(caught.value)  # what came


def test_the_timeout_rides_in_the_stored_discovery() -> None:
    """Kept in ``wire_info``: what the store holds and every orchestrator reads back."""
    kept = DiscoveryResponse.decode(discovery("Orders", 30).encode())
    assert execution_timeout_of(kept) == 30
    assert kept.services[0].name == "Orders" and kept.wire == "aws-durable"
    plain = DiscoveryResponse.decode(discovery("Orders").encode())
    assert execution_timeout_of(plain) is None and plain.wire_info in ({}, None)
    # a value that is not a count of seconds (a hand-edited store) is no timeout
    odd = DiscoveryResponse.decode(discovery("Orders").encode()).replace(
        wire_info={"execution_timeout_s": True}
    )
    assert execution_timeout_of(odd) is None


def test_the_deadline_is_journaled_before_anything_else_and_found_at_index_1() -> None:
    assert needs_deadline([INPUT], 2)
    assert not needs_deadline([INPUT], None)  # registered without the option
    # an execution started before the option was set (something journaled already) gets none
    assert not needs_deadline([INPUT, json.dumps({"kind": "run", "aws": {}})], 2)
    entry = deadline_entry(2, 1_000)
    assert entry["kind"] == "sleep" and entry["duration_ms"] == 2_000 and "aws" not in entry
    assert deadline_of([INPUT, _journaled(2, 1_000)]) == Deadline(1, 2, 3_000)
    assert deadline_of([INPUT]) is None
    # only index 1 holds it: the same entry elsewhere is not the execution's deadline
    other = json.dumps({"kind": "run", "aws": {"Id": "a"}})
    assert deadline_of([INPUT, other, _journaled(2, 1_000)]) is None
    # a callback's timer is not the execution's deadline
    callback_timer = json.dumps(
        {"kind": "sleep", "duration_ms": 1, "callback_timeout": {"of": 1}, "wake_at": 5}
    )
    assert deadline_of([INPUT, callback_timer]) is None
    # not yet journaled by the core (no wake_at): no deadline to read
    assert deadline_of([INPUT, json.dumps(deadline_entry(2, 1_000))]) is None


def test_every_suspension_waits_on_the_deadline_once() -> None:
    deadline = Deadline(1, 2, 3_000)
    assert with_deadline([4, 7], deadline) == [4, 7, 1]
    assert with_deadline([1, 4], deadline) == [1, 4]
    assert with_deadline([4], None) == [4]


def test_a_timed_out_result_is_told_from_a_failure() -> None:
    failure = timed_out_result(2)
    assert failure["aws"] == {
        "ErrorType": "Execution.Timeout",
        "ErrorMessage": "Execution timed out after 2 s",
    }
    assert failure["code"] == 500 and failure["message"].startswith("Execution.Timeout: ")
    assert is_timed_out(json.dumps({"failure": failure}))
    assert not is_timed_out(None)
    assert not is_timed_out(json.dumps({"value": {"timed_out": "EXECUTION"}}))
    # a function's own failure, or a callback's timeout, is no execution timeout
    own = {"code": 500, "message": "x", "aws": {"ErrorMessage": '"timed_out": "EXECUTION"'}}
    assert not is_timed_out(json.dumps({"failure": own}))
    callback = {"code": 408, "message": "Callback timed out", "timed_out": "TIMEOUT"}
    assert not is_timed_out(json.dumps({"failure": callback}))


def test_the_history_ends_with_execution_timed_out_and_shows_no_timer() -> None:
    wait = {
        "kind": "sleep",
        "name": "WAIT START pause",
        "duration_ms": 30_000,
        "wake_at": 31_100,
        "at": 1_100,
        "aws": {"Id": "w1", "Type": "WAIT", "Action": "START", "Name": "pause"},
    }
    entries = [INPUT, _journaled(2, 1_000), json.dumps(wait)]
    result = json.dumps({"failure": timed_out_result(2)})
    done = {1: json.dumps({"index": 1, "value": None})}  # the deadline's timer fired
    events: list[dict[str, Any]] = history(INV, entries, done, 1_000, ("TimedOut", 3_000), result)
    assert [e["EventType"] for e in events] == [
        "ExecutionStarted",
        "WaitStarted",
        "ExecutionTimedOut",
    ]
    assert events[0]["ExecutionStartedDetails"]["ExecutionTimeout"] == 2
    last = events[-1]
    assert last["EventTimestamp"] == 3_000 and last["Id"] == INV
    assert last["ExecutionTimedOutDetails"] == {"Error": {"Payload": timed_out_result(2)["aws"]}}
    # without a deadline: no ExecutionTimeout in the start event, as before
    plain = history(INV, [INPUT, json.dumps(wait)], {}, 1_000, None)
    assert "ExecutionTimeout" not in plain[0]["ExecutionStartedDetails"]


def test_a_callee_that_timed_out_is_a_timed_out_chained_invoke() -> None:
    """The caller's operation is TIMED_OUT with the callee's Error and its history has
    ChainedInvokeTimedOut (not a CallbackTimedOut: the failure's ``timed_out`` mark is the
    execution's); a callee's own failure stays FAILED."""
    runs = Runs(b"k" * 32)
    runs.functions[FN] = "Timed"
    update = {
        "Id": "i",
        "Type": "CHAINED_INVOKE",
        "Action": "START",
        "ChainedInvokeOptions": {"FunctionName": "timed"},
    }
    (entry,) = entries_of(check_updates([update]), INV, 1, 0, runs.target_of)
    texts = [INPUT, json.dumps(entry)]
    invoke_error = {"ErrorType": "InvokeError", "ErrorMessage": "ValueError: no"}
    own = {"code": 500, "message": "ValueError: no", "aws": {"ErrorType": "ValueError"}}
    for failure, status, error, event_type in (
        (timed_out_result(2), "TIMED_OUT", timed_out_result(2)["aws"], "ChainedInvokeTimedOut"),
        (own, "FAILED", invoke_error, "ChainedInvokeFailed"),
    ):
        done = {1: completion_text(1, json.dumps({"failure": failure}))}
        op = operations(INV, texts, done, 0)["i"]
        assert op["Status"] == status and op["ChainedInvokeDetails"] == {"Error": error}, op
        events = history(INV, texts, done, 0, None, None, {"Timed": FN})
        assert events[2]["EventType"] == event_type, events
        assert events[2][event_type + "Details"] == {"Error": {"Payload": failure["aws"]}}
