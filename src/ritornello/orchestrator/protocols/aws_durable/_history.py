"""An execution's history (GetDurableExecutionHistory) from its journal: pure, no I/O.

One event per journaled operation update (``StepStarted``, ``StepSucceeded``, ``WaitStarted``,
...), one per completion of a wait or callback (at the place its entry holds), and the
execution's own ``ExecutionStarted`` first and ``ExecutionSucceeded`` / ``ExecutionFailed`` /
``ExecutionStopped`` last when it ended. Event ids count from 1 in that order; timestamps are
Unix ms (the API answers seconds). Event details beyond ids, names and times are not given yet.
"""

from __future__ import annotations

from typing import Any, Final

from ..._json import loads

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


def history(
    execution_id: str,
    entries: list[str],
    completions: dict[int, str],
    started_ms: int,
    ended: tuple[str, int] | None,
) -> list[dict[str, Any]]:
    """The events of an execution; ``ended``: (``Succeeded`` | ``Failed`` | ``Stopped``, Unix
    ms) once it ended."""
    events: list[dict[str, Any]] = [
        {"EventType": "ExecutionStarted", "Id": execution_id, "EventTimestamp": started_ms}
    ]
    for index, text in enumerate(entries[1:], start=1):
        entry = loads(text)
        update = entry.get("aws")
        if not isinstance(update, dict):
            continue
        kind = _KIND.get(update.get("Type", ""), "Step")
        base = {"Id": update.get("Id")}
        for name in ("Name", "ParentId", "SubType"):
            if update.get(name):
                base[name] = update[name]
        past = _PAST.get(update.get("Action", ""), "Started")
        events.append({"EventType": kind + past, **base, "EventTimestamp": entry.get("at")})
        done = completions.get(index)
        if done is None or entry.get("kind") not in ("sleep", "awakeable", "call"):
            continue
        if entry.get("kind") == "sleep":
            if kind == "Wait":
                events.append(
                    {"EventType": "WaitSucceeded", **base, "EventTimestamp": entry.get("wake_at")}
                )
            continue
        outcome = "Failed" if "failure" in loads(done) else "Succeeded"
        events.append({"EventType": kind + outcome, **base})
    if ended is not None:
        events.append(
            {"EventType": "Execution" + ended[0], "Id": execution_id, "EventTimestamp": ended[1]}
        )
    for n, event in enumerate(events, start=1):
        event["EventId"] = n
        if event.get("EventTimestamp") is None:
            event.pop("EventTimestamp", None)
    return events
