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
    #: ``input``: the ingress request's headers (lower-case names), redacted before they
    #: were journaled (docs/auth.md), or those its caller's ``call``/``send`` gave it;
    #: ``call``/``send``: the headers the callee's input carries.
    headers: dict[str, str]
    #: Any entry of a fan-out branch (docs/sdk.md): the child context it belongs to; each
    #: context replays its own entries in order. Absent: the handler's own (root) context.
    ctx: str
    #: ``run`` only: the entry that starts a fan-out (``map``, ``parallel``, ``child``);
    #: its branches' contexts are named after its index (docs/sdk.md).
    child: str
    #: ``sleep`` only: the timer between two attempts of the step ``name`` (run options):
    #: ``{"attempt": failed so far, "since": first attempt's start (Unix ms), "error": ...}``.
    retry: dict[str, Any]
    #: ``call``/``send`` made by ``ctx.generic_call``/``generic_send``: ``input`` is the
    #: base64 text of a request body (JSON for a JSON handler, anything for a raw one).
    raw: bool
    #: ``call`` with ``raw``, added by the orchestrator: the callee answers raw bytes of this
    #: content type (its result is their base64 text).
    output_content_type: str
    #: ``run``/``sleep`` with ``limit``: the index of the permit entry it gives back, when
    #: that is not the entry just before it.
    permit: int
    #: ``signal`` only (Restate's SendSignal): the signal number (1 cancel, 17+ an awakeable)
    #: or the name of a named signal; ``id`` is the target invocation.
    signal: int
    signal_name: str
    #: ``call``/``send`` from a Restate SDK: the invocation this key names for that target, if
    #: it exists, is the one the entry names (``id``) instead of a new one
    idempotency_key: str
    #: ``run`` only: the step ran under a permit of this limit, asked by the ``permit`` entry
    #: just before it (docs/limits.md); journaling the step gives the permit back.
    limit: str
    #: ``call``/``send``: the callee's priority and limit key (docs/limits.md)
    priority: int
    limit_key: str
    #: ``permit`` only, added by the orchestrator: the per-key limit's instance it asked of.
    instance: str


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
        "signal",
        "attach",
        "get_output",
        "permit",
        "promise_get",
        "promise_peek",
        "promise_complete",
        "output",
    }
)
#: Entry kinds that wait for a completion from the orchestrator.
WAITING_KINDS: Final = frozenset(
    {
        "call",
        "sleep",
        "awakeable",
        "promise_get",
        "promise_complete",
        "attach",
        "get_output",
        "permit",
    }
)
#: A completion with this index is the cancellation signal (not an entry's result).
CANCEL_INDEX: Final = -1
#: The completion that grants an invocation its own permit (a limited handler or service:
#: docs/limits.md): the engine's, never sent to a handler.
INVOCATION_PERMIT: Final = -2
#: Restate's awakeables are signals, not entries (docs/restate-protocol.md): signal N is
#: stored as the completion at index -N; -1 is cancel, 2..16 are reserved.
FIRST_SIGNAL_AWAKEABLE: Final = 17


def is_signal(index: int) -> bool:
    """Whether a completion index names a signal (cancel, a Restate awakeable, or a named
    signal)."""
    return index == CANCEL_INDEX or index <= -FIRST_SIGNAL_AWAKEABLE


def named_signal_index(name: str) -> int:
    """The completion index of Restate's named signal ``name``: below -2**32, where no
    numbered signal (a u32) reaches; 48 bits of SHA-256, so two names of one invocation
    collide with odds of 2**-48."""
    import hashlib  # imported on first use: not at a handler module's import

    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return -(2**32 + int.from_bytes(digest[:6], "big"))


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


def signal_index(entry: Entry | dict[str, Any]) -> int | None:
    """The completion index a ``signal`` entry targets (None: it names no valid signal):
    ``signal`` 1 is cancel (-1), 17 and up an awakeable (-N); ``signal_name`` a named one."""
    number, name = entry.get("signal"), entry.get("signal_name")
    if isinstance(name, str) and name:
        return named_signal_index(name)
    if not isinstance(number, int) or isinstance(number, bool):
        return None
    if number == -CANCEL_INDEX or FIRST_SIGNAL_AWAKEABLE <= number < 2**32:
        return -number
    return None
