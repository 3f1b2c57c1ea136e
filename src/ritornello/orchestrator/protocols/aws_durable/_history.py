"""An execution's history (GetDurableExecutionHistory) from its journal: pure, no I/O.

One event per journaled operation update (``StepStarted``, ``StepSucceeded``, ``WaitStarted``,
...), one per completion of a wait, callback or chained invoke, one ``InvocationCompleted`` per
run (Lambda invocation) that ended by suspending or ending the execution (the adapter's
``invocation_completed`` marker entries), and the execution's own ``ExecutionStarted`` first and
``ExecutionSucceeded`` / ``ExecutionFailed`` / ``ExecutionStopped`` / ``ExecutionTimedOut`` last
when it ended (an execution timeout's timer entry has no event: its seconds are
``ExecutionStartedDetails.ExecutionTimeout``). Each event carries its ``<EventType>Details``
in Lambda's shapes (payloads as the SDK sent them).

Event ids count from 1 in that order. A completion is placed after the first
``InvocationCompleted`` that follows its operation's entry (the run suspended on it; its
completion is what invoked the function again), or right after the entry when no run ended in
between (it completed while the run went on). A completion's time is when the callback API
completed it, else (a call's result, an awakeable path) the start of the run that followed it
(it happened no later). Timestamps are Unix ms here (the API answers
seconds): ``EventTimestamp`` and ``InvocationCompletedDetails``' ``StartTimestamp`` /
``EndTimestamp``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from ..._json import dumps, loads
from ._adapter import execution_arn
from ._callbacks import timed_out
from ._deadline import MARK, TIMED_OUT
from ._stop import is_stopped

_PAST: Final = {
    "START": "Started",
    "SUCCEED": "Succeeded",
    "FAIL": "Failed",
    "RETRY": "Failed",  # a failed attempt that will be retried
    "CANCEL": "Cancelled",
}
_KIND: Final = {
    "STEP": "Step",
    "WAIT": "Wait",
    "CALLBACK": "Callback",
    "CONTEXT": "Context",
    "CHAINED_INVOKE": "ChainedInvoke",
}
#: Event detail fields holding Unix-ms timestamps (the API makes them seconds).
TIMESTAMPS: Final = (
    ("InvocationCompletedDetails", "StartTimestamp"),
    ("InvocationCompletedDetails", "EndTimestamp"),
    ("WaitStartedDetails", "ScheduledEndTimestamp"),
)


def history(
    execution_id: str,
    entries: list[str],
    completions: dict[int, str],
    started_ms: int,
    ended: tuple[str, int] | None,
    result: str | None = None,
    function_arns: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """The events of an execution; ``ended``: (``Succeeded`` | ``Failed`` | ``Stopped`` |
    ``TimedOut``, Unix ms) once it ended, ``result``: the invocation's stored result text then;
    ``function_arns``: the registered durable functions' ARNs by service (a chained invoke's
    callee execution)."""
    first = loads(entries[0]) if entries else {}
    events: list[dict[str, Any]] = [
        {
            "EventType": "ExecutionStarted",
            "Id": execution_id,
            "EventTimestamp": started_ms,
            "ExecutionStartedDetails": {"Input": {"Payload": dumps(first.get("value"))}},
        }
    ]
    completed: list[tuple[int, dict[str, Any]]] = []  # (events before it, its event)
    runs: list[tuple[int, int, int]] = []  # InvocationCompleted: (its position, start, end)
    attempts: dict[str, int] = {}
    for index, text in enumerate(entries[1:], start=1):
        entry = loads(text)
        run = entry.get("invocation_completed")
        if isinstance(run, dict):
            runs.append((len(events), int(run.get("start") or 0), int(run.get("end") or 0)))
            completed_details = {"StartTimestamp": run.get("start"), "EndTimestamp": run.get("end")}
            if isinstance(run.get("error"), dict):  # a failed run (a runtime exit, say)
                completed_details["Error"] = {"Payload": run["error"]}
            events.append(
                {
                    "EventType": "InvocationCompleted",
                    "EventTimestamp": entry.get("at"),
                    "InvocationCompletedDetails": completed_details,
                }
            )
            continue
        mark = entry.get(MARK)  # the execution timeout's timer (``_deadline``): no event
        if index == 1 and isinstance(mark, dict):
            events[0]["ExecutionStartedDetails"]["ExecutionTimeout"] = mark.get("seconds")
        update = entry.get("aws")
        if not isinstance(update, dict):
            continue
        kind = _KIND.get(update.get("Type", ""), "Step")
        base = {"Id": update.get("Id")}
        for name in ("Name", "ParentId", "SubType"):
            if update.get(name):
                base[name] = update[name]
        action = update.get("Action", "")
        past = _PAST.get(action, "Started")
        if action == "RETRY" and update.get("Error") is None:
            past = "Succeeded"  # a poll of wait_for_condition: its state, polled again later
        event_type = kind + past
        details = _details(update, entry, attempts, function_arns or {})
        events.append(
            {
                "EventType": event_type,
                **base,
                "EventTimestamp": entry.get("at"),
                event_type + "Details": details,
            }
        )
        done = completions.get(index)
        if done is None or entry.get("kind") not in ("sleep", "awakeable", "call"):
            continue
        completion = _completion(kind, update, entry, loads(done))
        if completion is not None:
            completed.append((len(events), {**base, **completion}))
    placed = [(_place(after, event, runs, len(events)), event) for after, event in completed]
    for at, event in sorted(placed, key=lambda p: (-p[0], -(p[1].get("EventTimestamp") or 0))):
        events.insert(at, event)
    if ended is not None:
        events.append(_end(execution_id, ended, result))
    for n, event in enumerate(events, start=1):
        event["EventId"] = n
        if event.get("EventTimestamp") is None:
            event.pop("EventTimestamp", None)
    return events


def _place(after: int, event: dict[str, Any], runs: list[tuple[int, int, int]], total: int) -> int:
    """Where a completion goes among the ``total`` events (``after``: how many precede its
    operation's event; ``runs``: the InvocationCompleted events' positions, starts and ends):
    after the last run that ended before it happened, else in the run it happened in (before
    that run's end). One whose time is unknown (a call's result) goes after the first run
    that ended after its operation started, and is timed by the start of the run that
    followed (it happened no later)."""
    following = [run for run in runs if run[0] >= after]
    if not following:
        return total
    time = event.get("EventTimestamp")
    if time is None:
        later = [run for run in runs if run[0] > following[0][0]]
        if later:
            event["EventTimestamp"] = later[0][1]
        return following[0][0] + 1
    ended = [run for run in following if run[2] <= time]
    return ended[-1][0] + 1 if ended else following[0][0]


def _details(
    update: dict[str, Any],
    entry: dict[str, Any],
    attempts: dict[str, int],
    function_arns: Mapping[str, str],
) -> dict[str, Any]:
    """The ``<EventType>Details`` of one journaled update."""
    kind, action = update.get("Type"), update.get("Action")
    out: dict[str, Any] = {}
    if action == "START":
        if kind == "WAIT":
            out["Duration"] = (update.get("WaitOptions") or {}).get("WaitSeconds")
            if isinstance(entry.get("wake_at"), int):
                out["ScheduledEndTimestamp"] = entry["wake_at"]
        elif kind == "CALLBACK":
            out["CallbackId"] = entry.get("id")
            options = update.get("CallbackOptions") or {}
            for theirs, ours in (
                ("TimeoutSeconds", "Timeout"),
                ("HeartbeatTimeoutSeconds", "HeartbeatTimeout"),
            ):
                if options.get(theirs):
                    out[ours] = options[theirs]
        elif kind == "CHAINED_INVOKE":
            options = update.get("ChainedInvokeOptions") or {}
            out["FunctionName"] = options.get("FunctionName")
            if options.get("TenantId"):
                out["TenantId"] = options["TenantId"]  # as asked: tenancy is not enforced
            if update.get("Payload") is not None:
                out["Input"] = {"Payload": update["Payload"]}
            callee = function_arns.get(str(entry.get("name")).partition("/")[0])
            if callee is not None:  # a durable function: the callee's execution
                out["ExecutedVersion"] = callee.rpartition(":")[2]
                out["DurableExecutionArn"] = execution_arn(callee, str(entry.get("id")))
        return out
    if update.get("Payload") is not None and action in ("SUCCEED", "RETRY"):
        out["Result"] = {"Payload": update["Payload"], "Truncated": False}  # kept whole
    if update.get("Error") is not None:
        out["Error"] = {"Payload": update["Error"]}
    if kind == "STEP" and action in ("SUCCEED", "FAIL", "RETRY"):
        op_id = str(update.get("Id"))
        attempts[op_id] = attempts.get(op_id, 0) + 1
        retry: dict[str, Any] = {"CurrentAttempt": attempts[op_id]}
        if action == "RETRY":
            delay = (update.get("StepOptions") or {}).get("NextAttemptDelaySeconds")
            retry["NextAttemptDelaySeconds"] = delay
        out["RetryDetails"] = retry
    return out


def _completion(
    kind: str, update: dict[str, Any], entry: dict[str, Any], done: dict[str, Any]
) -> dict[str, Any] | None:
    """The event of a completed wait, callback or chained invoke (None: a step's retry timer,
    which is no event of its own)."""
    if entry.get("kind") == "sleep":
        if kind != "Wait":
            return None
        seconds = (update.get("WaitOptions") or {}).get("WaitSeconds")
        return {
            "EventType": "WaitSucceeded",
            "EventTimestamp": entry.get("wake_at"),
            "WaitSucceededDetails": {"Duration": seconds},
        }
    failure = done.get("failure")
    expired = timed_out(done) if kind == "Callback" else None
    if expired is not None and isinstance(failure, dict):  # its timeout completed it
        return {
            "EventType": "CallbackTimedOut",
            "EventTimestamp": expired[0],
            "CallbackTimedOutDetails": {"Error": {"Payload": failure["aws"]}},
        }
    if isinstance(failure, dict):
        error = failure.get("aws") or {
            "ErrorType": "CallbackError" if kind == "Callback" else "InvokeError",
            "ErrorMessage": str(failure.get("message")),
        }
        past = "Failed"
        if kind == "ChainedInvoke" and is_stopped(failure):
            past = "Stopped"
        elif kind == "ChainedInvoke" and failure.get("timed_out") == TIMED_OUT:
            past = "TimedOut"  # the callee's execution timeout (``_deadline``)
        out = {"EventType": kind + past, kind + past + "Details": {"Error": {"Payload": error}}}
    else:
        text = done.get("text")  # a callback's result as sent, else the JSON value
        payload = text if isinstance(text, str) else dumps(done.get("value"))
        out = {
            "EventType": kind + "Succeeded",
            kind + "SucceededDetails": {"Result": {"Payload": payload}},
        }
    if isinstance(done.get("at"), int):  # when the callback API completed it
        out["EventTimestamp"] = done["at"]
    return out


def _end(execution_id: str, ended: tuple[str, int], result: str | None) -> dict[str, Any]:
    """The execution's terminal event."""
    outcome, at = ended
    details: dict[str, Any] = {}
    stored = loads(result) if result else {}
    if outcome == "Succeeded":
        details["Result"] = {"Payload": dumps(stored.get("value"))}
    elif isinstance(stored.get("failure"), dict):
        failure = stored["failure"]  # the function's error as it sent it, when it did
        error = failure.get("aws") or {"ErrorMessage": str(failure.get("message"))}
        details["Error"] = {"Payload": error}
    return {
        "EventType": "Execution" + outcome,
        "Id": execution_id,
        "EventTimestamp": at,
        f"Execution{outcome}Details": details,
    }
