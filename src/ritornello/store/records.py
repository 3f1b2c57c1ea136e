"""Records the store holds, and the commit unit that changes them atomically.

JSON payloads (journal entries, completions, state values, results) are stored as *text*, encoded
once by the orchestrator, so the store never parses them and journals can be sent to endpoints
by concatenation.
"""

from __future__ import annotations

import json
import operator
from dataclasses import MISSING, dataclass, field, fields
from enum import StrEnum
from typing import Any, TypeVar

_T = TypeVar("_T")


def slot_init(cls: type[_T]) -> type[_T]:
    """Give a frozen, slotted dataclass a faster ``__init__`` with the same signature, defaults
    and result: it stores each field through its slot's descriptor, where the generated one
    calls ``object.__setattr__`` by name per field to get past ``frozen`` (the hot path builds
    a few invocation records per request: 23 fields, about twice as fast). ``frozen`` still
    holds after ``__init__``: only ``__init__`` is replaced. For classes with no default
    factory and no ``__post_init__``."""
    params: list[str] = []
    lines: list[str] = []
    names: dict[str, Any] = {}
    for f in fields(cls):  # type: ignore[arg-type]
        if f.default_factory is not MISSING or not f.init:
            raise TypeError(f"{cls.__name__}.{f.name}: a default factory or init=False")
        names[f"_set_{f.name}"] = getattr(cls, f.name).__set__  # the slot's member descriptor
        if f.default is MISSING:
            params.append(f.name)
        else:
            names[f"_default_{f.name}"] = f.default
            params.append(f"{f.name}=_default_{f.name}")
        lines.append(f"    _set_{f.name}(self, {f.name})\n")
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__} has a __post_init__")
    body = "".join(lines) or "    pass\n"  # a class with no fields
    exec(f"def __init__(self, {', '.join(params)}):\n{body}", names)
    init = names["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    cls.__init__ = init  # type: ignore[method-assign]
    return cls


class Status(StrEnum):
    """An invocation's status (docs/orchestrator.md draws the transitions).

    Records hold the plain ``str`` value (``Status.RUNNING.value``), never the member: the
    SQLite writer process ships records with ``marshal``, which refuses ``str`` subclasses.
    Members compare equal to their values, so ``rec.status == Status.RUNNING`` holds."""

    PENDING = "pending"  # queued behind an exclusive handler on the same object key
    SCHEDULED = "scheduled"  # a delayed send, waiting for its start time
    RUNNING = "running"  # an attempt is (or is about to be) running
    SUSPENDED = "suspended"  # waiting on a completion; nothing running
    BACKING_OFF = "backing-off"  # a failed attempt; waiting on the retry timer
    PAUSED = "paused"  # retries exhausted or paused by an operator
    COMPLETED = "completed"  # finished: result holds {"value": ...} or {"failure": ...}
    KILLED = "killed"  # stopped by an operator


#: Every status, in lifecycle order (plain strings).
STATUSES: tuple[str, ...] = tuple(s.value for s in Status)
#: Finished: the invocation holds its result and never changes again (only purge removes it).
FINAL_STATUSES: frozenset[str] = frozenset({Status.COMPLETED.value, Status.KILLED.value})
#: Not finished: everything else (what recovery, the watchdog and the checker read).
LIVE_STATUSES: frozenset[str] = frozenset(STATUSES) - FINAL_STATUSES


@slot_init
@dataclass(frozen=True, slots=True)
class InvocationRecord:
    """One invocation. ``version`` increases by one on every write (optimistic concurrency)."""

    id: str
    service: str
    handler: str
    key: str | None
    handler_kind: str  # exclusive | shared | workflow
    status: str
    deployment_id: str
    seq: int  # arrival order, global and increasing
    created_at: int  # Unix ms
    modified_at: int  # Unix ms
    attempt: int = 1
    journal_len: int = 1
    waiting: tuple[int, ...] = ()
    caller_id: str | None = None
    caller_index: int | None = None
    idempotency_key: str | None = None
    result: str | None = None  # JSON text, set when completed
    last_error: str | None = None
    next_at: int | None = None  # Unix ms of the retry or scheduled start, if any
    version: int = 1
    #: The partition whose leader drives it (orchestrator/_partitions.py: by object key, else
    #: by id). Fixed at creation.
    partition: int = 0
    #: Unix ms after which a terminal invocation may be purged (set when it becomes terminal);
    #: reads may treat an invocation past it as gone (DynamoDB's TTL deletes it late).
    expires_at: int | None = None
    #: The failed attempts, as JSON text: ``[{"attempt": n, "at": unix_ms, "error": "..."}]``,
    #: oldest first, the last ``HISTORY_LIMIT`` only (``with_failure`` appends); None: none.
    history: str | None = None


_INVOCATION_FIELDS = tuple(f.name for f in fields(InvocationRecord))
_INVOCATION_VALUES = operator.attrgetter(*_INVOCATION_FIELDS)
_INVOCATION_INDEX = {name: i for i, name in enumerate(_INVOCATION_FIELDS)}


def with_changes(record: InvocationRecord, **changes: Any) -> InvocationRecord:
    """``dataclasses.replace(record, **changes)`` in about half the time: the values are read
    in one C call and the record is built positionally (the hot path builds a few records per
    request, and ``replace`` walks the 23 fields in Python). An unknown field: TypeError."""
    values = list(_INVOCATION_VALUES(record))
    for name, value in changes.items():
        i = _INVOCATION_INDEX.get(name)
        if i is None:
            raise TypeError(f"InvocationRecord has no field {name!r}")
        values[i] = value
    return InvocationRecord(*values)


#: How many failed attempts ``InvocationRecord.history`` keeps (the most recent ones), and
#: how much of each error message (so a record stays far below DynamoDB's item limit).
HISTORY_LIMIT = 20
HISTORY_ERROR_CHARS = 1000


def with_failure(history: str | None, attempt: int, at_ms: int, error: str) -> str:
    """``history`` (an ``InvocationRecord.history``) with one more failed attempt appended,
    cut to the last ``HISTORY_LIMIT`` (each error to ``HISTORY_ERROR_CHARS``). Unparseable
    old text is replaced, never raised on."""
    try:
        found = json.loads(history) if history else []
    except ValueError:
        found = []
    failures = [f for f in found if isinstance(f, dict)] if isinstance(found, list) else []
    failures.append({"attempt": attempt, "at": at_ms, "error": error[:HISTORY_ERROR_CHARS]})
    return json.dumps(failures[-HISTORY_LIMIT:], separators=(",", ":"))


@slot_init
@dataclass(frozen=True, slots=True)
class TimerRecord:
    """A durable timer. ``kind``: ``sleep`` completes entry ``index``; ``retry`` starts the next
    attempt; ``start`` starts a scheduled invocation."""

    fire_at: int  # Unix ms
    invocation_id: str
    kind: str
    index: int = 0
    partition: int = 0  # the invocation's partition (not part of the timer's name)


@dataclass(frozen=True, slots=True)
class DeploymentRecord:
    """A registered endpoint and what discovery found there (``services`` is JSON text)."""

    id: str
    uri: str
    services: str
    created_at: int


@dataclass(frozen=True, slots=True)
class ServiceSettingsRecord:
    """An operator's overrides of a service's settings (``PATCH /services/{service}``), kept
    apart from any deployment so they outlive re-registrations. ``settings`` is JSON text: an
    object of the ``protocol.Settings`` fields set (``{}``: none)."""

    service: str
    settings: str
    updated_at: int  # Unix ms


#: ``ScheduleRecord.overlap`` values: ``skip`` a fire while the previous fire's invocation is
#: not finished, or ``allow`` it.
OVERLAP_POLICIES = ("skip", "allow")


@dataclass(frozen=True, slots=True)
class ScheduleRecord:
    """A cron schedule (docs/schedules.md): each fire time is an ordinary invocation of
    ``service/handler`` (object ``key``, if any) with ``input``, created with the idempotency
    key ``schedule:{id}:{fire time in Unix ms}``.

    ``checked_until`` (Unix ms): every fire time at or before it has been dealt with (fired,
    skipped for overlap, passed over by catch-up, or passed while paused); the scheduler fires
    the times after it. ``version`` increases by one on every write: ``put_schedule`` compares
    it, so two writers cannot both move the schedule on."""

    id: str
    cron: str
    service: str
    handler: str
    key: str | None
    input: str  # JSON text
    overlap: str  # one of OVERLAP_POLICIES
    timezone: str  # IANA name, "UTC" by default
    paused: bool
    created_at: int  # Unix ms
    checked_until: int  # Unix ms
    partition: int = 0  # the partition whose leader fires it (by id; fixed at creation)
    last_fire_at: int | None = None  # the fire time (Unix ms) of the last invocation created
    last_invocation_id: str | None = None
    fires: int = 0  # invocations created
    skipped: int = 0  # fire times skipped because the previous invocation was still running
    missed: int = 0  # fire times passed over by catch-up after downtime (see docs)
    version: int = 1


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    """Leadership of one partition.

    ``epoch`` increases by one at every claim (change of leader), ``version`` at every write
    (claim, renewal, release); ``owner`` None means released. Expiry is never judged from
    ``renewed_at`` (a wall clock, for display): a contender watches ``version`` on its own
    monotonic clock and may claim once it has not moved for a lease period."""

    partition: int
    owner: str | None
    epoch: int
    version: int
    renewed_at: int  # Unix ms


@dataclass(frozen=True, slots=True)
class MemberRecord:
    """An orchestrator process that takes part in leadership (for balancing partitions)."""

    node: str
    address: str  # where its ingress listens (informational)
    heartbeat_at: int  # Unix ms of its last heartbeat
    version: int = 1


@dataclass(frozen=True, slots=True)
class LimitRecord:
    """A named limit set through the admin API (docs/limits.md). ``concurrency``: at most that
    many permits held at once (None: unbounded); ``rate`` permits per ``per_ms`` with ``burst``
    more at once (None: no rate bound). ``version`` increases by one on every write:
    ``put_limit`` compares it, as ``put_schedule`` does."""

    name: str
    concurrency: int | None
    rate: float | None
    per_ms: int
    burst: int
    updated_at: int  # Unix ms
    version: int = 1
    #: one instance per key (docs/limits.md), each with the whole budget
    per_key: bool = False


@slot_init
@dataclass(frozen=True, slots=True)
class PermitRecord:
    """One invocation's place in a limit instance: waiting for a permit (``granted_at`` None)
    or holding one. Named by (``limit``, ``invocation_id``, ``index``). Written only by the
    leader of ``partition`` (the limit instance's partition, its owner: grants) or by the
    holder's leader (ask, release), through ``CommitUnit.permits_*``."""

    limit: str  # the limit instance's name (any unicode)
    invocation_id: str
    index: int  # the holder's journal index of the permit entry (any int, -1 included)
    partition: int  # the limit instance's partition (its owner)
    priority: int
    asked_at: int  # Unix ms
    granted_at: int | None = None  # Unix ms


def permit_order(p: PermitRecord) -> tuple[str, bool, int, int, str, int]:
    """The order of ``list_permits``: by limit, holders first, then waiters in service order
    (higher priority first, then the oldest), then by invocation id and index."""
    return (p.limit, p.granted_at is None, -p.priority, p.asked_at, p.invocation_id, p.index)


@slot_init
@dataclass(frozen=True, slots=True)
class InvocationWrite:
    """Write ``record``. ``expect_version`` None: insert, and do nothing if the id exists
    (idempotent creation of derived callees); otherwise the stored version must equal it, and
    ``record.version`` must be ``expect_version + 1``."""

    record: InvocationRecord
    expect_version: int | None = None


@dataclass(slots=True)
class CommitUnit:
    """Everything one handler answer (or one ingress request, or one timer) changes.

    All of it is written, or none of it: a failed condition raises ``ConflictError`` and the
    unit leaves no trace. Journal entries are append-only: writing an existing (id, index)
    is a conflict. Completions are first-writer-wins: a second completion of the same index is
    silently ignored (duplicate deliveries are harmless), unless the unit names it in
    ``fresh``: then it must be the first, checked in the same atomic step as the write, and an
    existing one is a conflict (a completion from outside, such as an awakeable resolved
    through the ingress, whose sender must learn that it lost). ``fresh`` costs nothing when
    empty, as it is for every completion the engine writes itself. Two invocations may not share
    (service, handler, key, idempotency_key) when the idempotency key is set (``key`` None and
    ``""`` are distinct): writing a second one is a conflict.

    The parts apply in this order, so a later part sees the earlier ones: ``purge``,
    ``invocations`` (in list order), ``entries``, ``completions``, ``completions_remove``,
    ``state`` (in list order), ``timers_remove``, ``timers_add``, ``permits_release``,
    ``permits_ask``, ``permits_grant``, ``notify``. A timer is named by (invocation_id, kind,
    index); adding one that exists replaces it (new ``fire_at``), removing ignores ``fire_at``
    and a missing timer. ``completions_remove`` (invocation id, index) deletes a completion
    (a missing one is fine).

    Permits (``PermitRecord``, named by (limit, invocation_id, index)): ``permits_release``
    deletes (a missing one is fine); ``permits_ask`` inserts, and leaves a row of that name
    exactly as it is (no error); ``permits_grant`` replaces a row that must exist and be
    waiting (``granted_at`` None) with the given, granted record, else ``ConflictError``.
    ``purge`` leaves an invocation's permits alone (the orchestrator releases them).

    ``fences`` (partition, epoch): the unit applies only if each partition's lease is held
    (owner not None) at exactly that epoch; otherwise ``FencedError`` (a ConflictError) and
    nothing is written. ``notify`` (partition, invocation id) adds a message to that
    partition's inbox (the leader of another partition learns of a new invocation or a
    completion it must act on); messages are not deduplicated, acting on one is idempotent.

    ``commit`` raises ValueError, before writing anything, for a malformed unit: an
    ``InvocationWrite`` whose ``record.version`` is not ``expect_version + 1``, a state
    change with a value but no name, a ``fresh`` pair that is not the (id, index) of
    exactly one of the unit's completions, or a grant whose ``granted_at`` is None.
    """

    invocations: list[InvocationWrite] = field(default_factory=list)
    entries: list[tuple[str, int, str]] = field(default_factory=list)  # (inv id, index, json)
    completions: list[tuple[str, int, str]] = field(default_factory=list)
    # (service, key, name, json text or None to clear); name None with value None clears all
    state: list[tuple[str, str, str | None, str | None]] = field(default_factory=list)
    timers_add: list[TimerRecord] = field(default_factory=list)
    timers_remove: list[TimerRecord] = field(default_factory=list)
    # invocation ids to delete with their journal, completions and timers (not object state)
    purge: list[str] = field(default_factory=list)
    fences: list[tuple[int, int]] = field(default_factory=list)  # (partition, epoch)
    notify: list[tuple[int, str]] = field(default_factory=list)  # (partition, invocation id)
    # (invocation id, index) of completions above that must be new (else ConflictError)
    fresh: list[tuple[str, int]] = field(default_factory=list)
    # (invocation id, index) of completions to delete (after ``completions``)
    completions_remove: list[tuple[str, int]] = field(default_factory=list)
    permits_ask: list[PermitRecord] = field(default_factory=list)
    permits_grant: list[PermitRecord] = field(default_factory=list)
    permits_release: list[tuple[str, str, int]] = field(default_factory=list)  # (limit, id, index)


# --- a commit unit as plain tuples (the SQLite writer process's wire form) ------------------

_TIMER_VALUES = operator.attrgetter(*(f.name for f in fields(TimerRecord)))
_PERMIT_VALUES = operator.attrgetter(*(f.name for f in fields(PermitRecord)))
_UnitTuple = tuple[Any, ...]


def unit_to_tuple(unit: CommitUnit) -> _UnitTuple:
    """``unit`` as nested tuples and lists of str, int and None only (what ``marshal`` can
    write: 1.9 µs a unit with ``marshal``, against 6.5 for pickling the records).
    ``unit_from_tuple`` inverts it exactly."""
    return (
        [(_INVOCATION_VALUES(w.record), w.expect_version) for w in unit.invocations],
        unit.entries,
        unit.completions,
        unit.state,
        [_TIMER_VALUES(t) for t in unit.timers_add],
        [_TIMER_VALUES(t) for t in unit.timers_remove],
        unit.purge,
        unit.fences,
        unit.notify,
        unit.fresh,
        unit.completions_remove,
        [_PERMIT_VALUES(p) for p in unit.permits_ask],
        [_PERMIT_VALUES(p) for p in unit.permits_grant],
        unit.permits_release,
    )


def unit_from_tuple(values: _UnitTuple) -> CommitUnit:
    """The unit ``unit_to_tuple`` wrote, after a ``marshal`` round trip (which keeps lists
    and tuples apart)."""
    (
        invocations, entries, completions, state, add, remove, purge, fences, notify, fresh,
        removed, asks, grants, releases,
    ) = values  # fmt: skip
    return CommitUnit(
        [InvocationWrite(InvocationRecord(*r), v) for r, v in invocations],
        entries,
        completions,
        state,
        [TimerRecord(*t) for t in add],
        [TimerRecord(*t) for t in remove],
        purge,
        fences,
        notify,
        fresh,
        removed,
        [PermitRecord(*p) for p in asks],
        [PermitRecord(*p) for p in grants],
        releases,
    )
