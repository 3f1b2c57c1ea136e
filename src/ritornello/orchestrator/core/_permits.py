"""A limited step as its invocation's leader sees it: asking for a permit, giving it back.

A step run with ``limit=`` journals a ``permit`` entry, then (once granted) its ``run`` entry
naming the limit. The invocation's own units ask and release, in the same unit as what causes
them, so a crash never leaves one without the other:

* a unit that journals a ``permit`` entry, or suspends on one that has no grant (a retry
  replays it), **asks**: the row is inserted if absent (``CommitUnit.permits_ask``);
* a unit that journals the step (its ``run`` entry carries the limit) **releases** it;
* a unit that fails the attempt (backing off, paused) releases every open permit and removes
  its grant, so the retry waits for a permit again and none is held while it backs off;
* a unit that ends the invocation (done, killed, killed after its last attempt) releases
  every open permit, waiting or held.

A limited handler's invocation holds a permit of its own, at ``INVOCATION_PERMIT`` (-2): asked
before its first attempt (``_drive._wait_for_permit``), released like the others. A first
ask is granted in its own unit when the owner is here and a permit is free
(``_grants.eager``). The owner (``_grants``) learns of each ask and release through
``noted`` here or an inbox message elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace

from ritornello.protocol._entries import INVOCATION_PERMIT
from ritornello.store.records import FINAL_STATUSES, CommitUnit, PermitRecord, Status

from .._json import loads
from .._limit_spec import LimitSpec, instance_name
from ._answer import Outcome
from ._invocation import Invocation
from ._journal import completion_text
from ._limits import DEFAULT_PRIORITY, MAX_PRIORITY, MIN_PRIORITY, limit_partition

#: A grant's result (the permit entry's completion).
GRANTED = '{"value":null}'
#: The ingress header that sets an invocation's priority (0-10, higher first; default 5).
PRIORITY_HEADER = "x-ritornello-priority"
#: The ingress header that names the instance of a per-key limit an invocation uses.
LIMIT_KEY_HEADER = "x-ritornello-limit-key"
_GIVE_BACK = (Status.BACKING_OFF.value, Status.PAUSED.value)


def settle(
    inv: Invocation,
    outcome: Outcome,
    partitions: int,
    next_seq: Callable[[], int],
    eager: Callable[[PermitRecord], int | None] | None = None,
) -> None:
    """Add the asks and releases ``outcome``'s unit implies (see the module docstring). An
    ask is stamped with ``next_seq()`` (µs since the epoch, increasing here), so waiters of
    one priority are served in the order they asked. ``eager(row)``: the time of a grant the
    owner makes at once, in this very unit (it is here, a permit is free, nobody waits ahead:
    ``_grants.eager``), else None; asked for a first ask only (its row cannot exist yet)."""
    if not inv.permits and not outcome.permits:
        return  # the common case: no limited step
    rec = outcome.record
    unit = outcome.unit
    open_ = {**inv.permits, **outcome.permits}
    for index in outcome.released:
        limit = open_.pop(index, None)
        if limit is not None:
            unit.permits_release.append((limit, rec.id, index))
    if not open_:
        return
    if rec.status in FINAL_STATUSES or rec.status in _GIVE_BACK:
        give_back(unit, rec.id, open_, remove_grants=rec.status in _GIVE_BACK)
        return
    granted = set(inv.completions)
    granted.update(i for c, i, _ in unit.completions if c == rec.id)
    priority: int | None = None
    for index, limit in open_.items():
        if index in granted or not (index in outcome.permits or index in rec.waiting):
            continue
        if priority is None:
            priority = priority_of(inv.entries[0])
        p = limit_partition(limit, partitions)
        row = PermitRecord(limit, rec.id, index, p, priority, next_seq())
        first = index in outcome.permits or index == INVOCATION_PERMIT
        granted_at = eager(row) if eager is not None and first else None
        if granted_at is not None:
            row = replace(row, granted_at=granted_at)
            unit.completions.append((rec.id, index, completion_text(index, GRANTED)))
        unit.permits_ask.append(row)


def give_back(
    unit: CommitUnit, invocation_id: str, open_: dict[int, str], *, remove_grants: bool
) -> None:
    """Release every open permit; ``remove_grants``: the invocation goes on later (a retry,
    a resume), so their grants go too and it waits for a permit again."""
    for index, limit in open_.items():
        unit.permits_release.append((limit, invocation_id, index))
        if remove_grants:
            unit.completions_remove.append((invocation_id, index))


def committed(inv: Invocation, outcome: Outcome) -> None:
    """Bring the invocation's memory in line with its committed unit."""
    if outcome.permits:
        inv.permits.update(outcome.permits)
    for index in outcome.released:
        inv.permits.pop(index, None)
    for inv_id, index in outcome.unit.completions_remove:
        if inv_id == inv.rec.id:
            inv.completions.pop(index, None)
    if outcome.record.status in FINAL_STATUSES:
        inv.permits.clear()


def limit_key(input_entry: str, object_key: str | None) -> str | None:
    """An invocation's limit key: the ingress's (or its caller's) ``x-ritornello-limit-key``,
    else its object key."""
    if LIMIT_KEY_HEADER in input_entry:
        value = (loads(input_entry).get("headers") or {}).get(LIMIT_KEY_HEADER)
        if isinstance(value, str):
            return value
    return object_key


def instance_of(
    specs: Mapping[str, LimitSpec], limit: str, input_entry: str, object_key: str | None
) -> str:
    """The instance of ``limit`` an invocation uses (its own, for a per-key limit)."""
    spec = specs.get(limit)
    if spec is None or not spec.per_key:
        return limit
    return instance_name(limit, spec, limit_key(input_entry, object_key))


def priority_of(input_entry: str) -> int:
    """The invocation's priority: the ingress's ``x-ritornello-priority`` header (checked
    there), else the default."""
    if PRIORITY_HEADER not in input_entry:
        return DEFAULT_PRIORITY
    headers = loads(input_entry).get("headers") or {}
    try:
        value = int(headers.get(PRIORITY_HEADER, DEFAULT_PRIORITY))
    except (TypeError, ValueError):
        return DEFAULT_PRIORITY
    return min(MAX_PRIORITY, max(MIN_PRIORITY, value))
