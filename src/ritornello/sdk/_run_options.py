"""Run options: how a step (``ctx.run``) is retried, and the timers between its attempts.

A step with any retry option (or a ``step_retry`` policy on its function) that raises a
retryable exception is tried again after a backoff, and the backoff is a durable timer: the
step's journal position becomes a ``sleep`` entry named after the step with a ``retry`` field
(``attempt``: the attempts failed so far, ``since``: when the first attempt started, Unix ms,
``error``: the last error), the attempt ends suspended on it (on Lambda nothing is billed
meanwhile), and the next attempt replays the timer and runs the step again at the next
position. When the options are exhausted the step's ``run`` entry is journaled with a failure
(500) that the handler gets as a ``TerminalError`` and may catch.

A step with no option keeps the engine's behaviour: its failure fails the invocation's
attempt, which the handler's retry policy retries.

Exhausted means: ``max_attempts`` attempts failed, or the next attempt would start more than
``max_retry_duration`` after the first one started. Backoff after the n-th failed attempt:
``min(max_retry_interval, initial_retry_interval * retry_interval_factor ** (n - 1))``
(defaults 50 ms, 10 s or the initial interval if that is longer, 2).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ritornello.protocol import Entry, RetryPolicy

if TYPE_CHECKING:  # (datetime is not imported for nothing: a handler's import time)
    from datetime import timedelta

#: The keywords ``ctx.run`` takes for itself (the others are passed on to the function).
RUN_OPTIONS = (
    "type_hint",
    "serde",
    "max_attempts",
    "max_retry_duration",
    "initial_retry_interval",
    "max_retry_interval",
    "retry_interval_factor",
    "limit",
)
_RETRY_KEYS = (
    "max_attempts",
    "max_retry_duration",
    "initial_retry_interval",
    "max_retry_interval",
    "retry_interval_factor",
)
DEFAULT_INITIAL_MS = 50
DEFAULT_MAX_INTERVAL_MS = 10_000
DEFAULT_FACTOR = 2.0
#: The longest error text a retry timer keeps (the rest is cut).
ERROR_CHARS = 2_000

STEP_RETRY_ATTR = "__ritornello_step_retry__"
F = TypeVar("F", bound=Callable[..., Any])


def step_retry(policy: RetryPolicy) -> Callable[[F], F]:
    """Give a step function default run options: ``ctx.run`` retries it up to
    ``policy.max_attempts`` times with ``policy``'s backoff (durable timers between
    attempts), then journals a TerminalError (500) the handler can catch. Options passed to
    ``ctx.run`` win over it."""
    if not isinstance(policy, RetryPolicy) or policy.max_attempts is None:
        raise ValueError("step_retry needs a RetryPolicy with max_attempts")

    def mark(fn: F) -> F:
        setattr(fn, STEP_RETRY_ATTR, policy)
        return fn

    return mark


def millis(duration: timedelta | float, what: str) -> int:
    """``duration`` (a timedelta or seconds) in whole milliseconds, never negative."""
    datetime = sys.modules.get("datetime")  # a timedelta exists only if it was imported
    ms: int
    if datetime is not None and isinstance(duration, datetime.timedelta):
        ms = round(duration.total_seconds() * 1000)
    elif isinstance(duration, (int, float)) and not isinstance(duration, bool):
        ms = round(duration * 1000)
    else:
        raise TypeError(f"{what} must be a timedelta or seconds, not {type(duration).__name__}")
    if ms < 0:
        raise ValueError(f"{what} must not be negative")
    return ms


class StepRetry:
    """A step's retry options, checked. (A plain class: a dataclass costs the handler
    module's import half a millisecond.)"""

    __slots__ = ("factor", "initial_ms", "max_attempts", "max_duration_ms", "max_interval_ms")

    def __init__(
        self,
        *,
        max_attempts: int | None,
        max_duration_ms: int | None,
        initial_ms: int,
        max_interval_ms: int,
        factor: float,
    ) -> None:
        self.max_attempts = max_attempts
        self.max_duration_ms = max_duration_ms
        self.initial_ms = initial_ms
        self.max_interval_ms = max_interval_ms
        self.factor = factor

    def backoff_ms(self, failed: int) -> int:
        """The timer after the ``failed``-th failed attempt."""
        grown = self.initial_ms * self.factor ** max(0, failed - 1)
        return int(min(self.max_interval_ms, grown))

    def exhausted(self, failed: int, since_ms: int, now_ms: int) -> bool:
        """Whether ``failed`` failed attempts, the first started at ``since_ms``, end it."""
        if self.max_attempts is not None and failed >= self.max_attempts:
            return True
        if self.max_duration_ms is None:
            return False
        return now_ms + self.backoff_ms(failed) - since_ms > self.max_duration_ms


def step_retry_of(options: dict[str, Any], fn: Callable[..., Any]) -> StepRetry | None:
    """The retry options of a step: ``ctx.run``'s keywords over its function's
    ``step_retry`` policy; None when neither gives any."""
    policy: RetryPolicy | None = getattr(fn, STEP_RETRY_ATTR, None)
    if policy is None and (not options or all(options.get(k) is None for k in _RETRY_KEYS)):
        return None  # (the usual case: no options at all)
    attempts = options.get("max_attempts")
    if attempts is None and policy is not None:
        attempts = policy.max_attempts
    if attempts is not None and (type(attempts) is not int or attempts < 1):
        raise ValueError("max_attempts must be a whole number >= 1")
    duration = options.get("max_retry_duration")
    duration_ms = None if duration is None else millis(duration, "max_retry_duration")
    initial = options.get("initial_retry_interval")
    initial_ms = (
        millis(initial, "initial_retry_interval")
        if initial is not None
        else (policy.initial_interval_ms if policy and policy.initial_interval_ms else None)
    )
    cap = options.get("max_retry_interval")
    cap_ms = (
        millis(cap, "max_retry_interval")
        if cap is not None
        else (policy.max_interval_ms if policy and policy.max_interval_ms else None)
    )
    factor = options.get("retry_interval_factor")
    if factor is None:
        factor = policy.factor if policy is not None and policy.factor else DEFAULT_FACTOR
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not factor >= 1:
        raise ValueError("retry_interval_factor must be a number >= 1")
    initial_ms = DEFAULT_INITIAL_MS if initial_ms is None else initial_ms
    return StepRetry(
        max_attempts=attempts,
        max_duration_ms=duration_ms,
        initial_ms=initial_ms,
        # an initial interval above the default cap raises the cap to it
        max_interval_ms=max(DEFAULT_MAX_INTERVAL_MS, initial_ms) if cap_ms is None else cap_ms,
        factor=float(factor),
    )


def is_retry_timer(entry: Entry | None, name: str) -> bool:
    """Whether ``entry`` is the timer between two attempts of the step ``name``."""
    return (
        entry is not None
        and entry.get("kind") == "sleep"
        and entry.get("name") == name
        and isinstance(entry.get("retry"), dict)
    )
