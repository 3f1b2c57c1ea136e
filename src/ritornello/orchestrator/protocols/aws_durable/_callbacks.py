"""Callback timeouts (``TimeoutSeconds``, ``HeartbeatTimeoutSeconds``) as durable timers: pure.

A CALLBACK START with either option journals, after its ``awakeable`` entry, one ``sleep``
entry per option (a durable timer of the core, so it survives a restart), marked
``callback_timeout``: ``{"of": the awakeable's index, "heartbeat": bool}``. Such an entry is no
operation of its own (it has no ``aws`` update). A heartbeat timeout is restarted by a
heartbeat: when its timer fired after a heartbeat (``Runs.heartbeats``, in this process's
memory), the adapter journals a fresh timer for the rest of it instead of invoking the function.

Invariant: a callback has timed out when, for one of its options, the latest timer journaled
for it has completed and no completion of the callback happened before that timer's
``wake_at`` (a completion through the callback API carries its time ``at``; one without a time
counts as first). The fold, the history and the callback API read this one rule
(``timed_out``), so every replay sees the same outcome and a late completion is refused.
"""

from __future__ import annotations

from typing import Any, Final

from ..._json import loads

#: The error a timed-out callback carries (AWS's types for it), by whether a heartbeat
#: timeout fired.
TIMEOUT_ERRORS: Final = {
    False: {"ErrorType": "Callback.Timeout", "ErrorMessage": "Callback timed out"},
    True: {"ErrorType": "Callback.Heartbeat", "ErrorMessage": "Callback heartbeat timed out"},
}


def timeout_entries(update: dict[str, Any], awakeable_index: int, now_ms: int) -> list[Any]:
    """The timer entries of a CALLBACK START (none without a timeout option)."""
    options = update.get("CallbackOptions") or {}
    out = []
    for field, heartbeat in (("TimeoutSeconds", False), ("HeartbeatTimeoutSeconds", True)):
        seconds = options.get(field)
        if seconds:
            out.append(timer_entry(update, awakeable_index, seconds * 1000, heartbeat, now_ms))
    return out


def timer_entry(
    update: dict[str, Any], awakeable_index: int, duration_ms: int, heartbeat: bool, now_ms: int
) -> dict[str, Any]:
    """One callback timeout timer of ``duration_ms``."""
    what = "HEARTBEAT TIMEOUT" if heartbeat else "TIMEOUT"
    return {
        "kind": "sleep",
        "name": f"CALLBACK {what} {update.get('Name') or update['Id']}",
        "duration_ms": max(0, duration_ms),
        "callback_timeout": {"of": awakeable_index, "heartbeat": heartbeat},
        "at": now_ms,
    }


def latest_timers(entries: list[str]) -> dict[tuple[int, bool], tuple[int, dict[str, Any]]]:
    """The latest timer of each (awakeable index, heartbeat) with its index and entry."""
    out: dict[tuple[int, bool], tuple[int, dict[str, Any]]] = {}
    for index, text in enumerate(entries):
        if '"callback_timeout"' not in text:
            continue
        entry = loads(text)
        mark = entry.get("callback_timeout")
        if isinstance(mark, dict):
            out[(int(mark["of"]), bool(mark.get("heartbeat")))] = (index, entry)
    return out


def timed_out(entries: list[str], completions: dict[int, str]) -> dict[int, tuple[int, bool]]:
    """The callbacks (awakeable indices) that timed out, with when (Unix ms) and whether it
    was the heartbeat timeout (the first to fire, when both did)."""
    out: dict[int, tuple[int, bool]] = {}
    for (of, heartbeat), (index, entry) in latest_timers(entries).items():
        if index not in completions:
            continue
        fired = int(entry.get("wake_at") or entry.get("at") or 0)
        done = completions.get(of)
        if done is not None:
            at = loads(done).get("at")
            if not isinstance(at, int) or at < fired:
                continue  # completed before it timed out
        out[of] = min((fired, heartbeat), out.get(of, (fired, heartbeat)))
    return out


def renewals(
    entries: list[str], completions: dict[int, str], heartbeats: dict[str, int], now_ms: int
) -> list[dict[str, Any]]:
    """Fresh heartbeat timers for callbacks whose heartbeat timer fired although a heartbeat
    came since it started (``heartbeats``: last heartbeat per callback id, Unix ms)."""
    out = []
    for (of, heartbeat), (index, entry) in latest_timers(entries).items():
        if not heartbeat or index not in completions or of in completions:
            continue
        awakeable = loads(entries[of])
        last = heartbeats.get(str(awakeable.get("id")), 0)
        if last <= int(entry.get("at") or 0):
            continue
        update = awakeable.get("aws") or {}
        seconds = (update.get("CallbackOptions") or {}).get("HeartbeatTimeoutSeconds", 0)
        deadline = last + seconds * 1000
        if deadline > now_ms:
            out.append(timer_entry(update, of, deadline - now_ms, True, now_ms))
    return out
