"""StopDurableExecution's ``Error``: checked, kept in the stopped execution's result, read back.
Pure, no I/O.

A stop is a kill (``Engine.kill``): the invocation ends ``killed`` with a 409 failure that its
caller receives. The stop's optional ``Error`` (Lambda's ``ErrorObject``: ``ErrorMessage``,
``ErrorType``, ``ErrorData``, ``StackTrace``) rides in that failure as ``aws``, where a failed
callback's error rides already, beside the kill's own code and message::

    {"failure": {"code": 409, "message": "killed by an operator", "aws": ERROR}}

So the Restate-compatible paths, the admin API and a Ritornello caller read the same code and
message whether or not the stop said why, and a stop without ``Error`` is exactly a kill
(``KILLED_RESULT``). GetDurableExecution's ``Error`` of a stopped execution, and its
``ExecutionStopped`` event's ``Error.Payload``, are ``aws`` (else the kill's message). A stopped
execution is told by its invocation's status (``killed``); a *callee* stopped so is told from a
failed one by its failure's code and message (``is_stopped``), since its caller's journal holds
the completion only.

Invariants: ``stop_error`` accepts exactly what Lambda's model allows — a JSON object whose
members are among the four, the first three strings, ``StackTrace`` a list of strings, 1 MB in
all — and raises ``StopError`` for anything else (the API answers 400 and stops nothing);
``stopped_result(None)`` is None (the engine's default kill).
"""

from __future__ import annotations

from typing import Any, Final

from ..._json import dumps, loads
from ...core import KILLED_RESULT

#: The failure of a kill without a reason (``{"code": 409, "message": ...}``).
KILLED: Final = loads(KILLED_RESULT)["failure"]
#: The members of an ``ErrorObject`` that are strings (``StackTrace`` is a list of them).
_STRINGS: Final = ("ErrorMessage", "ErrorType", "ErrorData")
#: Lambda's limit on an ``ErrorObject``: its fields' combined size (UTF-8 bytes).
MAX_ERROR_BYTES: Final = 1024 * 1024


class StopError(ValueError):
    """A stop's ``Error`` is not an ``ErrorObject`` (the message says what is wrong)."""


def stop_error(body: bytes) -> dict[str, Any] | None:
    """The ``Error`` a StopDurableExecution body carries (the body *is* the ``ErrorObject``:
    the operation's payload member), checked; None when there is none (no body, ``{}``)."""
    if not body.strip():
        return None
    try:
        error = loads(body)
    except ValueError:
        raise StopError("the request body (the stop's Error) is not JSON") from None
    if not isinstance(error, dict):
        raise StopError("the stop's Error must be a JSON object")
    size = 0
    for name, value in error.items():
        if name in _STRINGS:
            if not isinstance(value, str):
                raise StopError(f"Error.{name} must be a string")
            size += len(value.encode())
        elif name == "StackTrace":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise StopError("Error.StackTrace must be a list of strings")
            size += sum(len(v.encode()) for v in value)
        else:
            raise StopError(
                f"Error has no member {name!r} (an ErrorObject has ErrorMessage, ErrorType, "
                "ErrorData and StackTrace)"
            )
    if size > MAX_ERROR_BYTES:
        raise StopError(f"the stop's Error fields exceed {MAX_ERROR_BYTES:,} bytes in all")
    return error or None


def stopped_result(error: dict[str, Any] | None) -> str | None:
    """The failure text a stop with ``error`` ends the invocation with (None: no error, the
    engine's own ``KILLED_RESULT``)."""
    if error is None:
        return None
    return dumps({"failure": {**KILLED, "aws": error}})


def is_stopped(failure: Any) -> bool:
    """Whether a callee's ``failure`` (a completion's) is a kill's: STOPPED, not FAILED."""
    return (
        isinstance(failure, dict)
        and failure.get("code") == KILLED["code"]
        and failure.get("message") == KILLED["message"]
    )


def stopped_error(result: str | None) -> dict[str, Any]:
    """GetDurableExecution's ``Error`` of a stopped execution (``result``: its stored one)."""
    failure = (loads(result) if result else {}).get("failure") or {}
    error = failure.get("aws")
    if isinstance(error, dict):
        return error
    return {"ErrorMessage": str(failure.get("message", KILLED["message"]))}
