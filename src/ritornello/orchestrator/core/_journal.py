"""Journal texts: how the core writes entries, completions and results as stored JSON text.

Entries, completions and results are JSON objects stored as text, encoded once and never parsed
by the store, so the wire adapter can send them to an endpoint by concatenation. This module is
the one place the core builds such texts from other texts (a completion from a stored result,
the input entry from the ingress body, the commit time appended as ``"at"``): each splice is a
JSON object whose members are already valid JSON, so the result is valid JSON without
re-encoding the payload.

Invariants: ``at`` is informational (the SDK matches entries by kind, name and key, and reads a
completion's ``value``/``failure`` only), so a text with or without it means the same thing to
replay; texts are never ``{}`` (an entry has ``kind``, a completion ``index``).
"""

from __future__ import annotations

import re
from typing import Any, Final

from ritornello.protocol import Entry
from ritornello.protocol._entries import CANCEL_INDEX as _CANCEL_INDEX
from ritornello.store.records import CommitUnit

from .._json import dumps

#: The completion index that carries a cancellation signal (docs/protocol.md).
CANCEL_INDEX: Final = _CANCEL_INDEX
CANCELLED_RESULT: Final = '{"failure":{"code":409,"message":"cancelled"}}'
KILLED_RESULT: Final = '{"failure":{"code":409,"message":"killed by an operator"}}'
SUPERSEDED_RESULT: Final = (
    '{"failure":{"code":409,"message":"superseded by a later send with its idempotency key '
    '(debounce)"}}'
)
#: What ``get_output`` of an invocation not finished yet completes with (Restate's void).
NOT_READY_RESULT: Final = '{"value":null,"void":true}'
#: What a fired sleep completes its entry with.
SLEPT_RESULT: Final = '{"value":null}'
#: The idempotency key of a workflow's run: one per (workflow, id), enforced by the store.
WORKFLOW_RUN: Final = "\x00workflow-run"
#: The stored idempotency key of a debounced send (``?debounce=``: docs/limits.md) is its
#: key under this prefix, held only while it waits to start.
DEBOUNCE_PREFIX: Final = "\x00debounce:"
#: Engine-owned state rows of a workflow: resolved promises and registered promise waiters.
PROMISE_ROW: Final = "\x00p:"
WAITER_ROW: Final = "\x00w:"


def completion_text(index: int, result: str) -> str:
    """A completion of entry ``index`` from a stored result text (no re-encoding)."""
    return f'{{"index":{index},{result[1:]}'


def signal_text(index: int, entry: Entry) -> str:
    """The completion a ``signal`` entry delivers at ``index``: cancel is the cancellation
    every SDK reads (``CANCELLED_RESULT``); another signal carries its value or failure (and
    a named signal its name, for the endpoint)."""
    if index == CANCEL_INDEX:
        return completion_text(index, CANCELLED_RESULT)
    out: dict[str, Any] = {"index": index}
    if "signal_name" in entry:
        out["name"] = entry["signal_name"]
    if "failure" in entry:
        out["failure"] = entry["failure"]
    else:
        out["value"] = entry.get("value")
    return dumps(out)


def result_text(entry: Entry) -> str:
    """The stored result of an output entry: ``{"value": ...}`` or ``{"failure": ...}``."""
    if "failure" in entry:
        return dumps({"failure": entry["failure"]})
    return dumps({"value": entry.get("value")})


def value_result(value_text: str) -> str:
    """A success as a stored result, from a value already validated as JSON text."""
    return '{"value":' + value_text + "}"


def failure_result(code: int, message: str) -> str:
    """A terminal failure as a stored result."""
    return dumps({"failure": {"code": code, "message": message}})


def input_entry(input_text: str, headers: dict[str, str] | None) -> str:
    """The input entry (index 0) for a JSON body already validated as JSON text, with the
    request headers a handler may see (already redacted)."""
    extra = ',"headers":' + dumps(headers) if headers else ""
    return '{"kind":"input","value":' + input_text + extra + "}"


def input_entry_of(value: Any, headers: dict[str, str] | None = None) -> str:
    """The input entry of a callee (its caller's call or send entry holds the value, and the
    flow control it asked for, as the headers the ingress would have journaled)."""
    if headers:
        return dumps({"kind": "input", "value": value, "headers": headers})
    return dumps({"kind": "input", "value": value})


def split_state(rows: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(user state, resolved promises by name) from a key's state rows."""
    state = {k: v for k, v in rows.items() if not k.startswith("\x00")}
    promises = {k[len(PROMISE_ROW) :]: v for k, v in rows.items() if k.startswith(PROMISE_ROW)}
    return state, promises


def waiters_of(rows: dict[str, str]) -> dict[str, list[tuple[str, int, str]]]:
    """Registered promise waiters by promise name: (invocation, entry index, row name)."""
    found: dict[str, list[tuple[str, int, str]]] = {}
    for row in rows:
        if row.startswith(WAITER_ROW):
            name, inv, index = row[len(WAITER_ROW) :].rsplit(":", 2)
            found.setdefault(name, []).append((inv, int(index), row))
    return found


_AT = re.compile(r',"at":\d+\}$')


def unstamped(text: str) -> str:
    """A stored entry or completion text without its commit time (a kept prefix is written
    again, and stamped again, by a restart-as-new)."""
    return _AT.sub("}", text)


def _stamp(text: str, suffix: str) -> str:
    if len(text) > 2 and text[-1] == "}" and text[0] == "{":
        return text[:-1] + suffix
    return text  # not a non-empty object: leave it as it is


def stamp_unit(unit: CommitUnit, at_ms: int) -> None:
    """Stamp the entries and completions of ``unit`` in place with commit time ``at_ms``."""
    suffix = f',"at":{at_ms}}}'
    if unit.entries:
        unit.entries[:] = [(inv, i, _stamp(text, suffix)) for inv, i, text in unit.entries]
    if unit.completions:
        unit.completions[:] = [(inv, i, _stamp(text, suffix)) for inv, i, text in unit.completions]
