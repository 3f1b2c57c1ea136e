"""Callback timeouts (``TimeoutSeconds``, ``HeartbeatTimeoutSeconds``) and heartbeats: pure.

A CALLBACK START with either option journals, after its ``awakeable`` entry, one ``sleep``
entry per option (a durable timer of the core), marked ``callback_timeout``: ``{"of": the
awakeable's index, "heartbeat": bool}``. Such an entry is no operation of its own (it has no
``aws`` update). A heartbeat timer also carries an awakeable ``id`` (``sign_...``, secret
included): a heartbeat *completes it early* through the core's awakeable path, with
``{"heartbeat": ms}``, in one fresh unit that also removes its timer row.

Invariant — one outcome per callback, decided by the store: a callback is TIMED_OUT exactly
when its awakeable's completion is a timeout (``timeout_result``), and that completion is
written through the same path as any other (the core's ``complete_awakeable``: a *fresh*
completion, so the store lets one writer win). A success, failure or heartbeat that comes
after it is refused as for an awakeable completed twice, through every path (the durable API,
``/restate/awakeables/...``); one that came first makes the timeout's own write fail, and the
callback stays completed. Nothing of this lives in an orchestrator's memory.

Timeline (a callback with both options; each arrow a commit)::

    CALLBACK START ─▶ awakeable a, sleep t (timeout), sleep h1 (heartbeat, id)
    heartbeat      ─▶ h1 completed {"heartbeat": T}       (its timer row removed)
    attempt        ─▶ sleep h2 for T + heartbeat timeout - now: suspended again, not invoked
    h2 fires       ─▶ attempt: no heartbeat on h2 in the store ─▶ a completed {timed out}
                       (fresh: a success committed first wins, and this write fails)

The adapter decides when an attempt begins (``due`` lists what to decide); a heartbeat
timer that completed is read from the store before it counts as fired (its timer may have
fired in a leader's memory after a heartbeat reached another orchestrator).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from ritornello.protocol import new_awakeable_id

from ..._json import dumps, loads

#: The error a timed-out callback carries (AWS's types for it), by whether its heartbeat
#: timeout fired.
TIMEOUT_ERRORS: Final = {
    False: {"ErrorType": "Callback.Timeout", "ErrorMessage": "Callback timed out"},
    True: {"ErrorType": "Callback.Heartbeat", "ErrorMessage": "Callback heartbeat timed out"},
}


def timeout_entries(
    update: dict[str, Any], invocation_id: str, awakeable_index: int, now_ms: int
) -> list[dict[str, Any]]:
    """The timer entries of a CALLBACK START journaled at ``awakeable_index`` (none without
    a timeout option); they follow it in the journal."""
    options = update.get("CallbackOptions") or {}
    out: list[dict[str, Any]] = []
    for field, heartbeat in (("TimeoutSeconds", False), ("HeartbeatTimeoutSeconds", True)):
        seconds = options.get(field)
        if seconds:
            index = awakeable_index + 1 + len(out)
            out.append(
                timer_entry(
                    update, invocation_id, awakeable_index, index, seconds * 1000, heartbeat, now_ms
                )
            )
    return out


def timer_entry(
    update: dict[str, Any],
    invocation_id: str,
    awakeable_index: int,
    index: int,
    duration_ms: int,
    heartbeat: bool,
    now_ms: int,
) -> dict[str, Any]:
    """One callback timeout timer of ``duration_ms``, journaled at ``index``."""
    what = "HEARTBEAT TIMEOUT" if heartbeat else "TIMEOUT"
    entry: dict[str, Any] = {
        "kind": "sleep",
        "name": f"CALLBACK {what} {update.get('Name') or update['Id']}",
        "duration_ms": max(0, duration_ms),
        "callback_timeout": {"of": awakeable_index, "heartbeat": heartbeat},
        "at": now_ms,
    }
    if heartbeat:  # what a heartbeat completes early
        entry["id"] = new_awakeable_id(invocation_id, index)
    return entry


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


def heartbeat_timer(entries: list[str], awakeable_index: int) -> tuple[int, dict[str, Any]] | None:
    """The heartbeat timer a heartbeat of the callback at ``awakeable_index`` completes (None:
    the callback has no heartbeat timeout)."""
    return latest_timers(entries).get((awakeable_index, True))


def heartbeat_result(now_ms: int) -> str:
    """A heartbeat's completion of a heartbeat timer (``{"value"...}`` for the core)."""
    return dumps({"value": None, "heartbeat": now_ms})


def heartbeat_of(text: str | None) -> int | None:
    """When the heartbeat that completed a heartbeat timer came (None: it fired, or is open)."""
    if text is None or '"heartbeat"' not in text:
        return None
    at = loads(text).get("heartbeat")
    return at if isinstance(at, int) and not isinstance(at, bool) else None


def timeout_result(heartbeat: bool, now_ms: int) -> str:
    """A timed-out callback's completion of its awakeable (a failure, as Ritornello's readers
    see it; ``timed_out`` is what the fold reads)."""
    error = TIMEOUT_ERRORS[heartbeat]
    failure = {
        "code": 408,
        "message": error["ErrorMessage"],
        "aws": dict(error),
        "timed_out": "HEARTBEAT" if heartbeat else "TIMEOUT",
    }
    return dumps({"failure": failure, "at": now_ms})


def timed_out(done: dict[str, Any] | None) -> tuple[int, bool] | None:
    """(when, whether by its heartbeat timeout) of a callback whose awakeable completion
    ``done`` is a timeout; None for any other completion (or none)."""
    failure = done.get("failure") if isinstance(done, dict) else None
    if not isinstance(failure, dict) or "timed_out" not in failure:
        return None
    return int(done.get("at") or 0), failure["timed_out"] == "HEARTBEAT"  # type: ignore[union-attr]


@dataclass(frozen=True, slots=True)
class Due:
    """A timer of an open callback that completed: fired, or (a heartbeat timer) completed
    early by a heartbeat. The adapter decides what it comes to."""

    of: int
    heartbeat: bool
    index: int
    entry: dict[str, Any]


def due(entries: list[str], completions: dict[int, str]) -> list[Due]:
    """The latest timers of the still open callbacks that completed (in journal order)."""
    out = [
        Due(of, heartbeat, index, entry)
        for (of, heartbeat), (index, entry) in latest_timers(entries).items()
        if index in completions and of not in completions
    ]
    return sorted(out, key=lambda d: d.index)


def live_timers(entries: list[str], completions: dict[int, str]) -> set[int]:
    """Indices of the open callbacks' latest timers still running."""
    return {
        index
        for (of, _), (index, _entry) in latest_timers(entries).items()
        if of not in completions and index not in completions
    }


def decide(
    entries: list[str],
    completions: dict[int, str],
    stored: dict[int, str],
    invocation_id: str,
    now_ms: int,
) -> tuple[list[dict[str, Any]], dict[int, bool]]:
    """What the due timers come to: (new heartbeat timers to journal, callbacks to time out:
    awakeable index -> by its heartbeat timeout). ``stored``: the completions as the store
    has them, which say whether a heartbeat timer was completed by a heartbeat (a timer that
    fired in memory after a heartbeat reached the store loses to it)."""
    renew: list[dict[str, Any]] = []
    expire: dict[int, bool] = {}
    for d in due(entries, completions):
        if d.heartbeat:
            beat = heartbeat_of(stored.get(d.index)) or heartbeat_of(completions.get(d.index))
            awakeable = loads(entries[d.of])
            update = awakeable.get("aws") or {}
            seconds = (update.get("CallbackOptions") or {}).get("HeartbeatTimeoutSeconds", 0)
            if beat is not None and beat + seconds * 1000 > now_ms:
                index = len(entries) + len(renew)
                left = beat + seconds * 1000 - now_ms
                renew.append(timer_entry(update, invocation_id, d.of, index, left, True, now_ms))
                continue
        expire.setdefault(d.of, d.heartbeat)
    # a callback that times out needs no new heartbeat timer
    renew = [r for r in renew if r["callback_timeout"]["of"] not in expire]
    for n, r in enumerate(renew):  # indices again, had any been dropped
        if "id" in r:
            r["id"] = new_awakeable_id(invocation_id, len(entries) + n)
    return renew, expire
