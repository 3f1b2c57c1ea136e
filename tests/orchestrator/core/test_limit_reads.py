"""The limit owner's reads of its rows against what it learned meanwhile (``core/_limits``,
"a read ... is applied only where memory has not moved on"): found by the integration tests,
where a 10 s refresh read a row as waiting just before the owner's own grant of it committed,
and the owner then counted that permit as free. Driven through ``Core.apply`` as the runtime
drives it: a read is begun by the ``ReadPermits`` effect (or ``PermitNoticed``) and comes back
as ``PermitsRead`` / ``PermitChanged`` with the clock it began at."""

from __future__ import annotations

from ritornello.orchestrator import LimitSpec
from ritornello.orchestrator import core as c
from ritornello.store import PermitRecord

from ._table import T0, build_core


def _row(inv: str, priority: int = 5, granted: int | None = None) -> PermitRecord:
    return PermitRecord("pool", inv, 1, 0, priority, T0 * 1000, granted)


def _grants(decision: c.Decision) -> list[str]:
    unit = decision.unit
    return [] if unit is None else [r.invocation_id for r in unit.permits_grant]


def _core() -> c.Core:
    core = build_core({"services": {"Svc": ["service", {"h": "exclusive"}]}}).core
    core.apply(c.LimitsDefined({"pool": LimitSpec(concurrency=1)}), T0)
    core.apply(c.PermitsRead([_row("x")], partition=0), T0 + 1)
    return core


def test_a_read_begun_before_a_grant_does_not_free_its_permit() -> None:
    core = _core()
    read_from = core.limits.begin_read()  # a refresh's ReadPermits goes out
    decision = core.apply(c.LimitsDue(), T0 + 2)
    assert _grants(decision) == ["x"]
    core.apply(c.Committed(decision.token), T0 + 3)  # x holds the one permit
    # the refresh read x waiting before the grant landed; it also brings y, priority 9
    stale = [_row("x"), _row("y", priority=9)]
    core.apply(c.PermitsRead(stale, limit="pool", read_from=read_from), T0 + 6)
    assert _grants(core.apply(c.LimitsDue(), T0 + 7)) == []  # x still holds it
    assert core.limits.instances["pool"].holders.keys() == {("x", 1)}
    assert core.limits.reads_out == 0 and not core.limits.instances["pool"].touched


def test_a_read_begun_before_a_release_does_not_bring_the_holder_back() -> None:
    core = _core()
    decision = core.apply(c.LimitsDue(), T0 + 2)
    core.apply(c.Committed(decision.token), T0 + 3)
    read_from = core.limits.begin_read()
    core.apply(c.PermitChanged("pool", "x", 1, None), T0 + 4)  # x gives it back
    core.apply(c.PermitChanged("pool", "y", 1, _row("y", 9)), T0 + 4)
    stale = [_row("x", granted=T0 + 2), _row("y", priority=9)]
    core.apply(c.PermitsRead(stale, limit="pool", read_from=read_from), T0 + 6)
    assert _grants(core.apply(c.LimitsDue(), T0 + 7)) == ["y"]


def test_a_read_begun_after_the_change_is_applied_as_it_is() -> None:
    core = _core()
    decision = core.apply(c.LimitsDue(), T0 + 2)
    core.apply(c.Committed(decision.token), T0 + 3)
    read_from = core.limits.begin_read()  # after the grant: it reads x granted, y gone
    core.apply(c.PermitsRead([_row("x", granted=T0 + 2)], limit="pool", read_from=read_from), 9)
    inst = core.limits.instances["pool"]
    assert inst.holders.keys() == {("x", 1)} and not inst.waiting
