"""Named limits as their owner holds them: who holds a permit and who waits.

A limit instance (a named limit) lives in one partition (``limit_partition``) and only that
partition's leader grants its permits, so a limit holds for the whole cluster, not per
process. Its rows in the store (``PermitRecord``: one per invocation and permit entry) are the
truth; this is the owner's cache of them, rebuilt at recovery (``PermitsRead``) and kept
current by the commits of this process (``noted``) and the inbox messages of others
(``PermitChanged``); ``_grants`` turns it into grants. docs/limits.md draws the flow.

Invariants (each one is what a test tries to break):

* Never more permits out than the concurrency: ``held + granting <= concurrency``, where a
  grant counts from the moment it is decided until its release is seen. A permit is
  released only by its holder's commits (its step journaled, its attempt failed, the
  invocation finished or stopped), never by a change of leader: a permit held by an
  invocation whose orchestrator died stays counted until that invocation's new leader gives
  it back, after the old leader's lease ended.
* Never more grants than the rate: a token bucket of ``burst`` tokens (``LimitSpec.bucket``:
  at least what the rate brings in 5 ms) refilled at ``rate / per``, empty when this process
  came to lead the partition (so a window that spans a change of leader holds at most
  ``rate + bucket`` too).
* Waiters are served by priority (higher first), then oldest first; a waiter a grant cannot
  serve blocks those behind it (no overtaking within a limit).
* A read of the rows is applied only where memory has not moved on since the read began:
  each change memory learns of (an ask, a grant, a release) stamps its row with the table's
  clock (``touch``), a read carries the clock it began at (``read_from``), and a row stamped
  after it keeps what memory says (it is newer than the read). Stamps are kept only while a
  read is out (``begin_read`` / ``end_read``); a read older than ``READ_MAX_MS`` is not
  applied (the runtime reads again), so should a read never come back, stamps older than
  twice that may be dropped.
* At most ``GRANT_UNITS_IN_FLIGHT`` grant units in flight per process, never two granting
  one row; a grant is conditioned on its row still waiting, so a waiter that left meanwhile
  (killed, finished) fails the unit, which re-reads the rows.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from ritornello.store.records import PermitRecord

from .._limit_spec import KEY_SEPARATOR, LimitSpec, limit_of_instance
from ._partition import partition_of

#: The service name that places a limit instance in a partition (never a real service's).
LIMIT_SERVICE = "\x00limit"
#: Grants per unit: each is a row and a completion (and maybe an inbox message).
GRANTS_PER_UNIT = 25
#: Grant units committed at once (group commit takes them together); a turn past it waits
#: for one of their reports.
GRANT_UNITS_IN_FLIGHT = 4
#: Priorities run from 0 to 10; higher is served first.
MIN_PRIORITY, DEFAULT_PRIORITY, MAX_PRIORITY = 0, 5, 10
#: The window of the figures ``GET /limits/{name}`` shows.
FIGURES_MS = 60_000
#: How often an owner with work re-reads its rows (a missed message costs at most this).
REFRESH_MS = 10_000
#: A read of rows that took longer is not applied (memory's stamps do not reach that far).
READ_MAX_MS = 30_000

PermitKey = tuple[str, int]  # (invocation id, index)
#: Upper bounds (ms) of the wait-time histogram's buckets (``ritornello_limit_wait_seconds``).
WAIT_BUCKETS_MS = (1, 5, 10, 50, 100, 500, 1000, 5000, 10_000, 60_000, 300_000, 3_600_000)


def limit_partition(name: str, partitions: int) -> int:
    """The partition whose leader owns limit instance ``name``."""
    return partition_of(LIMIT_SERVICE, name, "", partitions)


@dataclass(slots=True)
class Instance:
    """One limit instance as its owner holds it."""

    name: str
    partition: int
    holders: dict[PermitKey, PermitRecord] = field(default_factory=dict)
    waiting: dict[PermitKey, PermitRecord] = field(default_factory=dict)
    granting: set[PermitKey] = field(default_factory=set)
    #: released while their grant was in flight: not holders once it lands
    gone: set[PermitKey] = field(default_factory=set)
    #: grants whose unit was cut off (it may have landed): granting until the rows are read
    unsure: set[PermitKey] = field(default_factory=set)
    #: when memory last learned of each row: (the table's clock, ms); see the invariants
    touched: dict[PermitKey, tuple[int, int]] = field(default_factory=dict)
    tokens: float = 0.0
    refilled_at: int = 0
    granted_log: deque[int] = field(default_factory=deque)
    waited_log: deque[int] = field(default_factory=deque)
    #: waiters a grant turn found no permit for (counted once each in ``waited_log``)
    refused: set[PermitKey] = field(default_factory=set)
    refreshed_at: int = 0
    #: since this process came to own it: grants, and how long each grant's ask waited (ms),
    #: counted into ``WAIT_BUCKETS_MS`` (cumulative buckets, Prometheus's way) and summed
    granted_total: int = 0
    wait_buckets: list[int] = field(default_factory=lambda: [0] * len(WAIT_BUCKETS_MS))
    wait_ms_total: int = 0

    def waited(self, ms: int) -> None:
        """A grant whose ask waited ``ms``."""
        self.granted_total += 1
        self.wait_ms_total += ms
        for i, bound in enumerate(WAIT_BUCKETS_MS):
            if ms <= bound:
                self.wait_buckets[i] += 1

    def blocked(self, queue: list[PermitRecord], now: int) -> None:
        """A grant turn stopped at ``queue`` (the waiters it could not serve): each counts as
        refused once, the first time."""
        for row in queue:
            key = (row.invocation_id, row.index)
            if key not in self.refused:
                self.refused.add(key)
                self.waited_log.append(now)

    def in_flight(self) -> int:
        return len(self.holders) + len(self.granting)

    def queue(self) -> list[PermitRecord]:
        """Waiters in service order."""
        return sorted(
            self.waiting.values(),
            key=lambda r: (-r.priority, r.asked_at, r.invocation_id, r.index),
        )

    def refill(self, spec: LimitSpec, now: int) -> None:
        if spec.rate is None:
            return
        if now > self.refilled_at:
            gained = (now - self.refilled_at) * spec.rate / spec.per_ms
            self.tokens = min(spec.bucket, self.tokens + gained)
            self.refilled_at = now

    def figures(self, now: int) -> dict[str, int | None]:
        cut = now - FIGURES_MS
        for log in (self.granted_log, self.waited_log):
            while log and log[0] < cut:
                log.popleft()
        oldest = min((r.asked_at for r in self.waiting.values()), default=None)
        oldest = None if oldest is None else oldest // 1000  # µs
        return {
            "in_flight": self.in_flight(),
            "waiting": len(self.waiting),
            "granted_last_minute": len(self.granted_log),
            "refused_last_minute": len(self.waited_log),
            "oldest_wait_ms": None if oldest is None else max(0, now - oldest),
        }


@dataclass(slots=True)
class LimitTable:
    """Every limit instance owned here, the definitions, and the grant turn's state."""

    specs: dict[str, LimitSpec] = field(default_factory=dict)
    #: the definitions were read from the store since the last unknown name was met
    fresh: bool = False
    instances: dict[str, Instance] = field(default_factory=dict)
    #: grant units being committed (at most ``GRANT_UNITS_IN_FLIGHT``)
    committing: int = 0
    #: when the next grant turn is due (ms), if one is scheduled
    alarm_at: int | None = None
    #: when each partition became ready here (the rate buckets fill from then)
    ready_since: dict[int, int] = field(default_factory=dict)
    #: increases at every change memory learns of (``touch``): what a read is measured by
    clock: int = 0
    #: reads of rows begun and not applied yet (``begin_read``, ``end_read``)
    reads_out: int = 0
    pruned_at: int = 0
    #: instances a grant turn must look at (a waiter came, a permit went back, a rate
    #: bucket is filling): the others cannot grant anything, whatever their number
    pending: set[str] = field(default_factory=set)
    #: changes of partitions claimed but not recovered yet: applied after their rows
    early: dict[int, list[tuple[PermitRecord | None, str, PermitKey]]] = field(default_factory=dict)

    def touch(self, inst: Instance, key: PermitKey, now: int) -> None:
        """Memory learned of a change of ``key``'s row: newer than any read begun before. Kept
        only while a read is out (one begun later reads the store after the change, or, for
        a grant still in flight, meets ``apply_row``'s guard of granting rows)."""
        self.clock += 1
        if self.reads_out <= 0:
            return
        inst.touched[key] = (self.clock, now)
        if len(inst.touched) > 4096 and now - self.pruned_at > 1000:  # a read never came back
            self.pruned_at = now
            cut = now - 2 * READ_MAX_MS
            inst.touched = {k: v for k, v in inst.touched.items() if v[1] >= cut}

    def landed(self, inst: Instance, granted: PermitRecord, now: int) -> None:
        """A grant of ``inst`` was committed (``granted``: its row, ``granted_at`` set): it
        is held now, unless its holder released it while the grant was in flight."""
        key = (granted.invocation_id, granted.index)
        inst.granting.discard(key)
        self.touch(inst, key, now)
        inst.granted_log.append(now)
        assert granted.granted_at is not None
        inst.waited(max(0, granted.granted_at - granted.asked_at // 1000))  # asked_at: µs
        if key in inst.gone:
            inst.gone.discard(key)
        else:
            inst.holders[key] = granted

    def begin_read(self) -> int:
        """A read of rows begins: its ``read_from``."""
        self.reads_out += 1
        return self.clock

    def end_read(self) -> None:
        """A read begun with ``begin_read`` was applied: with none out, no stamp is needed."""
        self.reads_out = max(0, self.reads_out - 1)
        if self.reads_out == 0:
            for inst in self.instances.values():
                inst.touched.clear()

    def newer(self, inst: Instance, key: PermitKey, read_from: int | None) -> bool:
        """Whether memory learned of ``key``'s row after a read begun at ``read_from``."""
        if read_from is None:
            return False
        stamp = inst.touched.get(key)
        return stamp is not None and stamp[0] > read_from

    def forget_if_idle(self, inst: Instance, now: int) -> None:
        """Drop a per-key instance that holds nothing, waits for nothing and whose rate
        bucket is full again (a new one would start with what it has): keys come and go,
        memory must not grow with them. A named limit's one instance stays (its figures)."""
        if KEY_SEPARATOR not in inst.name:
            return
        if inst.holders or inst.waiting or inst.granting or inst.gone or inst.unsure:
            return
        spec = self.specs.get(limit_of_instance(inst.name))
        if spec is not None and spec.rate is not None:
            inst.refill(spec, now)
            if inst.tokens < spec.bucket:
                return
        del self.instances[inst.name]

    def instance(self, name: str, partition: int, now: int) -> Instance:
        inst = self.instances.get(name)
        if inst is None:
            inst = Instance(name, partition, refilled_at=now, refreshed_at=now)
            spec = self.specs.get(limit_of_instance(name))
            if spec is not None and spec.rate is not None:
                since = self.ready_since.get(partition, now)
                gained = (now - since) * spec.rate / spec.per_ms
                inst.tokens = min(spec.bucket, gained)
            self.instances[name] = inst
        return inst


def apply_row(inst: Instance, key: PermitKey, row: PermitRecord | None, now: int) -> None:
    """Bring one row of ``inst`` in line with the store: None, released; else as it is."""
    if row is None:
        inst.holders.pop(key, None)
        inst.waiting.pop(key, None)
        inst.refused.discard(key)
        if key in inst.granting:
            inst.gone.add(key)
    elif row.granted_at is not None:
        inst.waiting.pop(key, None)
        if key not in inst.granting:
            inst.holders[key] = row
    elif key not in inst.granting:
        inst.holders.pop(key, None)  # released and asked again (its attempt failed)
        inst.waiting[key] = row


def change(
    table: LimitTable,
    ready: set[int],
    claimed: set[int],
    row: PermitRecord | None,
    limit: str,
    partition: int,
    key: PermitKey,
    now: int,
    read_from: int | None = None,
) -> bool:
    """Apply one row's change to the owner's memory (``read_from``: a read of it begun at
    that clock; None: a committed change of this process's own); False when the partition is
    not ready here (kept for after its recovery if it is being recovered, else ignored) or
    memory knows newer."""
    if partition not in ready:
        if partition in claimed:
            table.early.setdefault(partition, []).append((row, limit, key))
        return False
    inst = table.instance(limit, partition, now)
    if table.newer(inst, key, read_from):
        return False
    apply_row(inst, key, row, now)
    table.touch(inst, key, now)
    table.pending.add(limit)
    return True


def lost(table: LimitTable, partition: int) -> None:
    """A partition is no longer led here: its instances go (its next owner reads them)."""
    for name in [n for n, i in table.instances.items() if i.partition == partition]:
        del table.instances[name]
    table.early.pop(partition, None)
    table.ready_since.pop(partition, None)


def figures(table: LimitTable, names: Iterable[str], now: int) -> dict[str, dict[str, int | None]]:
    """Live figures of the instances owned here."""
    return {n: table.instances[n].figures(now) for n in names if n in table.instances}


#: Inbox messages about a permit row start with this (an invocation id never does).
PERMIT_MESSAGE = "\x00permit"


def permit_message(limit: str, invocation_id: str, index: int) -> str:
    """The inbox message that tells a limit's owner one of its rows changed."""
    return PERMIT_MESSAGE + json.dumps([limit, invocation_id, index], ensure_ascii=False)


def parse_permit_message(text: str) -> tuple[str, str, int] | None:
    """(limit, invocation id, index) of a permit message; None for any other message."""
    if not text.startswith(PERMIT_MESSAGE):
        return None
    try:
        limit, invocation_id, index = json.loads(text[len(PERMIT_MESSAGE) :])
    except (ValueError, TypeError):
        return None
    if isinstance(limit, str) and isinstance(invocation_id, str) and type(index) is int:
        return limit, invocation_id, index
    return None
