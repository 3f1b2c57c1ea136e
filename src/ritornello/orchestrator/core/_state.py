"""The core's memory and the moves every transition shares (start a driver, deliver a
completion, free a key, emit a unit).

Invariants (each one is what a test tries to break):

* The store is the truth; this is a cache of it for the partitions led here, rebuilt by
  ``PartitionRecovered``. It holds: the invocations driven here (``driving``), the suspended
  ones (``suspended``), the key queues, and the commits in flight (``pending``).
* At most one driver per invocation: ``drive`` refuses one that is driven, being created
  (its creation is not committed yet), or held by an operator.
* One exclusive invocation per object key at a time, in arrival order: only a queue's head
  runs (``may_run``), and a head that leaves starts the next one (``unqueue``).
* Nothing is started, woken, answered or armed because of a unit before that unit is
  committed: effects come out of ``Committed`` (``Pending.committed``), never with the unit.
* A key's queue is complete only once its partition is recovered (``ready``): until then no
  exclusive invocation of it starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ritornello.protocol import InvokeResponse, RetryPolicy
from ritornello.store.records import (
    FINAL_STATUSES,
    CommitUnit,
    InvocationRecord,
    InvocationWrite,
    Status,
    TimerRecord,
    with_changes,
)

from ._answer import DEFAULT_RETRY
from ._effects import Arm, Decision, Drive, Effect, Invoke, Reply
from ._invocation import Invocation
from ._journal import stamp_unit
from ._limits import LimitTable
from ._partition import partition_of
from ._queues import KeyQueues, exclusive_key
from ._registry import Registry
from ._settings import retention_of


@dataclass(slots=True)
class Driving:
    """A driver's place in the core: ``invocation`` once loaded (or prepared), ``timer`` the
    timer that woke it until the invocation holds it, ``reload`` when completions may have
    landed while it loaded, ``answer`` the answer whose lookups are being read."""

    invocation: Invocation | None = None
    timer: TimerRecord | None = None
    reload: bool = False
    #: the answer being settled (while its lookups are read)
    answer: InvokeResponse | None = None
    #: the driver's ``Invoke`` action, made once
    invoke: Invoke | None = None
    #: its invocation is a workflow's (promises read before every attempt); None: not known yet
    workflow: bool | None = None
    #: its invocation's partition, once known (a driver started by id alone learns it on load)
    partition: int | None = None


class Pending(Protocol):
    """A unit in flight: what its commit or its failure means to the core."""

    def committed(self, core: CoreState, now: int) -> Decision: ...

    def failed(self, core: CoreState, reason: str, now: int) -> Decision: ...


@dataclass(slots=True)
class Plain:
    """A unit whose outcome changes nothing in memory (purges, operator state writes)."""

    def committed(self, core: CoreState, now: int) -> Decision:
        return Decision()

    def failed(self, core: CoreState, reason: str, now: int) -> Decision:
        return Decision()


class CoreState:
    """The memory of the core (see the module docstring). Only ``Core.apply`` changes it."""

    def __init__(
        self,
        registry: Registry,
        *,
        partitions: int = 1,
        exclusive: bool = True,
        retry: RetryPolicy | None = None,
        retention_ms: int = 86_400_000,
    ) -> None:
        #: Deployments, services and handlers (read-only here: the runtime changes them).
        self.registry = registry
        self.partitions = max(1, partitions)
        #: Nobody else can write the store (SQLite's file lock): caches of reads stay valid.
        self.exclusive = exclusive
        #: The default retry policy; a handler's declared one overrides it field by field.
        self.retry = (retry or RetryPolicy()).merged_over(DEFAULT_RETRY)
        #: How long a finished invocation is kept before it may be purged.
        self.retention_ms = retention_ms
        self.seq = 0
        self.closing = False
        self.keys = KeyQueues()
        self.driving: dict[str, Driving] = {}
        #: suspended invocations: id -> (entries awaited, partition)
        self.suspended: dict[str, tuple[tuple[int, ...], int]] = {}
        #: partitions whose lease this process holds (recovered or not)
        self.claimed: set[int] = set()
        #: partitions led here whose recovery has finished
        self.ready: set[int] = set()
        #: partitions being handed over: still led (what is in flight commits), but no attempt
        #: starts on them and new work for them is left to the store for their next leader
        self.draining: set[int] = set()
        #: invocations whose creation is being committed: nothing starts them meanwhile
        self.creating: set[str] = set()
        #: invocations an operator is changing: nothing starts them meanwhile
        self.stopping: set[str] = set()
        self.pending: dict[int, Pending] = {}
        #: units in flight that ask or release permits, by token: the owners led here learn
        #: of them once they are committed (``_grants.noted``)
        self.permit_units: dict[int, CommitUnit] = {}
        #: the limits owned here (``_limits``, ``_grants``)
        self.limits = LimitTable()
        self._token = 0

    # ------------------------------------------------------------------ small facts

    def retention_for(self, rec: InvocationRecord) -> int:
        """How long (ms) the finished ``rec`` is kept: its handler's effective settings
        (``retention_of``), else ``retention_ms``."""
        settings = self.registry.settings_of(rec.deployment_id, rec.service, rec.handler)
        if settings is None:
            return self.retention_ms
        return retention_of(settings, rec, self.retention_ms)

    def partition_of(self, service: str, key: str | None, invocation_id: str) -> int:
        return partition_of(service, key, invocation_id, self.partitions)

    def key_partition(self, service: str, key: str) -> int:
        return partition_of(service, key, "", self.partitions)

    def next_seq(self, now: int) -> int:
        """Arrival order: increasing here, and roughly ordered by time across processes
        sharing a store (microseconds since the epoch, or one more than the last)."""
        self.seq = max(self.seq + 1, now * 1000)
        return self.seq

    def policy(self, rec: InvocationRecord) -> RetryPolicy:
        return self.registry.policy(self.retry, rec.deployment_id, rec.service, rec.handler)

    def loaded(self, invocation_id: str) -> Invocation | None:
        d = self.driving.get(invocation_id)
        return d.invocation if d is not None else None

    # ------------------------------------------------------------------ key queues

    def admit(self, rec: InvocationRecord) -> str:
        """Place a new invocation in its key's queue: its status, ``running`` if it may start
        now. Not before its partition is recovered here: the key may have a holder the
        recovery has yet to read, so the newcomer is ``pending``, and the recovery puts it
        behind what it reads and starts it if it comes first (simulation seed 8444). Nor in
        a partition being handed over: ``pending``, for its next leader's recovery to queue."""
        key = exclusive_key(rec)
        if key is None:
            return Status.RUNNING.value
        if rec.partition not in self.ready or rec.partition in self.draining:
            if rec.partition in self.claimed and rec.partition not in self.draining:
                self.keys.queue_for(key).append(rec.id)  # led here, its recovery to come
            return Status.PENDING.value  # led elsewhere (or soon): its leader admits it
        q = self.keys.queue_for(key)
        q.append(rec.id)
        return Status.RUNNING.value if q[0] == rec.id else Status.PENDING.value

    def may_run(self, rec: InvocationRecord) -> bool:
        """Whether ``rec`` may start: it holds its key (or has none), and the key's queue is
        complete (its partition recovered here)."""
        if exclusive_key(rec) is None:
            return True
        return rec.partition in self.ready and self.keys.is_head(rec)

    def unqueue(self, rec: InvocationRecord) -> list[Effect]:
        """Take ``rec`` out of its key's queue; if it held the key, start the next one.

        The next one gets the invocation the ingress prepared for it, so its driver need not
        read it back. When ``rec`` is the very record a driver here just finished with, that
        driver's state is the key's committed state (loaded, then changed only by its own
        committed units, and only an exclusive holder writes a key's state): the next holder
        starts with a copy instead of reading it; when nobody is next, the copy is kept for
        the key's next holder (an exclusive store only)."""
        done = self.loaded(rec.id)
        state = None
        if done is not None and done.rec is rec and done.promises is None:
            state = done.state
        key = exclusive_key(rec)
        held, head = self.keys.remove(rec)
        if key is None or not held:
            return []
        if head is None:
            if state is not None and self.exclusive:
                self.keys.keep_state(key, state)
            return []
        nxt = self.keys.prepared.pop(head, None)
        if nxt is not None and nxt.state is None and state is not None:
            nxt.state = dict(state)
        return self.drive(head, nxt, partition=rec.partition)  # a key's queue: one partition

    # ------------------------------------------------------------------ drivers

    def drive(
        self,
        invocation_id: str,
        prepared: Invocation | None = None,
        timer: TimerRecord | None = None,
        partition: int | None = None,
    ) -> list[Effect]:
        """Start a driver unless one runs or may not start (empty: refused). ``partition``:
        the invocation's, when the caller knows it (a prepared invocation, a timer or the
        suspended set tell it too): a partition being handed over starts no driver."""
        if (
            self.closing
            or invocation_id in self.driving
            or invocation_id in self.stopping
            # its creation is being committed: a driver now could read the store before it
            # lands, find nothing and stop; the creator starts it once the commit is done
            or invocation_id in self.creating
        ):
            return []
        if partition is None:
            if prepared is not None:
                partition = prepared.rec.partition
            elif timer is not None:
                partition = timer.partition
            elif invocation_id in self.suspended:
                partition = self.suspended[invocation_id][1]
        if partition is not None and partition in self.draining:
            return []  # its next leader drives it (its recovery reads it from the store)
        self.suspended.pop(invocation_id, None)
        self.driving[invocation_id] = Driving(prepared, timer, partition=partition)
        return [Drive(invocation_id)]

    def deliver(self, invocation_id: str, index: int, text: str) -> list[Effect]:
        """A completion for entry ``index`` was committed: hand it over."""
        inv = self.loaded(invocation_id)
        if inv is not None:
            inv.completions.setdefault(index, text)  # first writer wins, as in the store
        return self.wake(invocation_id)

    def wake(self, invocation_id: str) -> list[Effect]:
        """A completion for the invocation was committed: resume it if it is suspended here.
        A driver still loading may have read the journal before the completion landed: it
        reads completions again before it may suspend."""
        d = self.driving.get(invocation_id)
        if d is not None:
            if d.invocation is None:
                d.reload = True
            return []
        if invocation_id in self.suspended:
            return self.drive(invocation_id)
        return []

    def finish(self, rec: InvocationRecord) -> list[Effect]:
        """The invocation finished (committed): answer its waiters, free its key."""
        return [Reply(rec.id, rec.result or "{}"), *self.unqueue(rec)]

    def rearm(self, timers: list[TimerRecord]) -> list[Effect]:
        """Arm again the timers of partitions still led here (a lost one's new leader loaded
        them)."""
        return [Arm(t) for t in timers if t.partition in self.ready]

    # ------------------------------------------------------------------ units

    def emit(self, unit: CommitUnit, home: int | None, pending: Pending, now: int) -> Decision:
        """A decision that commits ``unit``: finished records get their expiry, entries and
        completions their commit time, a key whose state the unit writes loses its cached
        copy; ``pending`` says what the outcome means."""
        invocations = unit.invocations
        for n, write in enumerate(invocations):
            rec = write.record
            if rec.expires_at is None and rec.status in FINAL_STATUSES:
                invocations[n] = InvocationWrite(
                    with_changes(rec, expires_at=rec.modified_at + self.retention_for(rec)),
                    write.expect_version,
                )
        stamp_unit(unit, now)
        if unit.state and self.keys.states:
            self.keys.forget_states([(service, key) for service, key, _, _ in unit.state])
        self._token += 1
        self.pending[self._token] = pending
        if unit.permits_ask or unit.permits_release:
            self.permit_units[self._token] = unit
        return Decision(unit=unit, home=home, token=self._token)


def input_of(unit: CommitUnit, invocation_id: str) -> str:
    """The input entry a unit writes for an invocation it creates."""
    for inv, index, text in unit.entries:
        if inv == invocation_id and index == 0:
            return text
    raise AssertionError(f"unit creates {invocation_id} without an input entry")
