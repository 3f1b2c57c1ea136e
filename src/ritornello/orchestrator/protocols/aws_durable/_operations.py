"""AWS durable operations <-> Ritornello journal entries: pure, no I/O.

An AWS durable function reports what it does as operation *updates* (``START``, ``SUCCEED``,
``FAIL``, ``RETRY``, ``CANCEL`` of a ``STEP``, ``WAIT``, ``CALLBACK`` or ``CONTEXT``) through the
checkpoint API, and reads back *operations* (the state each update left). Here each update is
journaled as one entry of the invocation, in the order it was checkpointed, so the journal is the
execution's history and the operations are a fold over it (``operations``). Entries carry the
update as sent (``aws``) and when it was journaled (``at``, Unix ms):

===================================  ==========================================================
update                               entry
===================================  ==========================================================
WAIT START (``WaitSeconds``)         ``sleep`` with ``duration_ms``: a durable timer; the wait
                                     has SUCCEEDED once the timer's completion is journaled
STEP RETRY (``NextAttemptDelay…``)   ``sleep`` likewise: the step is PENDING, then READY
CHAINED_INVOKE START                 ``call`` of the handler its FunctionName names (a
                                     registered durable function's ``SERVICE/run``, or
                                     ``Service/handler``); the call's result completes it
CALLBACK START                       ``awakeable`` whose id is the callback id: resolved or
                                     rejected through the callback API or Ritornello's
                                     awakeable paths alike; then a ``sleep`` per timeout
                                     option; TIMED_OUT when the awakeable's completion is a
                                     timeout (``_callbacks``)
EXECUTION SUCCEED / FAIL             ``output``: the execution's result (one too large for the
                                     function's answer), ending the invocation
any other (step, context, cancel)    ``run``: its ``value`` the update's payload (parsed when it
                                     is JSON), or its ``failure`` the update's error
===================================  ==========================================================

Entry names read ``TYPE ACTION name`` (``STEP SUCCEED charge``) so the journal view shows each
operation's kind and name; ``at`` and the timers' ``wake_at`` give its timing.

Invariants: an update is journaled only once it is validated (``UpdateError`` otherwise: the
caller answers 400 and nothing is stored); the fold depends on the journal and its completions
alone, so every replay of an execution reads the same operations; timestamps are Unix ms here
(``to_wire`` makes them the seconds botocore reads).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from ritornello.protocol import Entry, derive_id, new_awakeable_id

from ..._json import dumps, loads
from ._callbacks import live_timers, timed_out, timeout_entries
from ._deadline import TIMED_OUT
from ._stop import is_stopped

OPERATION_TYPES: Final = frozenset({"STEP", "WAIT", "CALLBACK", "CONTEXT", "CHAINED_INVOKE"})
#: Known to the API but not carried by this backend yet (docs/aws-durable.md).
UNSUPPORTED_TYPES: Final[frozenset[str]] = frozenset()
ACTIONS: Final = frozenset({"START", "SUCCEED", "FAIL", "RETRY", "CANCEL"})
#: Longest operation id, name or type accepted (AWS: 256 characters for ids and names).
MAX_ID_CHARS: Final = 256
#: Longest wait or retry delay, in seconds (AWS: 31622400, one leap year).
MAX_WAIT_S: Final = 31_622_400
_STRINGS: Final = ("ParentId", "Name", "SubType", "Payload")


class UpdateError(ValueError):
    """A checkpoint's updates are malformed or ask what this backend does not do."""


def check_updates(raw: Any) -> list[dict[str, Any]]:
    """The ``Updates`` of a checkpoint request, validated (``UpdateError`` says what is wrong)."""
    if not isinstance(raw, list):
        raise UpdateError("Updates must be a list of operation updates")
    out = []
    for n, update in enumerate(raw):
        where = f"Updates[{n}]"
        if not isinstance(update, dict):
            raise UpdateError(f"{where} must be an object")
        op_id, kind, action = update.get("Id"), update.get("Type"), update.get("Action")
        if not isinstance(op_id, str) or not 0 < len(op_id) <= MAX_ID_CHARS:
            raise UpdateError(f"{where}.Id must be a string of 1 to {MAX_ID_CHARS} characters")
        if kind in UNSUPPORTED_TYPES:
            raise UpdateError(f"{where}: {kind} updates are not supported by this backend yet")
        if kind == "EXECUTION" and action not in ("SUCCEED", "FAIL"):
            raise UpdateError(f"{where}: an EXECUTION update is a SUCCEED or a FAIL")
        if kind not in OPERATION_TYPES and kind != "EXECUTION":
            raise UpdateError(f"{where}.Type must be one of {sorted(OPERATION_TYPES)}")
        if action not in ACTIONS:
            raise UpdateError(f"{where}.Action must be one of {sorted(ACTIONS)}")
        for name in _STRINGS:
            if name in update and not isinstance(update[name], str):
                raise UpdateError(f"{where}.{name} must be a string")
        for name in ("Name", "ParentId", "SubType"):
            if len(update.get(name) or "") > MAX_ID_CHARS:
                raise UpdateError(f"{where}.{name} is longer than {MAX_ID_CHARS} characters")
        error = update.get("Error")
        if error is not None and not isinstance(error, dict):
            raise UpdateError(f"{where}.Error must be an object")
        if kind == "WAIT" and action == "START":
            _seconds(update, "WaitOptions", "WaitSeconds", where, 1, required=True)
        if kind == "STEP" and action == "RETRY":
            _seconds(update, "StepOptions", "NextAttemptDelaySeconds", where, 0)
        if kind == "CALLBACK" and action == "START" and "CallbackOptions" in update:
            for field in ("TimeoutSeconds", "HeartbeatTimeoutSeconds"):
                _seconds(update, "CallbackOptions", field, where, 0)
        if kind == "CHAINED_INVOKE" and action == "START":
            options = update.get("ChainedInvokeOptions")
            target = options.get("FunctionName") if isinstance(options, dict) else None
            if not isinstance(target, str) or not 0 < len(target) <= MAX_ID_CHARS:
                raise UpdateError(f"{where}.ChainedInvokeOptions.FunctionName must be a name")
        if action == "RETRY" and kind != "STEP":
            raise UpdateError(f"{where}: only a STEP is retried")
        out.append(update)
    return out


def _seconds(
    update: dict[str, Any], options: str, field: str, where: str, least: int, required: bool = False
) -> int:
    given = update.get(options)
    value = given.get(field, None if required else least) if isinstance(given, dict) else None
    if not isinstance(value, int) or isinstance(value, bool) or not least <= value <= MAX_WAIT_S:
        raise UpdateError(
            f"{where}.{options}.{field} must be an integer from {least} to {MAX_WAIT_S}"
        )
    return value


def ends(updates: list[dict[str, Any]]) -> bool:
    """Whether validated ``updates`` end the execution (an EXECUTION SUCCEED or FAIL: its
    result, too large for the function's answer, checkpointed instead)."""
    return any(u["Type"] == "EXECUTION" for u in updates)


def entries_of(
    updates: list[dict[str, Any]],
    invocation_id: str,
    first_index: int,
    now_ms: int,
    target_of: Callable[[str], str | None] = lambda _: None,
) -> list[Entry]:
    """The journal entries for validated ``updates``, the first at ``first_index``; an
    EXECUTION update is the ``output`` entry, last. ``target_of(FunctionName)``: the
    ``Service/handler`` a chained invoke calls (None: ``UpdateError``, nothing called)."""
    out: list[Entry] = []
    final: dict[str, Any] | None = None
    for update in updates:
        kind, action = update["Type"], update["Action"]
        if kind == "EXECUTION":
            if action == "SUCCEED":
                payload = update.get("Payload")
                final = {"kind": "output", "value": None if not payload else _shown(payload)}
            else:
                error = update.get("Error") or {}
                failure = {"code": 500, "message": _error_text(error), "aws": error}
                final = {"kind": "output", "failure": failure}
            continue
        entry: dict[str, Any] = {
            "kind": "run",
            "name": f"{kind} {action} {update.get('Name') or update['Id']}",
            "aws": update,
            "at": now_ms,
        }
        if kind == "WAIT" and action == "START":
            entry["kind"] = "sleep"
            entry["duration_ms"] = update["WaitOptions"]["WaitSeconds"] * 1000
        elif kind == "STEP" and action == "RETRY":
            entry["kind"] = "sleep"
            delay = (update.get("StepOptions") or {}).get("NextAttemptDelaySeconds", 0)
            entry["duration_ms"] = delay * 1000
        elif kind == "CHAINED_INVOKE" and action == "START":
            function = update["ChainedInvokeOptions"]["FunctionName"]
            target = target_of(function)
            if target is None:
                raise UpdateError(f"no durable function nor handler {function!r} is registered")
            payload = update.get("Payload")
            # the core calls what the name says (its journal view shows the call's target)
            entry.update(kind="call", name=target, input=_shown(payload) if payload else None)
            entry["id"] = derive_id(invocation_id, first_index + len(out))  # the callee's id
        elif kind == "CALLBACK" and action == "START":
            entry["kind"] = "awakeable"
            entry["id"] = new_awakeable_id(invocation_id, first_index + len(out))
            out.append(entry)  # type: ignore[arg-type]
            timers = timeout_entries(update, invocation_id, first_index + len(out) - 1, now_ms)
            out.extend(timers)  # type: ignore[arg-type]
            continue
        elif "Payload" in update:
            entry["value"] = _shown(update["Payload"])
        elif action == "FAIL":
            entry["failure"] = {"code": 500, "message": _error_text(update.get("Error") or {})}
        out.append(entry)  # type: ignore[arg-type]
    if final is not None:
        out.append(final)  # type: ignore[arg-type]
    return out


def _shown(payload: str) -> Any:
    """A payload as the journal view shows it: parsed when it is JSON, else the text."""
    try:
        return loads(payload)
    except ValueError:
        return payload


def _error_text(error: dict[str, Any]) -> str:
    kind, message = error.get("ErrorType"), error.get("ErrorMessage")
    return ": ".join(str(p) for p in (kind, message) if p) or "failed"


def execution_operation(execution_id: str, input_value: Any, started_ms: int) -> dict[str, Any]:
    """The EXECUTION operation: its id is the last part of the execution's ARN (the SDK reads
    the input from it)."""
    return {
        "Id": execution_id,
        "Type": "EXECUTION",
        "Status": "STARTED",
        "StartTimestamp": started_ms,
        "ExecutionDetails": {"InputPayload": dumps(input_value)},
    }


def operations(
    execution_id: str, entries: list[str], completions: dict[int, str], started_ms: int
) -> dict[str, dict[str, Any]]:
    """Every operation of an execution, by id (in the order first seen; the EXECUTION first),
    folded from its journal texts and the completions of its waiting entries."""
    first = loads(entries[0]) if entries else {}
    ops = {execution_id: execution_operation(execution_id, first.get("value"), started_ms)}
    for index, text in enumerate(entries[1:], start=1):
        entry = loads(text)
        update = entry.get("aws")
        if not isinstance(update, dict):
            continue  # not an operation (a cancellation's marker, say)
        done = completions.get(index)
        _apply(ops, entry, update, loads(done) if done is not None else None)
    return ops


def _apply(
    ops: dict[str, dict[str, Any]],
    entry: dict[str, Any],
    update: dict[str, Any],
    done: dict[str, Any] | None,
) -> None:
    """Fold one journaled update (and its entry's completion, if any) into ``ops``."""
    op_id, kind, action, at = update["Id"], update["Type"], update["Action"], entry.get("at")
    op = ops.get(op_id)
    if op is None:
        op = ops[op_id] = {"Id": op_id, "Type": kind, "StartTimestamp": at}
        for name in ("ParentId", "Name", "SubType"):
            if update.get(name):
                op[name] = update[name]
        if kind == "STEP":
            op["StepDetails"] = {"Attempt": 0}
    if action == "START" and kind == "CHAINED_INVOKE":
        invoked: dict[str, Any] = {}
        op["Status"], op["ChainedInvokeDetails"] = "STARTED", invoked
        if done is not None and "failure" in done:
            failure = done["failure"]
            message = str(failure.get("message"))
            invoked["Error"] = {"ErrorType": "InvokeError", "ErrorMessage": message}
            op["Status"] = "FAILED"
            if failure.get("timed_out") == TIMED_OUT:  # the callee's execution timeout
                op["Status"], invoked["Error"] = "TIMED_OUT", failure["aws"]
            if is_stopped(failure):  # an operator stopped the callee (StopDurableExecution)
                op["Status"] = "STOPPED"
                if isinstance(failure.get("aws"), dict):  # with the Error the stop gave
                    invoked["Error"] = failure["aws"]
        elif done is not None:
            invoked["Result"] = dumps(done.get("value"))
            op["Status"] = "SUCCEEDED"
    elif action == "START":
        op["Status"] = "STARTED"
        if kind == "WAIT":
            op["WaitDetails"] = {"ScheduledEndTimestamp": entry.get("wake_at")}
            if done is not None:
                op.update(Status="SUCCEEDED", EndTimestamp=entry.get("wake_at"))
        elif kind == "CALLBACK":
            details: dict[str, Any] = {"CallbackId": entry.get("id")}
            op["CallbackDetails"] = details
            expired = timed_out(done)
            if done is not None and expired is not None:
                details["Error"] = done["failure"]["aws"]
                op.update(Status="TIMED_OUT", EndTimestamp=expired[0])
            elif done is not None and "failure" in done:
                failure = done["failure"]
                details["Error"] = failure.get("aws") or {
                    "ErrorType": "CallbackError",
                    "ErrorMessage": str(failure.get("message")),
                }
                op["Status"] = "FAILED"
            elif done is not None:
                text = done.get("text")  # as sent to the callback API, else the JSON value
                details["Result"] = text if isinstance(text, str) else dumps(done.get("value"))
                op["Status"] = "SUCCEEDED"
    elif action in ("SUCCEED", "FAIL"):
        op["Status"] = "SUCCEEDED" if action == "SUCCEED" else "FAILED"
        op["EndTimestamp"] = at
        key = "Result" if action == "SUCCEED" else "Error"
        value = update.get("Payload") if action == "SUCCEED" else update.get("Error")
        if kind == "STEP":
            op["StepDetails"].pop("NextAttemptTimestamp", None)
            if value is not None:
                op["StepDetails"][key] = value
        elif kind == "CONTEXT":
            context: dict[str, Any] = {}
            if value is not None:
                context[key] = value
            if (update.get("ContextOptions") or {}).get("ReplayChildren"):
                context["ReplayChildren"] = True
            op["ContextDetails"] = context
        elif kind == "CALLBACK" and value is not None:
            op.setdefault("CallbackDetails", {})[key] = value
    elif action == "RETRY":
        step = op["StepDetails"]
        step["Attempt"] = step.get("Attempt", 0) + 1
        step["NextAttemptTimestamp"] = entry.get("wake_at")
        if update.get("Error") is not None:
            step["Error"] = update["Error"]
        if update.get("Payload") is not None:  # wait_for_condition: the state polled so far
            step["Result"] = update["Payload"]
        else:
            step.pop("Result", None)
        op["Status"] = "READY" if done is not None else "PENDING"
    elif action == "CANCEL":
        op.update(Status="CANCELLED", EndTimestamp=at)


def waiting(entries: list[str], completions: dict[int, str], first: int = 1) -> list[int]:
    """Indices of the operations' entries still waiting for a completion (timers, callbacks,
    and the running timeout timers of open callbacks)."""
    live = live_timers(entries, completions)
    out = []
    for index in range(first, len(entries)):
        if index in completions:
            continue
        if index in live:
            out.append(index)
            continue
        entry = loads(entries[index])
        kind = entry.get("kind")
        if "aws" in entry and kind in ("sleep", "awakeable", "call"):
            out.append(index)
    return out


#: Operation fields holding Unix-ms timestamps (at the top, or in one of its details).
_TIMES: Final = (
    (None, "StartTimestamp"),
    (None, "EndTimestamp"),
    ("StepDetails", "NextAttemptTimestamp"),
    ("WaitDetails", "ScheduledEndTimestamp"),
)


def to_wire(op: dict[str, Any]) -> dict[str, Any]:
    """An operation as a rest-json answer carries it: timestamps in epoch seconds."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in op.items()}
    for details, name in _TIMES:
        holder = out if details is None else out.get(details)
        if isinstance(holder, dict):
            if holder.get(name) is None:
                holder.pop(name, None)
            else:
                holder[name] = holder[name] / 1000
    return out
