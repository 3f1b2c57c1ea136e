"""Events: everything that happens to the core, as data (``Core.apply(event, now)``).

Each event is what the runtime saw or read: an answer, a committed unit, a timer that came due,
a partition gained or lost, an operator's request, the records and journals it read for the
core. The core never reads anything itself; an event carries what the core needs to decide.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ritornello.protocol import InvokeResponse
from ritornello.store.records import InvocationRecord, PermitRecord, TimerRecord, slot_init

from .._limit_spec import LimitSpec
from ._registry import Target

Journal = tuple[list[str], list[str]]  # (entries, completions) as stored texts


# --- lifecycle ------------------------------------------------------------------------------


@slot_init
@dataclass(frozen=True, slots=True)
class Booted:
    """The runtime started on a store: its highest arrival number, its partition count
    (fixed when the store was made), and whether it is exclusive to this process (then
    nothing else writes it, and caches of its reads stay valid)."""

    max_seq: int
    partitions: int = 1
    exclusive: bool = True


@slot_init
@dataclass(frozen=True, slots=True)
class Closing:
    """The runtime stops: no driver starts from now on."""


# --- partitions -----------------------------------------------------------------------------


@slot_init
@dataclass(frozen=True, slots=True)
class PartitionClaimed:
    """This process now holds the partition's lease; its recovery is reading."""

    partition: int


@slot_init
@dataclass(frozen=True, slots=True)
class PartitionRecovered:
    """The recovery read the partition's live invocations (arrival order), its timers, and the
    journals of those that may run at once (``running``, ``pending``)."""

    partition: int
    records: list[InvocationRecord]
    timers: list[TimerRecord]
    journals: dict[str, Journal]


@slot_init
@dataclass(frozen=True, slots=True)
class CompletionsFound:
    """Journals of invocations suspended here (read after a recovery): wake those holding a
    completion they wait on (one committed just before a crash may never have woken them)."""

    journals: dict[str, Journal]


@slot_init
@dataclass(frozen=True, slots=True)
class PartitionDraining:
    """The partition is being handed over (another orchestrator joined, or this one stops):
    start no attempt on it; what is in flight answers and commits; new work is left to the
    store for its next leader. ``PartitionLost`` follows once the drain is over."""

    partition: int


@slot_init
@dataclass(frozen=True, slots=True)
class PartitionLost:
    """This process no longer leads the partition (fenced, lapsed, or handed over)."""

    partition: int


@slot_init
@dataclass(frozen=True, slots=True)
class Reconcile:
    """Another process created, completed or changed this invocation (an inbox message, or
    the watchdog found it stuck): the record and its completions as just read."""

    record: InvocationRecord
    completions: list[str]


# --- intake ---------------------------------------------------------------------------------


@slot_init
@dataclass(frozen=True, slots=True)
class Submit:
    """Create an invocation (ingress, scheduler). ``input_text`` is validated JSON; ``here``:
    this process leads its partition (otherwise its leader admits it from the inbox).
    ``supersedes``: a debounced send's earlier one, as read: still scheduled, it ends
    superseded in the same unit; finished, it gives the key up."""

    invocation_id: str
    target: Target
    key: str | None
    input_text: str
    headers: dict[str, str] | None = None
    idempotency_key: str | None = None
    delay_ms: int = 0
    here: bool = True
    supersedes: InvocationRecord | None = None
    #: A restart-as-new (``_restart``): the journal it starts with, from its input entry
    #: (``input_text`` and ``headers`` are then unused), and the completions of those entries.
    journal: tuple[str, ...] = ()
    completions: tuple[str, ...] = ()


@slot_init
@dataclass(frozen=True, slots=True)
class ScheduledDue:
    """A start timer fired; ``record`` is its invocation as just read (None: purged)."""

    timer: TimerRecord
    record: InvocationRecord | None


@slot_init
@dataclass(frozen=True, slots=True)
class ScheduledRecheck:
    """The start's commit conflicted; ``record`` is the invocation read again."""

    timer: TimerRecord
    record: InvocationRecord | None


# --- drivers --------------------------------------------------------------------------------


@slot_init
@dataclass(frozen=True, slots=True)
class DriverStarted:
    """The driver a ``Drive`` effect asked for is running."""

    invocation_id: str


@dataclass(frozen=True, slots=True)
class Loaded:
    """The driver read its invocation (None: gone) and journal."""

    invocation_id: str
    record: InvocationRecord | None
    entries: list[str] = field(default_factory=list)
    completions: list[str] = field(default_factory=list)


@slot_init
@dataclass(frozen=True, slots=True)
class StateRead:
    """The driver read the key's state rows (a workflow's include its promises)."""

    invocation_id: str
    rows: dict[str, str]


@slot_init
@dataclass(frozen=True, slots=True)
class CompletionsRead:
    """The driver read its completions again (some may have landed while it loaded)."""

    invocation_id: str
    completions: list[str]


@slot_init
@dataclass(frozen=True, slots=True)
class Answered:
    """The endpoint answered the attempt (a decoded, well-formed message)."""

    invocation_id: str
    answer: InvokeResponse


@slot_init
@dataclass(frozen=True, slots=True)
class AttemptFailed:
    """The attempt produced no usable answer: transport error, timeout, malformed answer.
    ``throttled``: the endpoint refused it for load (not counted as an attempt)."""

    invocation_id: str
    message: str
    throttled: bool = False


@slot_init
@dataclass(frozen=True, slots=True)
class LookedUp:
    """What a ``Lookup`` asked for: each awakeable's invocation and journal as read, the
    (workflow, id) pairs whose run exists already, and the workflow key's rows (read under its
    lock, held until the answer's unit is committed)."""

    invocation_id: str
    awakeables: dict[str, tuple[InvocationRecord | None, list[str], list[str]]]
    started: frozenset[tuple[str, str]] = frozenset()
    rows: dict[str, str] | None = None
    #: the invocations that ``Lookup.keyed`` named and that exist, by their tuple
    existing: tuple[tuple[tuple[str, str, str | None, str], InvocationRecord], ...] = ()


@slot_init
@dataclass(frozen=True, slots=True)
class DriverEnded:
    """The driver stopped. ``cause``: ``done`` (the core said so), ``lost`` (the partition
    is not led here), ``fenced`` (a commit was fenced), ``store`` (a store failure),
    ``error`` (anything else), ``cancelled`` (halted, lost, or shutting down)."""

    invocation_id: str
    cause: str = "done"


@slot_init
@dataclass(frozen=True, slots=True)
class RedriveDue:
    """A ``Redrive`` delay has passed."""

    invocation_id: str


# --- commits --------------------------------------------------------------------------------


@slot_init
@dataclass(frozen=True, slots=True)
class Committed:
    """The unit of ``token`` is durable."""

    token: int


@slot_init
@dataclass(frozen=True, slots=True)
class CommitFailed:
    """The unit of ``token`` was not committed. ``reason``: ``conflict`` (a condition failed,
    nothing written), ``fenced`` (another leader), ``store`` (failed or unknown outcome),
    ``cancelled`` (the committing task was cancelled: it may still land)."""

    token: int
    reason: str


# --- timers ---------------------------------------------------------------------------------


@slot_init
@dataclass(frozen=True, slots=True)
class TimersDue:
    """Due timers of partitions led here, in firing order."""

    timers: list[TimerRecord]


@slot_init
@dataclass(frozen=True, slots=True)
class SleepsDue:
    """Sleep timers of one partition to complete by a commit of their own."""

    partition: int
    timers: list[TimerRecord]


@slot_init
@dataclass(frozen=True, slots=True)
class AttachChecked:
    """What a ``CheckAttach`` read: whether the attaching entry still waits (its invocation
    unfinished, the entry not completed), since when (the entry's commit time, Unix ms), and
    the result of the invocation it waits on (its stored result text; None: not finished)."""

    timer: TimerRecord
    waiting: bool
    since_ms: int
    result: str | None


@slot_init
@dataclass(frozen=True, slots=True)
class TimersBack:
    """Timers set aside a moment ago (``Rearm``) come back."""

    timers: list[TimerRecord]


# --- operators and outside completions ------------------------------------------------------


@slot_init
@dataclass(frozen=True, slots=True)
class Stopping:
    """An operator is about to change this invocation: halt its driver, start nothing."""

    invocation_id: str


@dataclass(frozen=True, slots=True)
class Operate:
    """Apply ``action`` (``kill``, ``cancel`` — one that never started —, ``pause``,
    ``resume``) to the invocation as just read, with its journal. ``deployment`` (resume
    only): ``latest``, ``keep`` or a deployment id it goes on with (None: keep). ``result``
    (kill only): the failure text it ends with, a JSON object ``{"failure": {...}}`` its
    caller and waiters receive as it is (None: ``KILLED_RESULT``)."""

    action: str
    invocation_id: str
    record: InvocationRecord | None
    entries: list[str] = field(default_factory=list)
    completions: list[str] = field(default_factory=list)
    here: bool = True
    deployment: str | None = None
    result: str | None = None


@dataclass(frozen=True, slots=True)
class RestartAsNew:
    """Create ``new_id``: a new invocation with the input of the finished invocation
    ``record`` (as just read, with its journal), keeping the entries before ``from_index``,
    on the deployment ``deployment`` names (``latest``, ``keep`` or an id): ``_restart``."""

    invocation_id: str
    record: InvocationRecord | None
    entries: list[str]
    completions: list[str]
    from_index: int
    deployment: str
    new_id: str
    here: bool = True


@slot_init
@dataclass(frozen=True, slots=True)
class Released:
    """The operator is done with the invocation (committed or gave up)."""

    invocation_id: str


@slot_init
@dataclass(frozen=True, slots=True)
class CancelSignal:
    """Store the cancellation signal of a started invocation (as just read)."""

    record: InvocationRecord


@slot_init
@dataclass(frozen=True, slots=True)
class CompleteAwakeable:
    """Resolve or reject an awakeable from outside; its invocation and journal as just read.
    ``result_text`` is ``{"value": ...}`` or ``{"failure": ...}``."""

    awakeable_id: str
    record: InvocationRecord | None
    entries: list[str]
    completions: list[str]
    result_text: str


@slot_init
@dataclass(frozen=True, slots=True)
class Purge:
    """Delete finished invocations (retention, or an operator), with a workflow's state."""

    records: list[InvocationRecord]
    here: bool = True


@slot_init
@dataclass(frozen=True, slots=True)
class HoldKey:
    """An operator wants to write an object key's state: hold the key meanwhile."""

    service: str
    key: str


@slot_init
@dataclass(frozen=True, slots=True)
class WriteState:
    """Replace the user state of a held key: ``rows`` as read, ``texts`` the new values."""

    service: str
    key: str
    rows: dict[str, str]
    texts: dict[str, str]


@slot_init
@dataclass(frozen=True, slots=True)
class ReleaseKey:
    """The operator's state write is over: the key goes to whoever queued behind it."""

    service: str
    key: str


# --- limits (docs/limits.md) -----------------------------------------------------------------


@slot_init
@dataclass(frozen=True, slots=True)
class LimitsDefined:
    """The limits' definitions (the admin API's over the configuration's and the code's).
    ``fresh``: just read from the store (a name still unknown is not defined)."""

    specs: dict[str, LimitSpec]
    fresh: bool = False


@slot_init
@dataclass(frozen=True, slots=True)
class PermitsRead:
    """Permit rows as read: every row of ``partition`` (at its recovery; ``since``: when it
    became ready here), or every row of one limit (``limit``, read again)."""

    rows: list[PermitRecord]
    partition: int | None = None
    limit: str | None = None
    since: int | None = None
    #: the limits' clock when the read began (``LimitTable.clock``): rows memory learned of
    #: since keep what memory says
    read_from: int | None = None


@slot_init
@dataclass(frozen=True, slots=True)
class PermitChanged:
    """Another process asked or released a permit of a limit owned here: its row as just
    read (None: released)."""

    limit: str
    invocation_id: str
    index: int
    row: PermitRecord | None
    #: the limits' clock when the read began (see ``PermitsRead``)
    read_from: int | None = None


@slot_init
@dataclass(frozen=True, slots=True)
class PermitNoticed:
    """An inbox message names a row of a limit owned here; the runtime reads it next (and
    reports ``PermitChanged`` with the clock it read after this)."""

    limit: str
    invocation_id: str
    index: int


@slot_init
@dataclass(frozen=True, slots=True)
class LimitsDue:
    """A grant turn is due (``LimitTurn``)."""


Event = (
    Booted
    | Closing
    | PartitionClaimed
    | PartitionRecovered
    | CompletionsFound
    | PartitionDraining
    | PartitionLost
    | Reconcile
    | Submit
    | ScheduledDue
    | ScheduledRecheck
    | DriverStarted
    | Loaded
    | StateRead
    | CompletionsRead
    | Answered
    | AttemptFailed
    | LookedUp
    | DriverEnded
    | RedriveDue
    | Committed
    | CommitFailed
    | TimersDue
    | SleepsDue
    | AttachChecked
    | TimersBack
    | Stopping
    | Operate
    | RestartAsNew
    | Released
    | CancelSignal
    | CompleteAwakeable
    | Purge
    | HoldKey
    | WriteState
    | ReleaseKey
    | LimitsDefined
    | PermitsRead
    | PermitChanged
    | PermitNoticed
    | LimitsDue
)
