"""``Core``: the invocation state machine, driven through one method.

``apply(event, now) -> Decision``: one event in, what to do out (``_effects``). Synchronous, no
I/O, no clock reads (``now``, Unix ms, comes with every event), no randomness (ids come with
the events that create invocations). The runtime (``orchestrator/runtime``) performs the
decisions: it commits units, reports their outcome, runs drivers, arms timers, answers waiters.

The queries below read the core's memory for the runtime (the watchdog, the metrics, the
ingress's waiters); none changes it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ritornello.store.records import InvocationRecord, Status

from . import _drive, _grants, _intake, _operator, _partitions, _restart, _timers
from ._effects import Decision
from ._events import (
    Answered,
    AttachChecked,
    AttemptFailed,
    Booted,
    CancelSignal,
    Closing,
    CommitFailed,
    Committed,
    CompleteAwakeable,
    CompletionsFound,
    CompletionsRead,
    DriverEnded,
    DriverStarted,
    Event,
    HoldKey,
    LimitsDefined,
    LimitsDue,
    Loaded,
    LookedUp,
    Operate,
    PartitionClaimed,
    PartitionDraining,
    PartitionLost,
    PartitionRecovered,
    PermitChanged,
    PermitNoticed,
    PermitsRead,
    Purge,
    Reconcile,
    RedriveDue,
    Released,
    ReleaseKey,
    RestartAsNew,
    ScheduledDue,
    ScheduledRecheck,
    SleepsDue,
    StateRead,
    Stopping,
    Submit,
    TimersBack,
    TimersDue,
    WriteState,
)
from ._invocation import Invocation
from ._queues import exclusive_key
from ._state import CoreState


def _booted(core: CoreState, ev: Booted, now: int) -> Decision:
    core.seq = max(core.seq, ev.max_seq)
    core.partitions = max(1, ev.partitions)
    core.exclusive = ev.exclusive
    return Decision()


def _closing(core: CoreState, ev: Closing, now: int) -> Decision:
    core.closing = True
    return Decision()


def _committed(core: CoreState, ev: Committed, now: int) -> Decision:
    decision = core.pending.pop(ev.token).committed(core, now)
    unit = core.permit_units.pop(ev.token, None)
    if unit is not None:  # asks and releases: the owners led here learn of them now
        decision.effects = [*decision.effects, *_grants.noted(core, unit, now)]
    return decision


def _commit_failed(core: CoreState, ev: CommitFailed, now: int) -> Decision:
    decision = core.pending.pop(ev.token).failed(core, ev.reason, now)
    unit = core.permit_units.pop(ev.token, None)
    if unit is not None:  # grants made at once in it are not out
        decision.effects = [*decision.effects, *_grants.not_noted(core, unit, ev.reason, now)]
    return decision


_HANDLERS: dict[type, Callable[[CoreState, Any, int], Decision]] = {
    Booted: _booted,
    Closing: _closing,
    PartitionClaimed: _partitions.claimed,
    PartitionRecovered: _partitions.recovered,
    CompletionsFound: _partitions.completions_found,
    PartitionDraining: _partitions.draining,
    PartitionLost: _partitions.lost,
    Reconcile: _partitions.reconcile,
    Submit: _intake.submit,
    ScheduledDue: _intake.scheduled_due,
    ScheduledRecheck: _intake.scheduled_recheck,
    DriverStarted: _drive.started,
    Loaded: _drive.loaded,
    StateRead: _drive.state_read,
    CompletionsRead: _drive.completions_read,
    Answered: _drive.answered,
    AttemptFailed: _drive.attempt_failed,
    LookedUp: _drive.looked_up,
    DriverEnded: _drive.ended,
    RedriveDue: _drive.redrive_due,
    Committed: _committed,
    CommitFailed: _commit_failed,
    TimersDue: _timers.timers_due,
    SleepsDue: _timers.sleeps_due,
    AttachChecked: _timers.attach_checked,
    TimersBack: _timers.timers_back,
    Stopping: _operator.stopping,
    Operate: _operator.operate,
    RestartAsNew: _restart.restart_as_new,
    Released: _operator.released,
    CancelSignal: _operator.cancel_signal,
    CompleteAwakeable: _operator.complete_awakeable,
    Purge: _operator.purge,
    HoldKey: _operator.hold_key,
    WriteState: _operator.write_state,
    ReleaseKey: _operator.release_key,
    LimitsDefined: _grants.defined,
    PermitsRead: _grants.permits_read,
    PermitChanged: _grants.permit_changed,
    PermitNoticed: _grants.permit_noticed,
    LimitsDue: _grants.due,
}


class Core(CoreState):
    """The invocation state machine of the partitions this process leads."""

    def apply(self, event: Event, now: int) -> Decision:
        """Take one event (``now``: Unix ms) and say what to do. A command the core refuses
        (an operator's action on a finished invocation, a forged awakeable) raises an
        ``OrchestratorError`` and changes nothing."""
        return _HANDLERS[type(event)](self, event, now)

    # ------------------------------------------------------------------ queries

    def is_ready(self, partition: int) -> bool:
        """Whether the partition's recovery has finished here (it is led here, or was until a
        ``PartitionLost`` the runtime has yet to report)."""
        return partition in self.ready

    def is_draining(self, partition: int) -> bool:
        """Whether the partition is being handed over (see ``PartitionDraining``)."""
        return partition in self.draining

    def drivers_in(self, partition: int) -> int:
        """How many drivers run for invocations of ``partition`` (those whose partition is
        known: one still loading by id alone is not counted — it has done nothing yet, and
        ends before any attempt once it learns its partition is being handed over)."""
        return sum(1 for d in self.driving.values() if d.partition == partition)

    def is_driven(self, invocation_id: str) -> bool:
        return invocation_id in self.driving

    def is_suspended(self, invocation_id: str) -> bool:
        return invocation_id in self.suspended

    def still_suspended(self, invocation_ids: list[str]) -> list[str]:
        return [i for i in invocation_ids if i in self.suspended and i not in self.driving]

    def live(self, invocation_id: str) -> Invocation | None:
        """The invocation as its driver here holds it (None: not driven here, or loading)."""
        return self.loaded(invocation_id)

    def partition_known(self, invocation_id: str) -> int | None:
        """The partition of an invocation driven here (None: not known in memory)."""
        inv = self.loaded(invocation_id)
        return inv.rec.partition if inv is not None else None

    def unfinished_here(self, rec: InvocationRecord) -> bool:
        """True when ``rec`` (just created by a ``Submit`` of a partition led here) cannot
        have finished yet: running, its driver started in this very turn of the loop; or
        pending, still in its key's queue (its finish always takes it out). Either way its end
        comes as a ``Reply``."""
        if rec.status == Status.RUNNING:
            return rec.id in self.driving
        if rec.status == Status.PENDING:
            return self.keys.contains(rec)
        return False

    def handed_over(self, invocation_id: str) -> bool:
        """Whether an invocation a timer woke got through its first attempt since (its record
        moved on from suspended or backing-off), or nothing here drives it."""
        inv = self.loaded(invocation_id)
        if inv is None:
            return invocation_id not in self.driving  # a driver without one is loading
        return inv.rec.status not in (Status.SUSPENDED, Status.BACKING_OFF)

    def waits_for_key(self, rec: InvocationRecord) -> bool:
        """``rec`` waits in its key's queue behind another (it will start when its turn
        comes)."""
        key = exclusive_key(rec)
        q = self.keys.queues.get(key) if key is not None else None
        return q is not None and rec.id in q and q[0] != rec.id

    def gauges(self) -> dict[str, int]:
        """Counts of what memory holds: drivers, suspended invocations, invocations queued
        behind a key's holder, keys held."""
        queues = self.keys.queues.values()
        return {
            "running": len(self.driving),
            "suspended": len(self.suspended),
            "queue_depth": sum(max(0, len(q) - 1) for q in queues),
            "keys_held": sum(1 for q in queues if q),
        }
