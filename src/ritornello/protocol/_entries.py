"""Journal entries and completions: plain JSON objects, typed with ``TypedDict``.

Invariants (docs/protocol.md): index 0 is ``input``; ``output`` is last; entries are immutable
once written; a ``call`` or ``sleep`` is completed only by a separate completion for its index.
"""

from __future__ import annotations

from typing import Any, Final, TypedDict


class Failure(TypedDict):
    """A terminal failure: ``code`` is the HTTP status the ingress answers with."""

    code: int
    message: str


class Entry(TypedDict, total=False):
    """One journal entry. ``kind`` is always present; other fields depend on it."""

    kind: str
    name: str
    value: Any
    failure: Failure
    key: str | None
    input: Any
    id: str
    delay_ms: int
    duration_ms: int
    wake_at: int
    #: ``input`` only: the ingress request's headers (lower-case names), redacted before they
    #: were journaled (docs/auth.md); absent when the invocation did not come from the ingress.
    headers: dict[str, str]


class Completion(TypedDict, total=False):
    """The result of the waiting entry at ``index``: ``value`` or ``failure``."""

    index: int
    value: Any
    failure: Failure


ENTRY_KINDS: Final = frozenset(
    {
        "input",
        "run",
        "get",
        "set",
        "clear",
        "clear_all",
        "keys",
        "call",
        "send",
        "sleep",
        "awakeable",
        "complete_awakeable",
        "promise_get",
        "promise_peek",
        "promise_complete",
        "output",
    }
)
#: Entry kinds that wait for a completion from the orchestrator.
WAITING_KINDS: Final = frozenset({"call", "sleep", "awakeable", "promise_get", "promise_complete"})
#: A completion with this index is the cancellation signal (not an entry's result).
CANCEL_INDEX: Final = -1
#: The ``run`` entry that journals where a cancellation was raised; its value is the index of
#: the entry whose await raised it.
CANCEL_ENTRY: Final = "ctx.cancelled"
SERVICE_KINDS: Final = frozenset({"service", "object", "workflow"})
HANDLER_KINDS: Final = frozenset({"exclusive", "shared", "workflow"})


def completion_value(index: int, value: Any) -> Completion:
    """A successful completion."""
    return {"index": index, "value": value}


def completion_failure(index: int, code: int, message: str) -> Completion:
    """A failed completion (the callee ended with a terminal error)."""
    return {"index": index, "failure": {"code": code, "message": message}}
