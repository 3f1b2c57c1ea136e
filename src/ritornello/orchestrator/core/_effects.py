"""What the core asks of the runtime: a ``Decision`` per event.

A decision either carries a commit unit or effects, never both:

* ``unit``: commit it (as leader of partition ``home``; None: as nobody's leader, e.g. an
  ingress request), then report the outcome with ``Committed(token)`` or
  ``CommitFailed(token, reason)``. Whatever the unit justifies comes out of that report, so
  an effect is never performed before the commit it depends on.
* ``effects``: perform them now, in order (start or halt drivers, answer waiters, arm timers).

A driver's decision also says what the driver does next (``next``: read, invoke, or nothing more:
None ends the driver, which then reports ``DriverEnded``). A decision whose unit belongs to a
driver has ``next`` None: the driver's next action comes with ``Committed``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ritornello.store.records import CommitUnit, InvocationRecord, TimerRecord, slot_init

from ._invocation import Invocation

# --- effects --------------------------------------------------------------------------------


@slot_init
@dataclass(frozen=True, slots=True)
class Drive:
    """Start a driver for this invocation (a new one, a queued one whose turn came, a woken
    one, a retry). It reports ``DriverStarted`` first."""

    invocation_id: str


@slot_init
@dataclass(frozen=True, slots=True)
class Halt:
    """Cancel this invocation's driver (an operator acts on it, or its partition is lost)."""

    invocation_id: str


@slot_init
@dataclass(frozen=True, slots=True)
class Reply:
    """The invocation finished: answer whoever waits for its result."""

    invocation_id: str
    result: str


@slot_init
@dataclass(frozen=True, slots=True)
class Arm:
    """Keep this timer in the alarm clock (it is in the store)."""

    timer: TimerRecord


@slot_init
@dataclass(frozen=True, slots=True)
class Disarm:
    """Forget this timer (its removal was committed)."""

    timer: TimerRecord


@slot_init
@dataclass(frozen=True, slots=True)
class DropTimers:
    """Forget every timer of a partition no longer led here (its new leader loads them)."""

    partition: int


@slot_init
@dataclass(frozen=True, slots=True)
class Rearm:
    """Bring these timers back (``TimersBack``) after ``delay_s``."""

    timers: list[TimerRecord]
    delay_s: float


@slot_init
@dataclass(frozen=True, slots=True)
class Redrive:
    """Report ``RedriveDue`` for this invocation after ``delay_s``."""

    invocation_id: str
    delay_s: float


@slot_init
@dataclass(frozen=True, slots=True)
class Woke:
    """A timer due at ``fire_at`` woke this invocation (the alarm clock counts it as late
    until its first attempt since is answered)."""

    fire_at: int
    invocation_id: str


@slot_init
@dataclass(frozen=True, slots=True)
class FireSleeps:
    """Report ``SleepsDue`` for these sleep timers of one partition (a commit of their own)."""

    partition: int
    timers: list[TimerRecord]


@slot_init
@dataclass(frozen=True, slots=True)
class StartDue:
    """Read this start timer's invocation and report ``ScheduledDue``."""

    timer: TimerRecord


@slot_init
@dataclass(frozen=True, slots=True)
class StartRecheck:
    """Read this start timer's invocation again and report ``ScheduledRecheck``."""

    timer: TimerRecord


@slot_init
@dataclass(frozen=True, slots=True)
class CheckAttach:
    """Read whether the invocation this attach timer's entry waits on has finished, and
    report ``AttachChecked``."""

    timer: TimerRecord


@slot_init
@dataclass(frozen=True, slots=True)
class CheckSuspended:
    """Read the journals of these suspended invocations and report ``CompletionsFound``."""

    invocation_ids: list[str]


@slot_init
@dataclass(frozen=True, slots=True)
class LimitTurn:
    """Report ``LimitsDue`` after ``delay_ms`` (0: as soon as the loop comes round)."""

    delay_ms: int


@slot_init
@dataclass(frozen=True, slots=True)
class ReadPermits:
    """Read every permit row of limit ``limit``; report ``PermitsRead`` with ``read_from``
    (the limits' clock as the read began: what memory learned of since stays)."""

    limit: str
    read_from: int


@slot_init
@dataclass(frozen=True, slots=True)
class ReadLimits:
    """Read the limits' definitions from the store; report ``LimitsDefined(fresh=True)``."""


Effect = (
    Drive
    | Halt
    | Reply
    | Arm
    | Disarm
    | DropTimers
    | Rearm
    | Redrive
    | Woke
    | FireSleeps
    | StartDue
    | StartRecheck
    | CheckAttach
    | CheckSuspended
    | LimitTurn
    | ReadPermits
    | ReadLimits
)


# --- a driver's next action -----------------------------------------------------------------


@slot_init
@dataclass(frozen=True, slots=True)
class Load:
    """Read the invocation and its journal; report ``Loaded``."""


@slot_init
@dataclass(frozen=True, slots=True)
class ReadState:
    """Read the key's state rows; report ``StateRead``."""

    service: str
    key: str


@slot_init
@dataclass(frozen=True, slots=True)
class ReadCompletions:
    """Read the invocation's completions again; report ``CompletionsRead``."""


@slot_init
@dataclass(frozen=True, slots=True)
class Invoke:
    """Send an attempt for ``invocation`` (its journal, completions, state) through its
    deployment's protocol adapter; report ``Answered`` or ``AttemptFailed``. ``stream``:
    a streamed exchange may be used (not for a workflow: its promises change beside it)."""

    invocation: Invocation
    stream: bool


@slot_init
@dataclass(frozen=True, slots=True)
class Lookup:
    """Read what the answer's unit depends on; report ``LookedUp``: each awakeable's
    invocation and journal; whether each (workflow, handler, id)'s run exists; and, when
    ``rows`` names a workflow key, its state rows read under the key's lock, which stays held
    until the unit is committed (``Committed`` / ``CommitFailed``)."""

    awakeables: tuple[str, ...]
    workflows: tuple[tuple[str, str, str], ...]
    rows: tuple[str, str] | None
    #: (service, handler, key, idempotency key) of calls and sends that carry one: the
    #: invocation each names, if it exists already
    keyed: tuple[tuple[str, str, str | None, str], ...] = ()


Action = Load | ReadState | ReadCompletions | Invoke | Lookup

LOAD = Load()
READ_COMPLETIONS = ReadCompletions()


@dataclass(slots=True)
class Decision:
    """The core's answer to one event (see the module docstring)."""

    unit: CommitUnit | None = None
    home: int | None = None
    token: int = 0
    effects: Sequence[Effect] = ()
    next: Action | None = None
    #: The record an intake or operator event wrote (submit, kill, pause, resume, ...).
    record: InvocationRecord | None = None
