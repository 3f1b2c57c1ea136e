"""Timers that came due: sleeps, retries, scheduled starts.

A timer's row is removed in the same unit as its effect, so a crash in between fires it again,
never loses it. A sleep whose invocation is suspended here on it wakes the invocation at once:
its driver holds the completion in memory and commits it with the attempt's answer (one
commit for a wake-up, not two). Any other sleep (its invocation running, loading, or not known
here) is completed by a unit of its own per partition, then delivered. Firing twice is
harmless: completions are first-writer-wins and removing a missing timer does nothing.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from ritornello.store.records import CommitUnit, TimerRecord

from ._answer import ATTACH_POLL_MIN_MS
from ._effects import Arm, CheckAttach, Decision, Disarm, Effect, FireSleeps, Rearm, StartDue, Woke
from ._events import AttachChecked, SleepsDue, TimersBack, TimersDue
from ._journal import SLEPT_RESULT, completion_text
from ._state import CoreState, Plain

#: How often an attach re-reads the invocation it waits on: a quarter of how long it has
#: waited, within these bounds (ms) — prompt for short waits, a few reads a minute for long.
ATTACH_POLL_MAX_MS = 5_000


def attach_poll_ms(waited_ms: int) -> int:
    """The delay before an attach reads its target again, after waiting ``waited_ms``."""
    return max(ATTACH_POLL_MIN_MS, min(ATTACH_POLL_MAX_MS, waited_ms // 4))


#: Seconds before the sleeps of a unit the store failed are fired again.
SLEEPS_RETRY_S = 1.0


def timers_due(core: CoreState, ev: TimersDue, now: int) -> Decision:
    """What each due timer does: wake a suspended sleeper, complete other sleeps by a unit
    per partition, start a retry's next attempt, read a scheduled invocation to start it."""
    effects: list[Effect] = []
    sleeps: dict[int, list[TimerRecord]] = defaultdict(list)
    for t in ev.timers:
        if t.kind != "sleep":
            continue
        waiting = core.suspended.get(t.invocation_id)
        woken = (
            core.drive(t.invocation_id, None, t)
            if waiting is not None and t.index in waiting[0]
            else []
        )
        if woken:
            effects.extend(woken)
            effects.append(Woke(t.fire_at, t.invocation_id))
        else:
            sleeps[t.partition].append(t)
    effects.extend(FireSleeps(p, ts) for p, ts in sorted(sleeps.items()))
    for t in ev.timers:
        if t.kind == "retry":
            effects.extend(core.drive(t.invocation_id, None, t))
            effects.append(Woke(t.fire_at, t.invocation_id))
        elif t.kind == "start":
            effects.append(StartDue(t))
        elif t.kind == "attach":
            effects.append(CheckAttach(t))
    return Decision(effects=effects)


def sleeps_due(core: CoreState, ev: SleepsDue, now: int) -> Decision:
    """Complete these sleeps in one unit that also removes their timers."""
    unit = CommitUnit(
        completions=[
            (t.invocation_id, t.index, completion_text(t.index, SLEPT_RESULT)) for t in ev.timers
        ],
        timers_remove=list(ev.timers),
    )
    return core.emit(unit, ev.partition, _Sleeps(ev.partition, ev.timers, unit), now)


@dataclass(slots=True)
class _Sleeps:
    partition: int
    timers: list[TimerRecord]
    unit: CommitUnit

    def committed(self, core: CoreState, now: int) -> Decision:
        effects: list[Effect] = []
        for t, (inv_id, index, text) in zip(self.timers, self.unit.completions, strict=True):
            effects.extend(core.deliver(inv_id, index, text))
            effects.append(Woke(t.fire_at, inv_id))
        return Decision(effects=effects)

    def failed(self, core: CoreState, reason: str, now: int) -> Decision:
        if reason == "fenced":  # a lapse, not a loss: keep them for the next round
            return Decision(effects=core.rearm(self.timers))
        if reason == "cancelled":
            return Decision()
        return Decision(effects=[Rearm(self.timers, SLEEPS_RETRY_S)])


def timers_back(core: CoreState, ev: TimersBack, now: int) -> Decision:
    return Decision(effects=core.rearm(ev.timers))


def attach_checked(core: CoreState, ev: AttachChecked, now: int) -> Decision:
    """An attach's target read: complete the attaching entry with its result, or read again
    later (the timer moved, in one unit); an entry that no longer waits drops its timer."""
    t = ev.timer
    unit = CommitUnit(timers_remove=[t])
    if not ev.waiting:
        return core.emit(unit, t.partition, Plain(), now)
    if ev.result is None:
        again = TimerRecord(
            now + attach_poll_ms(now - ev.since_ms), t.invocation_id, "attach", t.index, t.partition
        )
        unit.timers_add.append(again)
        return core.emit(unit, t.partition, _AttachPoll(t, again), now)
    text = completion_text(t.index, ev.result)
    unit.completions.append((t.invocation_id, t.index, text))
    return core.emit(unit, t.partition, _Attached(t, text), now)


@dataclass(slots=True)
class _AttachPoll:
    old: TimerRecord
    new: TimerRecord

    def committed(self, core: CoreState, now: int) -> Decision:
        return Decision(effects=[Disarm(self.old), Arm(self.new)])

    def failed(self, core: CoreState, reason: str, now: int) -> Decision:
        return _again([self.old], core, reason)


@dataclass(slots=True)
class _Attached:
    timer: TimerRecord
    text: str

    def committed(self, core: CoreState, now: int) -> Decision:
        t = self.timer
        return Decision(effects=[Disarm(t), *core.deliver(t.invocation_id, t.index, self.text)])

    def failed(self, core: CoreState, reason: str, now: int) -> Decision:
        return _again([self.timer], core, reason)


def _again(timers: list[TimerRecord], core: CoreState, reason: str) -> Decision:
    """A timer's unit failed: as a sleep's (kept for the next round if fenced, gone if the
    commit was cancelled, else fired again in a moment)."""
    if reason == "fenced":
        return Decision(effects=core.rearm(timers))
    if reason == "cancelled":
        return Decision()
    return Decision(effects=[Rearm(timers, SLEEPS_RETRY_S)])
