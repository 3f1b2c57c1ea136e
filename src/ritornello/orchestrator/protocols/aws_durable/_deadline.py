"""Execution timeouts (``DurableConfig.ExecutionTimeout``): pure, no I/O.

A durable function registered with ``execution_timeout_s`` (``check_timeout``: an integer
from 1 to AWS's 31,622,400, kept in the deployment's stored discovery as ``wire_info``, so it
survives restarts and reaches every orchestrator sharing the store) gets, at the first attempt
of each execution and before the function is invoked, one ``sleep`` entry at journal index 1
(``deadline_entry``): a durable timer of the core, marked ``execution_timeout``, due
``execution_timeout_s`` after that attempt. It is no operation (it has no ``aws`` update: the
fold and the history skip it), and the adapter adds it to every suspension: a suspended
execution is woken by it directly (its completion committed with the timed-out answer; any
completion would wake it, but the suspension then says what it waits on).

Invariant — one outcome, decided by the adapter of the attempt that drives the execution and
committed as the invocation's ``done`` answer (so exactly once, as any result): an execution
is TIMED_OUT exactly when its stored result is ``timed_out_result`` (``is_timed_out``). The
adapter ends it so when

* an attempt begins at or after the deadline (its timer completed, or the clock is past it:
  a suspended execution woken by its timer, a retry after the deadline), without invoking
  the function;
* the deadline passes while the function runs: the run is retired at once (its checkpoint
  token refused from then on, a checkpoint waiting for it refused, its answer dropped).

Nothing the function sends after the deadline is taken: the checkpoint or answer that arrives
first after it finds the run retired. Timeline::

    first attempt ─▶ sleep d (EXECUTION TIMEOUT, wake_at T)   committed, then invoked
    run A: WAIT START ─▶ suspended on [wait, d]
    T: d fires ─▶ attempt: T reached ─▶ done {failure: Execution.Timeout, timed_out}
    (a kill -9 before T: the timer row is in the store; the restarted leader fires it at T)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from ..._json import dumps, loads

#: AWS's bounds on ``DurableConfig.ExecutionTimeout`` (seconds; Lambda's service model).
MAX_TIMEOUT_S: Final = 31_622_400
#: The field of the registration body and of the deployment's ``wire_info``.
FIELD: Final = "execution_timeout_s"
#: The mark of the deadline's timer entry.
MARK: Final = "execution_timeout"
#: ``failure.timed_out`` of a timed-out execution's result (a callback's are TIMEOUT or
#: HEARTBEAT, in its awakeable's completion).
TIMED_OUT: Final = "EXECUTION"
#: The ``ErrorType`` of a timed-out execution (Ritornello's name: AWS documents none).
ERROR_TYPE: Final = "Execution.Timeout"


def check_timeout(value: Any) -> int | None:
    """The ``execution_timeout_s`` of a registration, checked (None: none given); ValueError
    with a readable message for anything but an integer from 1 to ``MAX_TIMEOUT_S``."""
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_TIMEOUT_S:
        raise ValueError(
            f"{FIELD} must be a whole number of seconds from 1 to {MAX_TIMEOUT_S} "
            f"(AWS's DurableConfig.ExecutionTimeout), not {dumps(value)[:40]}"
        )
    return value


@dataclass(frozen=True, slots=True)
class Deadline:
    """An execution's deadline: its timer entry's index, the timeout, when it falls (ms)."""

    index: int
    seconds: int
    at_ms: int


def deadline_entry(seconds: int, now_ms: int) -> dict[str, Any]:
    """The timer entry journaled at index 1 before the first run (the core adds ``wake_at``)."""
    return {
        "kind": "sleep",
        "name": "EXECUTION TIMEOUT",
        "duration_ms": seconds * 1000,
        MARK: {"seconds": seconds},
        "at": now_ms,
    }


def deadline_of(entries: list[str]) -> Deadline | None:
    """The execution's deadline (None: it has none). Only index 1 can hold it: it is journaled
    when the journal holds the input alone."""
    if len(entries) < 2 or f'"{MARK}"' not in entries[1]:
        return None
    entry = loads(entries[1])
    mark, wake_at = entry.get(MARK), entry.get("wake_at")
    if not isinstance(mark, dict) or not isinstance(wake_at, int):
        return None
    return Deadline(1, int(mark.get("seconds") or 0), wake_at)


def needs_deadline(entries: list[str], seconds: int | None) -> bool:
    """Whether the attempt must journal the deadline first: a timeout is set and nothing but
    the input is journaled (an execution started before the option was set gets none)."""
    return seconds is not None and len(entries) == 1


def timed_out_result(seconds: int) -> dict[str, Any]:
    """The failure a timed-out execution ends with (the ``output`` entry's ``failure``): read
    as any failed invocation's (500, ``ErrorType: message``), ``aws`` the Error AWS's APIs
    show, ``timed_out`` what tells it from a failure."""
    error = {"ErrorType": ERROR_TYPE, "ErrorMessage": f"Execution timed out after {seconds} s"}
    return {
        "code": 500,
        "message": f"{error['ErrorType']}: {error['ErrorMessage']}",
        "aws": error,
        "timed_out": TIMED_OUT,
    }


def is_timed_out(result: str | None) -> bool:
    """Whether an invocation's stored result is an execution timeout's."""
    if result is None or '"timed_out"' not in result:
        return False
    failure = loads(result).get("failure")
    return isinstance(failure, dict) and failure.get("timed_out") == TIMED_OUT


def with_deadline(wait_on: list[int], deadline: Deadline | None) -> list[int]:
    """A suspension's entries, the deadline's timer among them (so it wakes the execution)."""
    if deadline is None or deadline.index in wait_on:
        return wait_on
    return [*wait_on, deadline.index]
