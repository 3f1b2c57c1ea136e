"""Partition leases: which orchestrator leads which partition.

Every invocation belongs to one partition, fixed at creation (``core.partition_of``). Each
partition has at most one leader at a time, the orchestrator holding its lease; the leader
alone drives the partition's invocations, and every write it makes as leader is fenced by the
lease's epoch (``CommitUnit.fences``), so a former leader — paused, partitioned, or slow to
notice — can never write after its successor claimed the partition: its first fenced commit
fails and it steps down.

Expiry is judged on monotonic clocks, never by comparing wall clocks across machines:

* a contender watches each lease's ``version``; a lease whose version has not moved for
  ``lease_s`` of the contender's own monotonic time is expired and may be claimed (a released
  lease, or one never claimed, at once);
* the holder counts its lease valid until ``lease_s * SAFETY`` after it *sent* the renewal
  that succeeded — a contender's wait starts no earlier than that write landed, so the holder
  stops acting first. Fencing makes this a matter of liveness, not of safety.

With one process on a store that is exclusive to it (SQLite holds a file lock), leases are
claimed at once at start: a previous incarnation is dead by construction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable, Container

from ritornello.store import (
    ConflictError,
    FencedError,
    LeaseRecord,
    Store,
    StoreError,
    crashpoints,
)

from .._clock import Clock, SystemClock
from ._renewals import RenewalStats

log = logging.getLogger("ritornello.leadership")

#: Share of the lease period the holder trusts its lease after sending a renewal.
SAFETY = 0.8


class _Everything:
    """A container holding every partition (a leadership with no recovery to wait for)."""

    def __contains__(self, partition: object) -> bool:
        return True


class Leadership:
    """Claims, renews and releases partition leases for one orchestrator process.

    ``on_gain(partition)`` runs (awaited, one at a time) after a claim; ``on_lose(partition)``
    (synchronous) as soon as a lease is known or feared lost. ``holds(p)`` is what the engine
    asks before it acts as leader; ``epoch(p)`` is what it fences its writes with.
    """

    def __init__(
        self,
        store: Store,
        node: str,
        *,
        lease_s: float = 5.0,
        address: str = "",
        exclusive: bool = False,
        lead: bool = True,
        on_gain: Callable[[int], Awaitable[None]] | None = None,
        on_lose: Callable[[int], None] | None = None,
        ready: Container[int] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.store = store
        self.node = node
        self.lease_s = lease_s
        self.address = address
        self.exclusive = exclusive
        self.lead = lead
        self.on_gain = on_gain
        self.on_lose = on_lose
        #: Called (synchronously) the moment a lease is claimed, before its recovery starts.
        self.on_claim: Callable[[int], None] | None = None
        #: Awaited before a lease is handed over (``_release_surplus``): the attempts in flight
        #: answer and commit first (bounded by the callee).
        self.on_drain: Callable[[int], Awaitable[bool]] | None = None
        #: the partitions whose recovery has finished here (the core's set, read only); None:
        #: every partition counts as recovered once claimed
        self._ready: Container[int] = ready if ready is not None else _Everything()
        clock = clock or SystemClock()
        self._mono = clock.monotonic  # lease validity and expiry: never wall clocks
        self._wall = clock.now_ms  # heartbeats and renewal times, for display and balancing
        self._owned: dict[int, LeaseRecord] = {}
        self._valid_until: dict[int, float] = {}
        self._seen: dict[int, tuple[int, float]] = {}  # partition -> (version, first seen)
        # node -> (heartbeat version, when first seen at it, watched across a change)
        self._member_seen: dict[str, tuple[int, float, bool]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._gains: set[asyncio.Task[None]] = set()
        self._renewing: set[int] = set()  # partitions with a renewal in flight
        self._heartbeating = False
        #: what renewals measure of themselves, and the coordination requests sent
        self.stats = RenewalStats()
        self._stopping = False

    # ------------------------------------------------------------------ queries

    @property
    def count(self) -> int:
        return max(1, self.store.partitions)

    def holds(self, partition: int) -> bool:
        """True while this process may act as the partition's leader."""
        until = self._valid_until.get(partition)
        return until is not None and self._mono() < until

    def leads(self, partition: int) -> bool:
        """True while this process leads ``partition``: it holds the lease and has recovered
        the partition (the one predicate every part of the runtime asks, several times per
        invocation: ``holds`` is written out here)."""
        if partition not in self._ready:
            return False
        until = self._valid_until.get(partition)
        return until is not None and self._mono() < until

    def alone(self) -> bool:
        """True while no other process can use the store: it is exclusive to this one and
        this one leads every partition (so nothing stored changes behind its back)."""
        return self.exclusive and self.holds_all()

    async def leading(self, partition: int) -> bool:
        """Whether to go on acting as the leader of ``partition``: True once this process
        leads it. While the lease's validity has lapsed with a renewal in flight, or while the
        partition is claimed and its recovery still reading, wait for the verdict instead of
        giving up (giving up would drop an invocation from memory while the partition stays
        ours; a driver started for a partition still recovering — a callee another partition's
        driver created in it — may be missing from what the recovery read: simulation seed
        591); False once the partition is lost."""
        while partition in self._ready or self.holds(partition):
            if partition in self._ready and self.holds(partition):
                return True
            await asyncio.sleep(0.02)
        return False

    def holds_all(self) -> bool:
        """True while this process may act as the leader of every partition (asked on every
        commit: one clock read, no generator)."""
        owned = self._owned
        if len(owned) != max(1, self.store.partitions):
            return False
        now = self._mono()
        valid_until = self._valid_until
        for partition in owned:
            until = valid_until.get(partition)
            if until is None or now >= until:
                return False
        return True

    def epoch(self, partition: int) -> int | None:
        lease = self._owned.get(partition)
        return lease.epoch if lease is not None else None

    def owned(self) -> list[int]:
        return sorted(self._owned)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Take part: one round at once, waiting for the recovery of what it claims (so a
        lone orchestrator leads everything before it serves); then renewals every third of a
        lease period, and claims and hand-overs on their own loop, so a slow recovery or a
        slow listing never delays a renewal."""
        if not self.lead:
            return
        await self.tick()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._renew_forever()),
            loop.create_task(self._every(self._balance_in_background)),
        ]

    async def stop(self) -> None:
        """Release every lease (so successors need not wait for expiry) and leave."""
        self._stopping = True
        for task in [*self._tasks, *self._gains]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._gains, return_exceptions=True)
        if not self.lead:
            return
        for partition, lease in sorted(self._owned.items()):
            self._lose(partition)
            with contextlib.suppress(StoreError):
                await self.store.release_lease(lease, self._wall())
        with contextlib.suppress(StoreError):
            await self.store.remove_member(self.node)

    def abandon(self) -> list[asyncio.Task[None]]:
        """Stop taking part at once, releasing nothing (as a kill -9 would): the tasks to
        cancel."""
        self._stopping = True
        return [*self._tasks, *self._gains]

    def step_down(self, partition: int) -> None:
        """A fenced write failed: the partition has another leader."""
        if partition in self._owned:
            log.warning(
                "partition %d: fenced out (another leader took over); stepping down",
                partition,
                extra={"partition": partition},
            )
            self._lose(partition)

    def _lose(self, partition: int) -> None:
        self._owned.pop(partition, None)
        self._valid_until.pop(partition, None)
        if self.on_lose is not None:
            self.on_lose(partition)

    async def _every(self, step: Callable[[], Awaitable[None]]) -> None:
        while True:
            await asyncio.sleep(self.lease_s / 3)
            try:
                await step()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("leadership round failed; trying again")

    async def _renew_forever(self) -> None:
        """Renewal rounds at a fixed rate, every third of a lease period on the monotonic
        clock, whatever the previous round's renewals are still doing: each renewal (and the
        heartbeat) is a task of its own, so a slow store delays no other renewal and no later
        round; a lease whose renewal is still in flight is not renewed twice at once (each is
        conditioned on the version the last one returned)."""
        interval = self.lease_s / 3
        due = self._mono() + interval
        while True:
            await asyncio.sleep(max(0.0, due - self._mono()))
            now = self._mono()
            late = max(0.0, now - due)
            self.stats.round_started(late)
            if late > interval:
                log.warning(
                    "lease renewal round %.1f s late: the event loop was blocked or the "
                    "process paused",
                    late,
                )
            due = max(due + interval, now)  # never a burst of rounds after a long stall
            try:
                self._renew_round()
            except Exception:
                log.exception("lease renewal round failed; trying again")

    def _renew_round(self) -> list[asyncio.Task[None]]:
        """Start a renewal of every lease held (and a heartbeat) unless one is in flight.

        A lease whose validity ran out (the loop stalled, the store was slow) is renewed too,
        not given up: while it is lapsed this process does not act on the partition
        (``holds`` is False: drivers and commits wait), and a renewal that lands proves nobody
        claimed it meanwhile (a claim moves the epoch the renewal is conditioned on), so
        leadership goes on with nothing re-run; one that is fenced steps down. Giving a lapsed
        lease up at once used to hand work over (and re-run its steps) for a stall of a
        second."""
        if self._stopping:
            return []
        loop = asyncio.get_running_loop()
        started = []
        for partition in list(self._owned):
            if not self.holds(partition) and partition not in self._renewing:
                log.warning(
                    "partition %d: lease lapsed (renewal late); renewing",
                    partition,
                    extra={"partition": partition},
                )
        if not self._heartbeating:
            started.append(loop.create_task(self._heartbeat()))
        for partition, lease in list(self._owned.items()):
            if partition not in self._renewing:
                started.append(loop.create_task(self._renew(partition, lease)))
        return started

    # ------------------------------------------------------------------ rounds

    async def tick(self) -> None:
        """One full round: renew, then balance and wait for the recoveries it started."""
        await self.renew()
        await asyncio.gather(*await self.balance())

    async def renew(self) -> None:
        """One renewal round, waited for: heartbeat and renew every lease held, concurrently;
        step down from any lease that could not be renewed within its validity."""
        await asyncio.gather(*self._renew_round())

    async def _heartbeat(self) -> None:
        self._heartbeating = True
        self.stats.requests["heartbeat"] += 1
        try:
            await self.store.heartbeat(self.node, self.address, self._wall())
        except StoreError as exc:
            log.warning("heartbeat failed: %s", exc)
        finally:
            self._heartbeating = False

    async def _renew(self, partition: int, lease: LeaseRecord) -> None:
        if partition in self._renewing:
            return  # the previous renewal is still in flight
        self._renewing.add(partition)
        try:
            await self._renew_once(partition, lease)
        finally:
            self._renewing.discard(partition)

    async def _renew_once(self, partition: int, lease: LeaseRecord) -> None:
        sent = self._mono()
        self.stats.requests["renew"] += 1
        try:
            # Bounded by the validity it could grant (counted from its send): past that, its
            # success would restore nothing, and the rounds after it renew afresh. One given up
            # may still land: harmless, a renewal is conditioned on the epoch, not the version.
            async with asyncio.timeout(self.lease_s * SAFETY):
                renewed = await self.store.renew_lease(lease, self._wall())
        except TimeoutError:
            self.stats.requests["renew_timed_out"] += 1
            log.warning(
                "partition %d: renewal not answered in time; renewing afresh",
                partition,
                extra={"partition": partition},
            )
            return
        except FencedError:
            log.warning(
                "partition %d: lease taken over; stepping down",
                partition,
                extra={"partition": partition},
            )
            self._lose(partition)
            return
        except StoreError as exc:  # keep it until its validity runs out
            log.warning(
                "partition %d: renewal failed (%s); retrying",
                partition,
                exc,
                extra={"partition": partition},
            )
            return
        if self._owned.get(partition) is not lease:
            return  # lost or handed over meanwhile
        # Even if our validity lapsed while it was in flight, a renewal that succeeded proves
        # nobody claimed the lease before it landed (a claim moves the epoch, and the renewal
        # is conditioned on ours); contenders restart their wait from its new version. While
        # the validity had lapsed we did not act (``holds`` was False; the engine waits).
        answered = self._mono()
        margin = self._valid_until.get(partition, answered) - answered
        self.stats.renewed(answered - sent, margin)
        self._owned[partition] = renewed
        self._valid_until[partition] = self._validity(sent)
        if crashpoints.ARMED:
            crashpoints.reach("after-renewal")

    def _validity(self, sent: float) -> float:
        """Until when a lease claimed or renewed by a write sent at ``sent`` may be acted on:
        ``lease_s * SAFETY`` later; forever on a store exclusive to this process (nobody else
        can write it, so nobody can take the lease over: a stalled loop pauses nothing)."""
        return math.inf if self.exclusive else sent + self.lease_s * SAFETY

    async def _balance_in_background(self) -> None:
        await self.balance()

    async def balance(self) -> list[asyncio.Task[None]]:
        """Give up what we lead too much of, claim what is free or expired up to our share.
        Returns the recoveries started for the partitions claimed (they run on)."""
        if self._stopping:
            return []
        self.stats.requests["list_leases"] += 1
        leases = {lease.partition: lease for lease in await self.store.list_leases()}
        now = self._mono()
        for partition, lease in leases.items():
            seen = self._seen.get(partition)
            if seen is None or seen[0] != lease.version:
                self._seen[partition] = (lease.version, now)
        live = await self._live_members()
        target = self._target(live)
        await self._release_surplus(leases, target, live)
        started: list[asyncio.Task[None]] = []
        for partition in range(self.count):
            if self._stopping:
                break
            if partition in self._owned:
                continue
            current = leases.get(partition)
            orphaned = current is not None and current.owner is not None
            if len(self._owned) >= target and not orphaned:
                continue  # a free partition goes to a member below its share
            if self._claimable(partition, current, now):  # a dead leader's: anyone, at once
                gain = await self._claim(partition, current)
                if gain is not None:
                    started.append(gain)
        return started

    def _claimable(self, partition: int, lease: LeaseRecord | None, now: float) -> bool:
        if lease is None or lease.owner is None:
            return True
        if self.exclusive or lease.owner == self.node:
            return True  # our own earlier incarnation, or nobody else can use this store
        seen = self._seen.get(partition)
        return seen is not None and now - seen[1] >= self.lease_s

    async def _claim(self, partition: int, lease: LeaseRecord | None) -> asyncio.Task[None] | None:
        sent = self._mono()
        self.stats.requests["claim"] += 1
        try:
            new = await self.store.claim_lease(partition, self.node, lease, self._wall())
        except ConflictError:
            return None  # someone else moved first
        self._owned[partition] = new
        self._valid_until[partition] = self._validity(sent)
        self._seen[partition] = (new.version, self._mono())
        log.info(
            "partition %d: leader (epoch %d)", partition, new.epoch, extra={"partition": partition}
        )
        if self.on_claim is not None:
            self.on_claim(partition)
        task = asyncio.get_running_loop().create_task(self._gain(partition, new))
        self._gains.add(task)
        task.add_done_callback(self._gains.discard)
        return task

    async def _gain(self, partition: int, lease: LeaseRecord) -> None:
        if self.on_gain is None:
            return
        try:
            await self.on_gain(partition)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception(
                "partition %d: recovery failed; giving it up",
                partition,
                extra={"partition": partition},
            )
            current = self._owned.get(partition)
            if current is not None and current.epoch == lease.epoch:  # still this claim
                self._lose(partition)
                with contextlib.suppress(StoreError):
                    await self.store.release_lease(current, self._wall())

    async def _live_members(self) -> set[str] | None:
        """Members judged alive like leases: a heartbeat version that moved within a lease
        period of our monotonic clock. A member not yet watched that long counts as alive if
        its wall-clock heartbeat is recent (a start-up estimate). None if the store failed."""
        self.stats.requests["list_members"] += 1
        try:
            members = await self.store.list_members()
        except StoreError:
            return None
        now, horizon = self._mono(), self._wall() - int(self.lease_s * 3000)
        live = {self.node}
        for m in members:
            seen = self._member_seen.get(m.node)
            if seen is None or seen[0] != m.version:
                self._member_seen[m.node] = seen = (m.version, now, seen is not None)
            moved_lately = now - seen[1] < self.lease_s
            if moved_lately and (seen[2] or m.heartbeat_at >= horizon):
                live.add(m.node)
        return live

    def _target(self, live: set[str] | None) -> int:
        """How many partitions this process should lead: an even share among live members."""
        if self.exclusive:
            return self.count
        if live is None:
            return max(len(self._owned), 1)
        return math.ceil(self.count / len(live))

    async def _release_surplus(
        self, leases: dict[int, LeaseRecord], target: int, live: set[str] | None
    ) -> None:
        """Hand partitions over when we lead more than our share and some live member leads
        less than its share (so partitions move to a newcomer without flapping)."""
        surplus = len(self._owned) - target
        if surplus <= 0 or live is None:
            return
        held: dict[str, int] = {}
        for lease in leases.values():
            if lease.owner is not None:
                held[lease.owner] = held.get(lease.owner, 0) + 1
        hungry = [node for node in live if node != self.node and held.get(node, 0) < target]
        if not hungry:
            return
        handed = sorted(self._owned, reverse=True)[:surplus]
        for partition in handed:
            log.info(
                "partition %d: handing over (leading more than a fair share)",
                partition,
                extra={"partition": partition},
            )
        if self.on_drain is not None:  # the attempts in flight commit first, side by side
            await asyncio.gather(*(self.on_drain(p) for p in handed))
        for partition in handed:
            current = self._owned.get(partition)  # (renewed while draining)
            if current is None:
                continue  # lost meanwhile (fenced, lapsed): nothing to hand over
            self._lose(partition)
            with contextlib.suppress(StoreError):
                await self.store.release_lease(current, self._wall())
