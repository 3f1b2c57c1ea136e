"""The owner of a limit at work: its memory kept current, and grant turns.

A grant turn (``LimitsDue``) grants what each limit owned here allows, in service order, as
one unit: each grant turns its row from waiting to granted (conditioned on it still waiting)
and completes the holder's ``permit`` entry, which wakes it (here, or through its leader's
inbox). Refusals (a limit nobody defined, once the definitions were read again) release the
row and fail the entry with 404. The invariants are ``_limits``'s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from ritornello.store.records import CommitUnit, PermitRecord

from .._limit_spec import MIN_TURN_MS, limit_of_instance
from ._effects import CheckSuspended, Decision, Effect, LimitTurn, ReadLimits, ReadPermits
from ._events import LimitsDefined, LimitsDue, PermitChanged, PermitNoticed, PermitsRead
from ._journal import completion_text, failure_result
from ._limits import (
    GRANT_UNITS_IN_FLIGHT,
    GRANTS_PER_UNIT,
    REFRESH_MS,
    Instance,
    LimitTable,
    PermitKey,
    apply_row,
    change,
    limit_partition,
)
from ._permits import GRANTED
from ._state import CoreState


def eager(core: CoreState, row: PermitRecord, now: int) -> int | None:
    """Grant ``row``'s first ask at once, in the asking unit, when its limit's owner is this
    process, nobody waits ahead of it and a permit is free (the common case of a limit that
    does not bind): no grant unit, no second attempt. Counted as granting until the unit's
    outcome is known (``noted`` / ``not_noted``). The grant's time, or None."""
    table = core.limits
    spec = table.specs.get(limit_of_instance(row.limit))
    if spec is None or row.partition not in core.ready:
        return None
    inst = table.instance(row.limit, row.partition, now)
    if inst.waiting or (spec.concurrency is not None and inst.in_flight() >= spec.concurrency):
        return None
    if spec.rate is not None:
        inst.refill(spec, now)
        if inst.tokens < 1:
            return None
        inst.tokens -= 1
    key = (row.invocation_id, row.index)
    inst.granting.add(key)
    table.touch(inst, key, now)
    return now


def not_noted(core: CoreState, unit: CommitUnit, reason: str, now: int) -> list[Effect]:
    """A unit with permit asks failed: its eager grants are not out. One cut off
    (``cancelled``) may still land: its limits' rows are read again instead."""
    eager_rows = [r for r in unit.permits_ask if r.granted_at is not None]
    if reason == "cancelled":  # counted as granting until the rows tell
        for row in eager_rows:
            inst = core.limits.instances.get(row.limit)
            if inst is not None:
                inst.unsure.add((row.invocation_id, row.index))
                core.limits.touch(inst, (row.invocation_id, row.index), now)
        names = dict.fromkeys(r.limit for r in eager_rows)
        return [_read(core.limits, name) for name in names]
    for row in eager_rows:
        inst = core.limits.instances.get(row.limit)
        if inst is not None:
            key = (row.invocation_id, row.index)
            inst.granting.discard(key)
            inst.gone.discard(key)
            core.limits.touch(inst, key, now)
            core.limits.pending.add(row.limit)
    return _turn(core.limits, now) if eager_rows else []


def noted(core: CoreState, unit: CommitUnit, now: int) -> list[Effect]:
    """A unit with permit asks or releases was committed here: the owners led here learn of
    it at once (others through the inbox message the committer added)."""
    table = core.limits
    changed = False
    for row in unit.permits_ask:
        key = (row.invocation_id, row.index)
        inst = table.instances.get(row.limit)
        if row.granted_at is not None and inst is not None and key in inst.granting:
            table.landed(inst, row, now)  # granted at once (``eager``)
            continue
        changed |= change(table, core.ready, core.claimed, row, row.limit, row.partition, key, now)
    for limit, inv_id, index in unit.permits_release:
        p = limit_partition(limit, core.partitions)
        changed |= change(table, core.ready, core.claimed, None, limit, p, (inv_id, index), now)
    return _turn(table, now) if changed else []


def defined(core: CoreState, ev: LimitsDefined, now: int) -> Decision:
    """The definitions changed (or were read again): they take effect at once."""
    table = core.limits
    table.specs = dict(ev.specs)
    if ev.fresh:
        table.fresh = True
    for name, inst in table.instances.items():
        spec = table.specs.get(limit_of_instance(name))
        if spec is not None and spec.rate is not None:
            inst.tokens = min(inst.tokens, spec.bucket)
        if inst.waiting:
            table.pending.add(name)
    return Decision(effects=_turn(table, now))


def permits_read(core: CoreState, ev: PermitsRead, now: int) -> Decision:
    """Rows read from the store: a partition's at its recovery, or one limit's again."""
    table = core.limits
    if ev.partition is not None:
        p = ev.partition
        if p not in core.ready:
            return Decision()
        table.ready_since[p] = ev.since if ev.since is not None else now
        for name in [n for n, i in table.instances.items() if i.partition == p]:
            del table.instances[name]
        for row in ev.rows:
            key = (row.invocation_id, row.index)
            apply_row(table.instance(row.limit, p, now), key, row, now)
            table.pending.add(row.limit)
        for early, limit, key in table.early.pop(p, []):
            apply_row(table.instance(limit, p, now), key, early, now)
            table.pending.add(limit)
    if ev.limit is not None:
        inst = table.instances.get(ev.limit)
        if inst is not None and inst.partition in core.ready:
            _merge(table, inst, ev.rows, ev.read_from, now)
            inst.refreshed_at = now
            table.pending.add(inst.name)
        if ev.read_from is not None:
            table.end_read()
    effects: list[Effect] = []
    # a grant may have landed although its commit was reported failed: wake its holders
    woken = {r.invocation_id for r in ev.rows if r.granted_at is not None} & set(core.suspended)
    if woken:
        effects.append(CheckSuspended(sorted(woken)))
    effects.extend(_turn(table, now))
    return Decision(effects=effects)


def _merge(
    table: LimitTable, inst: Instance, rows: list[PermitRecord], read_from: int | None, now: int
) -> None:
    """One limit's rows as read: what memory learned of since the read began stays."""
    for key in [k for k in inst.unsure if not table.newer(inst, k, read_from)]:
        inst.unsure.discard(key)  # cut off: the rows tell how its grant ended
        inst.granting.discard(key)
    read: set[PermitKey] = set()
    for row in rows:
        key = (row.invocation_id, row.index)
        read.add(key)
        if not table.newer(inst, key, read_from):
            apply_row(inst, key, row, now)
    for key in [*inst.holders, *inst.waiting]:
        if key not in read and not table.newer(inst, key, read_from):
            apply_row(inst, key, None, now)  # gone from the store


def permit_noticed(core: CoreState, ev: PermitNoticed, now: int) -> Decision:
    """An inbox message names a row of a limit owned here: it is read now (its
    ``PermitChanged`` says how it was, and when the read began)."""
    core.limits.begin_read()
    return Decision()


def permit_changed(core: CoreState, ev: PermitChanged, now: int) -> Decision:
    """Another process asked or released a permit of a limit owned here (its inbox message,
    the row as just read)."""
    table = core.limits
    if ev.read_from is not None:
        table.end_read()
    p = limit_partition(ev.limit, core.partitions)
    key = (ev.invocation_id, ev.index)
    if not change(table, core.ready, core.claimed, ev.row, ev.limit, p, key, now, ev.read_from):
        return Decision()
    return Decision(effects=_turn(table, now))


def _read(table: LimitTable, limit: str) -> ReadPermits:
    """Read one limit's rows again (counted out until its ``PermitsRead`` comes back)."""
    return ReadPermits(limit, table.begin_read())


def _turn(table: LimitTable, now: int, delay_ms: int = 0) -> list[Effect]:
    """Ask for a grant turn (``LimitsDue``) unless one comes as soon."""
    at = now + delay_ms
    if table.alarm_at is not None and table.alarm_at <= at:
        return []
    table.alarm_at = at
    return [LimitTurn(delay_ms)]


def due(core: CoreState, ev: LimitsDue, now: int) -> Decision:
    """A grant turn: grant what each limit allows, in service order, as one unit."""
    table = core.limits
    table.alarm_at = None
    if table.committing >= GRANT_UNITS_IN_FLIGHT:
        return Decision()  # a commit's report turns again
    turn = _Turn(now)
    effects: list[Effect] = []
    unknown = False
    for name in list(table.pending):  # only the instances something happened to
        inst = table.instances.get(name)
        if inst is None or inst.partition not in core.ready or not inst.waiting:
            table.pending.discard(name)
            if inst is not None:
                table.forget_if_idle(inst, now)
            continue
        if turn.full:
            break
        spec = table.specs.get(limit_of_instance(inst.name))
        if spec is None:
            if table.fresh:
                turn.refuse(table, inst)
            else:
                unknown = True
            continue
        inst.refill(spec, now)
        queue = inst.queue()
        for n, row in enumerate(queue):
            if turn.full:
                break
            if spec.concurrency is not None and inst.in_flight() >= spec.concurrency:
                inst.blocked(queue[n:], now)
                table.pending.discard(name)  # a release brings it back
                if now - inst.refreshed_at > REFRESH_MS:  # its holders, as the rows say
                    inst.refreshed_at = now
                    effects.append(_read(table, inst.name))
                break
            if spec.rate is not None:
                if inst.tokens < 1:
                    need = math.ceil((1 - inst.tokens) * spec.per_ms / spec.rate)
                    turn.wake_at(now + max(MIN_TURN_MS, need))
                    inst.blocked(queue[n:], now)
                    break
                inst.tokens -= 1
            turn.grant(table, inst, row)
    if unknown:
        table.fresh = False
        effects.append(ReadLimits())
    if not turn.grants and not turn.refusals:
        if turn.wake is not None:
            effects.extend(_turn(table, now, turn.wake - now))
        return Decision(effects=effects)
    table.committing += 1
    home = (turn.grants or turn.refusals)[0][0].partition
    return core.emit(turn.unit, home, _GrantCommit(turn, effects), now)


class _Turn:
    """The grants and refusals of one turn, and the unit that makes them."""

    def __init__(self, now: int) -> None:
        self.now = now
        self.unit = CommitUnit()
        self.grants: list[tuple[Instance, PermitRecord, str]] = []
        self.refusals: list[tuple[Instance, PermitRecord, str]] = []
        self.wake: int | None = None

    @property
    def full(self) -> bool:
        return len(self.grants) + len(self.refusals) >= GRANTS_PER_UNIT

    def wake_at(self, at: int) -> None:
        self.wake = at if self.wake is None else min(self.wake, at)

    def grant(self, table: LimitTable, inst: Instance, row: PermitRecord) -> None:
        key = (row.invocation_id, row.index)
        del inst.waiting[key]
        inst.refused.discard(key)
        inst.granting.add(key)
        table.touch(inst, key, self.now)
        self.unit.permits_grant.append(replace(row, granted_at=self.now))
        text = completion_text(row.index, GRANTED)
        self.unit.completions.append((row.invocation_id, row.index, text))
        self.grants.append((inst, row, text))

    def refuse(self, table: LimitTable, inst: Instance) -> None:
        name = limit_of_instance(inst.name)
        message = (
            f"limit {name!r} is not defined: define it with PUT /limits/{name}, "
            "in ritornello.toml or in the service definition"
        )
        for row in inst.queue():
            if self.full:
                return
            del inst.waiting[(row.invocation_id, row.index)]
            table.touch(inst, (row.invocation_id, row.index), self.now)
            self.unit.permits_release.append((inst.name, row.invocation_id, row.index))
            text = completion_text(row.index, failure_result(404, message))
            self.unit.completions.append((row.invocation_id, row.index, text))
            self.refusals.append((inst, row, text))


@dataclass(slots=True)
class _GrantCommit:
    """A grant unit in flight."""

    turn: _Turn
    after: list[Effect]

    def committed(self, core: CoreState, now: int) -> Decision:
        table = core.limits
        table.committing -= 1
        effects: list[Effect] = list(self.after)
        for inst, row, text in self.turn.grants:
            table.landed(inst, replace(row, granted_at=self.turn.now), now)
            effects.extend(core.deliver(row.invocation_id, row.index, text))
        for _, row, text in self.turn.refusals:
            effects.extend(core.deliver(row.invocation_id, row.index, text))
        table.pending.update(inst.name for inst, _, _ in self.turn.grants + self.turn.refusals)
        effects.extend(_turn(table, now))  # what is left, or what the grants freed
        return Decision(effects=effects)

    def failed(self, core: CoreState, reason: str, now: int) -> Decision:
        core.limits.committing -= 1
        names: dict[str, None] = {}
        for inst, row, _ in self.turn.grants:
            key = (row.invocation_id, row.index)
            inst.granting.discard(key)
            inst.gone.discard(key)
            names[inst.name] = None
        for inst, _, _ in self.turn.refusals:
            names[inst.name] = None
        core.limits.pending.update(names)
        # which row failed the unit (or whether it landed after all) only the store knows
        effects: list[Effect] = list(self.after)
        effects.extend(_read(core.limits, name) for name in names)
        return Decision(effects=effects)
