"""The engine: drives invocations through attempts, owns key queues, timers and waiters.

Invariants (each one is what a test tries to break):

* The store is the truth. In-memory structures (drivers, key queues, suspended set, timer heap)
  are rebuilt from it by ``start()``; running ``start()`` after any crash re-drives exactly what
  was in flight, and doing it twice is harmless because every write is conditioned on the
  invocation's version and journal positions are append-only.
* In-memory copies of stored data (a queued invocation's record and input, an idle object
  key's state: ``_queued``, ``_key_states``) are kept only while this process alone uses the
  store, and dropped whenever anything else could change what they copy: they spare reads,
  they never hold anything the store does not.
* At most one driver task per invocation, and only that driver writes the invocation's record.
  Others touch an invocation only by adding a completion (first writer wins) and waking it.
* One exclusive handler per object key at a time, in arrival (``seq``) order: the key queue
  holds the non-terminal exclusive invocations of a key; only its head runs.
* Effects (start a callee, complete a caller, answer an ingress waiter) happen only after the
  unit that justifies them is committed.
* Only the leader of an invocation's partition drives it (``_owns``), and every unit it
  commits as leader carries the partition's epoch as a fence (``_commit``): a process that lost
  a partition cannot write to it, and steps down when it tries. Effects on invocations of
  partitions led elsewhere travel as inbox messages in the same unit (``CommitUnit.notify``);
  their leader reconciles the invocation from the store (``_reconcile``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from ritornello.protocol import (
    DiscoveryResponse,
    InvokeResponse,
    ProtocolError,
    RetryPolicy,
    ServiceInfo,
    new_deployment_id,
    new_id,
    parse_awakeable_id,
)
from ritornello.protocol._entries import WAITING_KINDS
from ritornello.store import (
    TERMINAL_STATUSES,
    CommitUnit,
    ConflictError,
    DeploymentRecord,
    FencedError,
    InvocationRecord,
    InvocationWrite,
    Store,
    StoreError,
    TimerRecord,
    crashpoints,
    with_changes,
)

from ._apply import (
    CANCEL_INDEX,
    CANCELLED_RESULT,
    DEFAULT_RETRY,
    WORKFLOW_RUN,
    AnswerError,
    Outcome,
    apply_answer,
    completion_text,
    failed_attempt,
    new_invocation,
    split_state,
    terminal,
)
from ._clock import Clock, SystemClock
from ._journal_time import stamp_unit
from ._json import IntegerRangeError, check_int64, dumps, loads
from ._metrics import CommitTimings
from ._partitions import Leadership, partition_of
from ._registry import Registry, Target
from ._schedules import Scheduler
from ._timers import TimerQueue
from ._watchdog import watch
from .invokers import InvokerError, InvokeStream, make_invoker

log = logging.getLogger("ritornello.engine")

#: How many idle object keys keep their state in memory (``Engine._key_states``), and the
#: largest state (characters of JSON text) kept: a cache of reads, not a copy of the store.
KEY_STATES_CACHED = 1024
KEY_STATE_MAX_CHARS = 16 * 1024


class EngineError(Exception):
    """A request to the engine that cannot be served (the message says why)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(slots=True)
class _Run:
    """What a driver holds for the invocation it drives."""

    rec: InvocationRecord
    entries: list[str]
    completions: dict[int, str]
    waitable: set[int]
    state: dict[str, str] | None = None
    promises: dict[str, str] | None = None  # workflows: resolved promises, name -> result
    arrived: bool = False
    #: completions may have landed while the driver was loading: re-read them before the
    #: next attempt (and do not suspend until then)
    reload: bool = False
    cancel_sent: bool = False  # the last request carried the cancellation signal
    timer_removals: list[TimerRecord] = field(default_factory=list)
    #: Sleep timers that fired and woke this driver with their completion held only here (in
    #: ``completions``, not yet in the store): the next unit the driver commits carries those
    #: completions, with the timers themselves in ``timer_removals`` (``_fire_timers``).
    deferred: list[TimerRecord] = field(default_factory=list)
    #: A streamed attempt whose last answer was a checkpoint: acknowledged once it is
    #: committed, if ``completions`` still has ``live_seen`` entries (nothing new arrived).
    live: InvokeStream | None = None
    live_seen: int = 0


def _run_from_journal(
    rec: InvocationRecord, entries: list[str], completion_texts: list[str]
) -> _Run:
    """The run of ``rec`` from its journal (a driver's own read, or a recovery's batch read)."""
    waitable = {i for i, e in enumerate(entries) if loads(e)["kind"] in WAITING_KINDS}
    completions = {loads(c)["index"]: c for c in completion_texts}
    return _Run(rec, entries, completions, waitable)


class Engine:
    """The orchestrator's core, on one event loop."""

    def __init__(
        self,
        store: Store,
        *,
        clock: Clock | None = None,
        retry: RetryPolicy | None = None,
        attempt_timeout_s: float = 300.0,
        inprocess: dict[str, Any] | None = None,
        retention_s: float = 86_400.0,
        node: str | None = None,
        lease_s: float = 5.0,
        lead: bool = True,
        address: str = "",
        inbox_interval_s: float = 0.2,
        watchdog_interval_s: float = 30.0,
        schedule_interval_s: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
        wall_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        signing_secret: str = "",
    ) -> None:
        self.store = store
        #: Signs every request to a handler endpoint (docs/auth.md); empty: unsigned.
        self.signing_secret = signing_secret
        self.clock = clock or SystemClock()
        #: The default policy; a handler's declared policy overrides it field by field.
        self.retry = (retry or RetryPolicy()).merged_over(DEFAULT_RETRY)
        self.attempt_timeout_s = attempt_timeout_s
        #: How long a finished invocation (its result, journal, idempotency key, and for a
        #: workflow its state and promises) is kept before it is purged.
        self.retention_s = retention_s
        self._sweeper: asyncio.Task[None] | None = None
        self.inprocess: dict[str, Any] = inprocess if inprocess is not None else {}
        self.registry = Registry()
        self._seq = 0
        self._drivers: dict[str, asyncio.Task[None]] = {}
        self._runs: dict[str, _Run] = {}
        # suspended invocations: id -> (entries awaited, partition)
        self._suspended: dict[str, tuple[tuple[int, ...], int]] = {}
        #: (deployment, service, handler) seen answering ``checkpoint``: invoked streamed
        self._stepwise: dict[tuple[str, str, str], bool] = {}
        self._queues: dict[tuple[str, str], deque[str]] = {}
        # Pending invocations created here by ``submit`` while this process alone uses the
        # store: what their driver would load (record, input entry), handed to it when they
        # reach the head of their key's queue (``_unqueue``). Dropped when they leave the
        # queue, when an operator acts on them, and with their partition.
        self._queued: dict[str, _Run] = {}
        # The state of idle object keys (no queue) as their last exclusive holder here left it,
        # while this process alone uses the store: the next holder ``submit`` starts begins
        # with it instead of reading it. An entry exists only while its key has no queue
        # (``_queue_for`` drops it) and goes with any unit that writes the key's state
        # (``_commit``: an operator's write) and with its partition (``_lost``).
        self._key_states: dict[tuple[str, str], dict[str, str]] = {}
        # Invocations whose creation ``submit`` is committing: nothing else starts them (their
        # record may not be readable yet); ``submit`` does once the commit is done.
        self._creating: set[str] = set()
        self._waiters: dict[str, list[asyncio.Future[str]]] = {}
        self._timers = TimerQueue(self.clock, self._fire_timers, self._handed_over)
        self._started = False
        self._closing = False
        self._stopping_drivers: set[str] = set()  # being killed or paused: spawn nothing
        # workflow keys (promises): the lock and how many tasks hold or await it
        self._locks: dict[tuple[str, str], tuple[asyncio.Lock, list[int]]] = {}
        #: This process's name among orchestrators sharing the store.
        self.node = node or "node_" + secrets.token_hex(6)
        self.leadership = Leadership(
            store,
            self.node,
            lease_s=lease_s,
            address=address,
            exclusive=store.exclusive,
            lead=lead,
            on_gain=self._recover,
            on_lose=self._lost,
            monotonic=monotonic,  # the lease clocks (a simulation passes virtual ones)
            wall_ms=wall_ms,
        )
        self.inbox_interval_s = inbox_interval_s
        #: How often the stuck-invocation watchdog looks (``_watchdog.py``); 0: never.
        self.watchdog_interval_s = watchdog_interval_s
        self._watchdog: asyncio.Task[None] | None = None
        #: Cron schedules (``_schedules.py``): polled every ``schedule_interval_s``; 0: never.
        self.schedules = Scheduler(self, interval_s=schedule_interval_s)
        #: Events worth a metric: partitions recovered, inbox reconciliations, fenced commits.
        self.counters: Counter[str] = Counter()
        #: Latency of ``store.commit`` in ``_commit`` (``_metrics.py``; GET /metrics).
        self.commit_timings = CommitTimings()
        self._ready: set[int] = set()  # partitions led here whose recovery has finished
        self._inbox_task: asyncio.Task[None] | None = None
        self._refreshed_on_miss = float("-inf")
        self._reload: set[str] = set()  # drivers to re-read completions (see ``_wake``)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Load deployments, then take part in leadership: every partition this process comes
        to lead is recovered (``_recover``) before it is driven.

        Recovering twice is harmless: drivers are keyed by invocation id, and whatever a
        re-driven attempt writes is conditioned on the record version it read.
        """
        await self.refresh_deployments()
        self._seq = await self.store.max_seq()
        self._timers.start()
        loop = asyncio.get_running_loop()
        self._sweeper = loop.create_task(self._sweep_forever())
        self._started = True
        await self.leadership.start()
        self._inbox_task = loop.create_task(self._inbox_forever())
        self.schedules.start()
        if self.watchdog_interval_s > 0:
            self._watchdog = loop.create_task(watch(self, self.watchdog_interval_s))
        log.info(
            "engine %s started: leading %d of %d partitions",
            self.node,
            len(self.leadership.owned()),
            self.leadership.count,
        )

    async def refresh_deployments(self) -> None:
        """Load deployments registered (or removed) through any orchestrator sharing the
        store. Runs at start and every few seconds."""
        stored = {dep.id: dep for dep in await self.store.list_deployments()}
        recent = self.clock.now_ms() - 10_000  # may be registering here right now
        gone = [
            d.id
            for d in self.registry.deployments.values()
            if d.id not in stored and d.created_at < recent
        ]
        for dep_id in gone:
            invoker = self.registry.remove(dep_id)
            if invoker is not None:
                await invoker.close()
        for dep in stored.values():
            known = self.registry.deployments.get(dep.id)
            if known is not None and known.services == dep.services and known.uri == dep.uri:
                continue
            try:
                invoker = make_invoker(
                    dep.uri,
                    self.inprocess,
                    timeout_s=self.attempt_timeout_s,
                    signing_secret=self.signing_secret,
                )
            except InvokerError as exc:
                log.warning("deployment %s (%s) not reachable here: %s", dep.id, dep.uri, exc)
                continue
            old = self.registry.remove(dep.id) if known is not None else None
            if old is not None:
                await old.close()
            self.registry.add(dep, invoker)

    async def find_service(self, name: str) -> tuple[ServiceInfo, str] | None:
        """``registry.service(name)``; on a miss, when other processes share the store, the
        deployments are read again first (at most twice a second), so a deployment
        registered through another orchestrator is found at once."""
        found = self.registry.service(name)
        if found is not None or self.store.exclusive:
            return found
        now = asyncio.get_running_loop().time()
        if now - self._refreshed_on_miss >= 0.5:
            self._refreshed_on_miss = now
            await self.refresh_deployments()
        return self.registry.service(name)

    # ------------------------------------------------------------------ partitions

    def _partition(self, service: str, key: str | None, inv_id: str) -> int:
        return partition_of(service, key, inv_id, self.leadership.count)

    def _owns(self, partition: int) -> bool:
        """True while this process leads ``partition`` and has recovered it."""
        return partition in self._ready and self.leadership.holds(partition)

    def _alone(self) -> bool:
        """True while no other process can use the store: it is exclusive to this one and
        this one leads every partition (so nothing stored changes behind its back)."""
        return self.store.exclusive and self.leadership.holds_all()

    async def _recover(self, partition: int) -> None:
        """Rebuild what the partition's previous leader held in memory: key queues (in
        arrival order), suspended invocations, timers; then drive what was in flight.

        The reads happen first and the in-memory structures are built without awaiting, so
        nothing else on the loop sees a half-recovered partition. The drivers start from the
        records and journals read here (``_run_from_journal``, one read for all) instead of each
        reading its own: only a leader appends entries; another process that changes a
        record meanwhile (kill, pause) or adds a completion leaves an inbox message, which is
        reconciled once the partition is ready; and every commit of a driver is conditioned
        on the record version it started from — all as after a driver's own load."""
        epoch = self.leadership.epoch(partition)
        live = ["pending", "running", "suspended", "backing-off", "scheduled", "paused"]
        records = [
            rec async for rec in self.store.scan_invocations(live, partition=partition, page=5000)
        ]
        timers = await self.store.list_timers(partition=partition)
        # The journals of what may be driven at once, in one read rather than one per driver.
        journals = await self.store.get_journals(
            [r.id for r in records if r.status in ("running", "pending")]
        )
        if self.leadership.epoch(partition) != epoch:
            return  # lost (and maybe regained) while reading: that round recovers it
        if not self.leadership.holds(partition):
            self.leadership.step_down(partition)  # expired while reading: let it go cleanly
            return
        self._ready.add(partition)
        # Key queues: the key's holder first (the one that started: running, suspended,
        # backing-off or paused), then the ones waiting behind it in arrival order. Arrival
        # (seq) alone is not enough: a delayed send joins its queue when its timer admits
        # it, possibly behind a holder that arrived later (found by the simulation, seed 110).
        holders = [r for r in records if r.status not in ("pending", "scheduled")]
        waiting = [r for r in records if r.status == "pending"]
        # A queue of this partition that exists already holds what ``_admit`` queued while
        # the reads ran (``_lost`` left none): newer than everything read, so behind it; one
        # whose creation failed meanwhile has left its queue and stays out.
        read = {r.id for r in records}
        early = {
            k: [inv_id for inv_id in self._queues.pop(k) if inv_id not in read]
            for k in [k for k in self._queues if self._partition(k[0], k[1], "") == partition]
        }
        for rec in holders + waiting:  # each list ordered by seq
            if self._exclusive_key(rec) is not None and rec.id not in self._queue_for(rec):
                self._queue_for(rec).append(rec.id)
        for k, ids in early.items():
            self._queues.setdefault(k, deque()).extend(ids)
        suspended = []
        for rec in records:
            if rec.status == "suspended" and rec.id not in self._drivers:
                self._suspended[rec.id] = (rec.waiting, rec.partition)
                suspended.append(rec.id)
            elif rec.status in ("running", "pending") and self._may_run(rec):
                self._spawn(rec.id, _run_from_journal(rec, *journals[rec.id]))
        for k, ids in early.items():  # first in its queue: started once it is created
            if ids and self._queues[k][0] == ids[0]:  # (``_spawn`` waits for ``submit``'s
                self._spawn(ids[0])  # commit, ``_after_commit`` for a caller's)
        for timer in timers:
            self._timers.add(timer)
        # A completion committed just before a crash may not have woken its invocation.
        for start in range(0, len(suspended), 500):  # journals read 500 at a time
            await self._wake_if_completed(suspended[start : start + 500])
        self.counters["partitions_recovered"] += 1
        log.info("partition %d: recovered, %d invocations in flight", partition, len(records))

    async def _leading(self, partition: int) -> bool:
        """Whether to go on driving an invocation of ``partition``: True while we lead it.
        While the lease's validity has lapsed with a renewal still in flight, wait for the
        verdict instead of giving up (giving up would drop the invocation from memory while
        the partition stays ours); False once the partition is lost."""
        while partition in self._ready or self.leadership.holds(partition):
            if partition in self._ready and self.leadership.holds(partition):
                return True
            # claimed here, its recovery still reading (or a lapse): a driver started meanwhile
            # (a callee another partition's driver created in it) may be missing from what the
            # recovery read, so it waits for the recovery rather than giving the invocation up
            # (simulation seed 591); a failed recovery gives the partition up, ending the wait
            await asyncio.sleep(0.02)
        return False

    async def _wake_if_completed(self, inv_ids: list[str]) -> None:
        """Wake those of ``inv_ids`` still suspended here that hold a completion they wait
        on (or a cancellation)."""
        journals = await self.store.get_journals(
            [inv_id for inv_id in inv_ids if inv_id in self._suspended]
        )
        for inv_id, (_, completions) in journals.items():
            done = {loads(c)["index"] for c in completions}
            entry = self._suspended.get(inv_id)  # may have changed during the read
            if entry is not None and (CANCEL_INDEX in done or done.intersection(entry[0])):
                self._wake(inv_id)

    def _lost(self, partition: int) -> None:
        """This process no longer leads ``partition``: stop driving its invocations (their
        state is in the store; the new leader recovers it)."""
        self._ready.discard(partition)
        for inv_id, run in list(self._runs.items()):
            if run.rec.partition == partition:
                task = self._drivers.get(inv_id)
                if task is not None:
                    task.cancel()
        for inv_id, (_, p) in list(self._suspended.items()):
            if p == partition:
                del self._suspended[inv_id]
        for k in list(self._queues):
            if self._partition(k[0], k[1], "") == partition:
                del self._queues[k]
        for inv_id, queued in list(self._queued.items()):
            if queued.rec.partition == partition:
                del self._queued[inv_id]
        for k in list(self._key_states):
            if self._partition(k[0], k[1], "") == partition:
                del self._key_states[k]
        self._timers.drop_partition(partition)

    async def _commit(self, unit: CommitUnit, home: int | None) -> None:
        """Commit ``unit`` as the leader of partition ``home`` (None: as nobody's leader, e.g.
        an ingress request), so that no effect can be lost to a change of leader:

        * the unit is fenced by ``home``'s epoch, and by the epoch of every other partition
          it creates or completes an invocation in and that this process leads (it will act
          on those in memory after the commit; the fence proves it still led them when the
          unit landed, so a successor's recovery, which reads after its claim, sees it);
        * for invocations of partitions led elsewhere it adds inbox messages instead.

        A failed fence of ``home`` raises FencedError after stepping down; a failed fence of
        another partition steps down from it and commits again with a message instead."""
        invocations = unit.invocations
        for n, write in enumerate(invocations):
            rec = write.record
            if rec.expires_at is None and rec.status in TERMINAL_STATUSES:
                expires = rec.modified_at + int(self.retention_s * 1000)
                invocations[n] = InvocationWrite(
                    with_changes(rec, expires_at=expires), write.expect_version
                )
        stamp_unit(unit, self.clock.now_ms())  # "at" on its entries and completions
        if unit.state and self._key_states:  # a key's state changes: its cached copy goes
            for service, key, _, _ in unit.state:
                self._key_states.pop((service, key), None)
        base_notify = list(unit.notify)
        for _ in range(4):
            # A lapse of home's lease (its renewal in flight) is waited out, not taken for a
            # loss: giving up here would leave the invocation with no driver while the
            # partition stays ours. (``_leading`` is only awaited when the lease is not held
            # right now: the common case takes no extra step on the loop.)
            if home is not None and not self._owns(home) and not await self._leading(home):
                raise FencedError(f"partition {home} is not led by {self.node}", home)
            unit.fences.clear()
            unit.notify[:] = base_notify
            fence = {home} if home is not None else set()
            # nothing to find when this process alone can use the store: it leads them all
            if not self._alone():
                for inv_id, p in (await self._targets(unit)).items():
                    if p == home:
                        continue
                    if self._owns(p):
                        fence.add(p)
                    elif (p, inv_id) not in unit.notify:
                        unit.notify.append((p, inv_id))
            order = sorted(fence, key=lambda q: (q != home, q)) if len(fence) > 1 else fence
            for p in order:  # home first: it stamps
                epoch = self.leadership.epoch(p)
                if epoch is None or not self._owns(p):
                    if p == home:
                        raise FencedError(f"partition {p} is not led by {self.node}", p)
                    break  # lost meanwhile: go round again, it gets a message now
                unit.fences.append((p, epoch))
            else:
                try:
                    if crashpoints.ARMED:
                        crashpoints.reach("before-commit")
                    began = time.perf_counter()
                    await self.store.commit(unit)
                    self.commit_timings.observe(time.perf_counter() - began)
                    if crashpoints.ARMED:
                        crashpoints.reach("after-commit")
                    return
                except FencedError as exc:
                    self.counters["fenced"] += 1
                    lost = exc.partition
                    if lost is None or lost == home:
                        if home is not None:
                            self.leadership.step_down(home)
                        raise
                    self.leadership.step_down(lost)
        raise FencedError(f"leadership keeps changing under a commit of {self.node}")

    async def _targets(self, unit: CommitUnit) -> dict[str, int]:
        """The partitions of the invocations ``unit`` creates or completes an entry of (only
        asked when another process may use the store: alone, this one leads them all)."""
        targets: dict[str, int] = {}
        for write in unit.invocations:
            if write.expect_version is None:
                targets[write.record.id] = write.record.partition
        for inv_id, _, _ in unit.completions:
            if inv_id in targets:
                continue
            run = self._runs.get(inv_id)
            if run is not None:
                targets[inv_id] = run.rec.partition
                continue
            rec = await self.store.get_invocation(inv_id)
            if rec is not None:
                targets[inv_id] = rec.partition
        return targets

    async def _inbox_forever(self) -> None:
        """Poll the inboxes of the partitions led here (and re-read deployments every 2 s).
        The poll interval starts at ``inbox_interval_s`` and doubles while the inboxes stay
        empty, up to 1 s, so an idle orchestrator costs a few reads a second; any message
        brings it back down. A process alone on an exclusive store (SQLite) never polls:
        nobody else can write to it."""
        loop = asyncio.get_running_loop()
        refreshed = loop.time()
        interval = self.inbox_interval_s
        while True:
            await asyncio.sleep(interval)
            if self._alone():
                continue
            if loop.time() - refreshed > 2.0:
                refreshed = loop.time()
                try:
                    await self.refresh_deployments()
                except StoreError:
                    log.exception("reading deployments failed; trying again")
            found = 0
            for p in sorted(self._ready):
                try:
                    found += await self._drain_inbox(p)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("partition %d: inbox failed; trying again", p)
            idle_max = max(self.inbox_interval_s, 1.0)
            interval = self.inbox_interval_s if found else min(interval * 2, idle_max)

    async def _drain_inbox(self, partition: int) -> int:
        """Reconcile every invocation named in the partition's inbox, then delete the
        messages — fenced by our epoch, so a leader that lost the partition mid-way (paused,
        say) deletes nothing its successor has not seen. Returns how many were read."""
        epoch = self.leadership.epoch(partition)
        messages = await self.store.read_inbox(partition)
        if not messages or epoch is None:
            return len(messages)
        for inv_id in dict.fromkeys(inv for _, inv in messages):
            if not self._owns(partition) or not await self._reconcile(inv_id):
                return len(messages)  # not ours now: the messages stay for whoever leads
        try:
            await self.store.ack_inbox(partition, [m for m, _ in messages], epoch)
        except FencedError:
            self.leadership.step_down(partition)
        return len(messages)

    async def _reconcile(self, inv_id: str) -> bool:
        """Bring what this leader holds in memory for ``inv_id`` in line with the store,
        after another process created it, completed one of its entries, or changed it.
        False if the invocation's partition is not led here right now (nothing done)."""
        rec = await self.store.get_invocation(inv_id)
        if rec is None:
            return True
        if not self._owns(rec.partition):
            return False  # not ours right now: leave its message for whoever leads
        self.counters["reconciled"] += 1
        await self._reconcile_record(rec)
        return True

    async def _reconcile_record(self, rec: InvocationRecord) -> None:
        inv_id = rec.id
        if rec.status in TERMINAL_STATUSES or rec.status == "paused":
            task = self._drivers.get(inv_id)
            if task is not None:
                task.cancel()
            self._suspended.pop(inv_id, None)
            if rec.status != "paused":
                self._finish(rec)
            return
        if rec.status == "scheduled":
            if rec.next_at is not None:
                self._timers.add(TimerRecord(rec.next_at, rec.id, "start", 0, rec.partition))
            return
        if self._exclusive_key(rec) is not None and rec.id not in self._queue_for(rec):
            self._queue_for(rec).append(rec.id)
        if rec.status == "backing-off":
            if rec.next_at is not None and rec.id not in self._drivers:
                self._timers.add(TimerRecord(rec.next_at, rec.id, "retry", 0, rec.partition))
            return
        _, completions = await self.store.get_journal(inv_id)
        if inv_id in self._drivers:
            run = self._runs.get(inv_id)
            if run is None:  # loading: its read may predate these completions
                self._reload.add(inv_id)
                return
            for text in completions:
                index = loads(text)["index"]
                if index not in run.completions:
                    self._deliver(inv_id, index, text)
            return
        if rec.status == "suspended":
            self._suspended[inv_id] = (rec.waiting, rec.partition)
            done = {loads(c)["index"] for c in completions}  # the journal read just above
            if CANCEL_INDEX in done or done.intersection(rec.waiting):
                self._wake(inv_id)
        elif self._may_run(rec):
            self._spawn(inv_id)

    async def stop(self) -> None:
        """Stop driving. Whatever was running stays 'running' in the store and is re-driven at
        the next start; nothing is lost because nothing is acknowledged before its commit."""
        if self._closing:
            return
        self._closing = True
        await self._timers.stop()
        await self.schedules.stop()
        for background in (self._sweeper, self._inbox_task, self._watchdog):
            if background is not None:
                background.cancel()
                await asyncio.gather(background, return_exceptions=True)
        tasks = list(self._drivers.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.leadership.stop()  # successors need not wait for our leases to expire
        for inv_id, waiters in self._waiters.items():
            for fut in waiters:
                if not fut.done():
                    fut.set_exception(
                        EngineError(
                            f"the orchestrator is shutting down; invocation {inv_id} goes on "
                            f"after restart: GET /restate/attach/{inv_id}",
                            503,
                        )
                    )
        for invoker in self.registry.invokers.values():
            await invoker.close()

    # ------------------------------------------------------------------ deployments

    async def register_deployment(
        self, uri: str, *, assume_role_arn: str | None = None
    ) -> DeploymentRecord:
        """Discover what ``uri`` serves and register it (re-registering a URI refreshes it).

        ``uri`` may be a qualified Lambda function ARN; ``assume_role_arn`` (Lambda only) is
        then kept in the stored URI (``ARN?assume_role_arn=...``) so it survives restarts.
        """
        if uri.startswith("arn:"):
            from .invokers import parse_function_arn

            try:
                uri = parse_function_arn(uri, assume_role_arn).uri
            except InvokerError as exc:
                raise EngineError(str(exc), 400) from None
        elif assume_role_arn is not None:
            raise EngineError("assume_role_arn applies to Lambda ARNs only", 400)
        try:
            invoker = make_invoker(
                uri,
                self.inprocess,
                timeout_s=self.attempt_timeout_s,
                signing_secret=self.signing_secret,
            )
        except InvokerError as exc:
            raise EngineError(str(exc), 400) from None
        try:
            async with asyncio.timeout(30):
                discovery = DiscoveryResponse.decode(await invoker.discover())
        except (InvokerError, ProtocolError, TimeoutError, ValueError) as exc:
            await invoker.close()
            raise EngineError(f"discovery at {uri} failed: {exc}", 502) from None
        for svc in discovery.services:
            known = self.registry.service(svc.name)
            if known is not None and known[0].kind != svc.kind:
                await invoker.close()
                raise EngineError(
                    f"service {svc.name} is a {known[0].kind} in deployment {known[1]}; "
                    f"{uri} declares it a {svc.kind}",
                    409,
                )
        existing = next((d for d in self.registry.deployments.values() if d.uri == uri), None)
        record = DeploymentRecord(
            id=existing.id if existing else new_deployment_id(),
            uri=uri,
            services=discovery.encode().decode(),
            created_at=existing.created_at if existing else self.clock.now_ms(),
        )
        await self.store.put_deployment(record)
        if existing is not None:
            old = self.registry.remove(existing.id)
            if old is not None:
                await old.close()
        self.registry.add(record, invoker)
        return record

    async def delete_deployment(self, deployment_id: str) -> bool:
        """Forget a deployment (invocations pinned to it fail their attempts until re-added)."""
        found = await self.store.delete_deployment(deployment_id)
        invoker = self.registry.remove(deployment_id)
        if invoker is not None:
            await invoker.close()
        return found

    # ------------------------------------------------------------------ ingress

    def next_seq(self) -> int:
        """Arrival order: increasing in this process, and roughly ordered by time across the
        processes sharing a store (microseconds since the epoch, or one more than the last)."""
        self._seq = max(self._seq + 1, self.clock.now_ms() * 1000)
        return self._seq

    async def submit(
        self,
        target: Target,
        key: str | None,
        input_text: str,
        *,
        idempotency_key: str | None = None,
        delay_ms: int = 0,
        headers: dict[str, str] | None = None,
    ) -> tuple[InvocationRecord, bool]:
        """Create an invocation durably; returns (record, created). With an idempotency key
        already used for this target, returns the existing invocation and False. ``headers``
        (already redacted) go into the input entry, for ``ctx.headers``."""
        if self._closing:
            raise EngineError("the orchestrator is shutting down", 503)
        if self._timers.behind():  # due timers first (_timers.py): wait a moment
            await self._timers.yield_to_timers()
        service, handler = target.service.name, target.handler.name
        if target.handler.kind == "workflow":
            idempotency_key = WORKFLOW_RUN  # a workflow runs once per id
        if idempotency_key is not None:
            found = await self.store.find_idempotent(service, handler, key, idempotency_key)
            if found is not None:
                return found, False
        now = self.clock.now_ms()
        inv_id = new_id()
        partition = self._partition(service, key, inv_id)
        base = new_invocation(
            id=inv_id,
            partition=partition,
            service=service,
            handler=handler,
            key=key,
            handler_kind=target.handler.kind,
            deployment_id=target.deployment_id,
            seq=self.next_seq(),
            now_ms=now,
            status="scheduled" if delay_ms > 0 else "running",
            idempotency_key=idempotency_key,
            next_at=now + delay_ms if delay_ms > 0 else None,
        )
        for _ in range(3):
            here = self._owns(partition)
            rec = base
            extra = ',"headers":' + dumps(headers) if headers else ""
            unit = CommitUnit(
                entries=[(rec.id, 0, '{"kind":"input","value":' + input_text + extra + "}")]
            )
            state: dict[str, str] | None = None
            if delay_ms > 0:
                unit.timers_add.append(TimerRecord(now + delay_ms, rec.id, "start", 0, partition))
            elif here:
                k = self._exclusive_key(rec)
                # an idle key's cached state: valid only until its queue exists (just below)
                state = self._key_states.pop(k, None) if k is not None else None
                status = self._admit(rec)
                if status != rec.status:
                    rec = with_changes(rec, status=status)
            elif self._exclusive_key(rec) is not None:
                rec = with_changes(rec, status="pending")  # its leader admits it
            unit.invocations.append(InvocationWrite(rec))
            self._creating.add(rec.id)
            try:
                await self._commit(unit, partition if here else None)
            except FencedError:
                self._unqueue(rec)
                continue  # we lost the partition meanwhile: hand it to its new leader
            except ConflictError:
                self._unqueue(rec)
                if idempotency_key is not None:  # a concurrent request with the same key won
                    found = await self.store.find_idempotent(service, handler, key, idempotency_key)
                    if found is not None:
                        return found, False
                raise
            except BaseException:
                self._unqueue(rec)
                raise
            finally:
                self._creating.discard(rec.id)
            if not here:
                return rec, True  # the partition's leader picks it up from its inbox
            if delay_ms > 0:
                self._timers.add(unit.timers_add[0])
            elif rec.status == "running" or self._may_run(rec):
                # (a pending one may run when its key was freed while the commit was in flight)
                run = _Run(rec, [unit.entries[0][2]], {}, set())
                if rec.status == "running":
                    run.state = state  # it has held its key since before ``state`` was taken
                self._spawn(rec.id, run)
            elif self._alone():
                k = self._exclusive_key(rec)
                queue = self._queues.get(k) if k is not None else None
                if queue is not None and rec.id in queue:  # still waiting for its key
                    self._queued[rec.id] = _Run(rec, [unit.entries[0][2]], {}, set())
            return rec, True
        raise EngineError("partition leadership keeps changing; try again", 503)

    async def wait_result(
        self, invocation_id: str, *, created: InvocationRecord | None = None
    ) -> str:
        """Wait until the invocation completes; its result text (``{"value"|"failure": ...}``).

        ``created``: the record ``submit`` just returned for this id (created, not found by
        its idempotency key), with no await between ``submit`` returning and this call (the
        ingress). When it provably has not finished here yet, the first read of the store is
        skipped (``_unfinished_here``); otherwise it is ignored.

        Raises EngineError(404) for an unknown id."""
        fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        waiters = self._waiters.get(invocation_id)
        if waiters is None:
            self._waiters[invocation_id] = [fut]
        else:
            waiters.append(fut)
        try:
            # The waiter is registered (above, without awaiting) before this check: from now
            # on ``_finish`` answers it, so skipping the read cannot miss the result.
            if created is not None and self._unfinished_here(created):
                rec: InvocationRecord | None = created
            else:
                rec = await self.store.get_invocation(invocation_id)
            if rec is None:
                raise EngineError(f"invocation {invocation_id} not found", 404)
            # The future is answered when this process finishes the invocation; when another
            # process leads its partition (or takes it over), the store is polled instead.
            delay = 0.02
            while rec.status not in TERMINAL_STATUSES:
                timeout: float | None = delay
                if self._owns(rec.partition):  # ours: answered through the future
                    sole = self._alone()
                    timeout = None if sole else 1.0
                if timeout is None:  # answered by ``_finish``, whenever that is
                    return await fut
                done, _ = await asyncio.wait({fut}, timeout=timeout)
                if done:
                    return fut.result()
                delay = min(delay * 2, 0.5)
                found = await self.store.get_invocation(invocation_id)
                if found is None:
                    raise EngineError(f"invocation {invocation_id} was purged", 404)
                rec = found
            return rec.result or dumps({"failure": {"code": 409, "message": rec.status}})
        finally:
            waiters = self._waiters.get(invocation_id)
            if waiters is not None:
                with contextlib.suppress(ValueError):
                    waiters.remove(fut)
                if not waiters:
                    del self._waiters[invocation_id]

    def _unfinished_here(self, rec: InvocationRecord) -> bool:
        """True when ``rec`` (just created by ``submit``) cannot have finished in this process:

        * running: ``submit`` spawned its driver in this loop iteration (``rec.id`` is in
          ``_drivers`` and, with no await since, the driver has not taken a single step);
        * pending: it still waits in its key's queue (``_finish`` always takes it out).

        Either way it belongs to a partition led here, so its end comes through ``_finish``,
        which answers every registered waiter."""
        if not self._owns(rec.partition):
            return False
        if rec.status == "running":
            return rec.id in self._drivers
        if rec.status == "pending":
            k = self._exclusive_key(rec)
            q = self._queues.get(k) if k is not None else None
            return q is not None and rec.id in q
        return False

    async def describe(self, invocation_id: str) -> tuple[InvocationRecord, list[str], list[str]]:
        """An invocation with its journal and completions (live status if it is being driven)."""
        rec = await self.store.get_invocation(invocation_id)
        if rec is None:
            raise EngineError(f"invocation {invocation_id} not found", 404)
        run = self._runs.get(invocation_id)
        if run is not None and run.rec.version >= rec.version:
            rec = replace(run.rec, status="running")
        entries, completions = await self.store.get_journal(invocation_id)
        return rec, entries, completions

    # ------------------------------------------------------------------ retention

    async def purge_expired(self) -> int:
        """Purge invocations finished more than ``retention_s`` ago (with a workflow's state
        and promises); their idempotency keys and workflow ids become free again. Returns
        how many were purged. Safe to run any time: it only touches terminal invocations."""
        cutoff = self.clock.now_ms() - int(self.retention_s * 1000)
        total = 0
        for p in sorted(self._ready):  # each partition's leader purges its own
            while self._owns(p) and (
                expired := await self.store.list_expired(cutoff, 500, partition=p)
            ):
                unit = CommitUnit(purge=[r.id for r in expired])
                for r in expired:
                    if r.handler_kind == "workflow" and r.key is not None:
                        unit.state.append((r.service, r.key, None, None))
                await self._commit(unit, p)
                total += len(expired)
        if total:
            log.info("retention: purged %d finished invocations", total)
        return total

    async def _sweep_forever(self) -> None:
        interval = max(0.05, min(60.0, self.retention_s / 4))
        while True:
            await asyncio.sleep(interval)
            try:
                await self.purge_expired()
            except StoreError:
                log.exception("retention sweep failed; trying again later")

    # ------------------------------------------------------------------ awakeables

    async def complete_awakeable(self, awakeable_id: str, result_text: str) -> None:
        """Resolve or reject an awakeable from outside (``result_text`` is ``{"value": ...}``
        or ``{"failure": ...}``). Unknown or forged ids: 404; already completed: 409."""
        if self._closing:
            raise EngineError("the orchestrator is shutting down", 503)
        inv_id, index = await self._awakeable_target(awakeable_id)
        text = completion_text(index, result_text)
        await self._commit(CommitUnit(completions=[(inv_id, index, text)]), None)
        self._deliver(inv_id, index, text)

    async def _awakeable_target(self, awakeable_id: str) -> tuple[str, int]:
        target = parse_awakeable_id(awakeable_id)
        if target is None:
            raise EngineError(f"awakeable {awakeable_id!r} not found", 404)
        inv_id, index = target
        rec = await self.store.get_invocation(inv_id)
        entries, completions = await self.store.get_journal(inv_id)
        if (
            rec is None
            or index >= len(entries)
            or loads(entries[index]).get("id") != awakeable_id
            or loads(entries[index]).get("kind") != "awakeable"
        ):
            raise EngineError(f"awakeable {awakeable_id!r} not found", 404)
        if rec.status in TERMINAL_STATUSES:
            raise EngineError(f"awakeable {awakeable_id!r}: its invocation is {rec.status}", 409)
        if any(loads(c)["index"] == index for c in completions):
            raise EngineError(f"awakeable {awakeable_id!r} is already completed", 409)
        return target

    async def _check_awakeables(
        self, run: _Run, answer: InvokeResponse
    ) -> dict[str, tuple[str, int]]:
        """The awakeables an answer completes that really exist and are still open (an id that
        is forged, unknown or already completed completes nothing: first writer wins)."""
        found: dict[str, tuple[str, int]] = {}
        for n, entry in enumerate(answer.entries):
            if entry.get("kind") != "complete_awakeable":
                continue
            aid = str(entry.get("id"))
            target = parse_awakeable_id(aid)
            if target is None or aid in found:
                continue
            if target[0] == run.rec.id:  # its own awakeable: this journal or this answer
                own = [loads(e) for e in run.entries] + list(answer.entries[:n])
                i = target[1]
                if i < len(own) and own[i].get("id") == aid and i not in run.completions:
                    found[aid] = target
                continue
            try:
                found[aid] = await self._awakeable_target(aid)
            except EngineError as exc:
                log.warning("%s completes nothing: %s", run.rec.id, exc)
        return found

    # ------------------------------------------------------------------ operator actions

    async def kill(self, invocation_id: str) -> InvocationRecord:
        """Stop an invocation at once: its attempt is abandoned, it ends ``killed`` with a
        terminal failure (409) that its caller receives, and its key is freed."""

        async def change(rec: InvocationRecord, unit: CommitUnit) -> InvocationRecord:
            entries, completions = await self.store.get_journal(rec.id)
            done = {loads(c)["index"] for c in completions}
            unit.timers_remove.extend(
                TimerRecord(0, rec.id, "sleep", i, rec.partition)
                for i, e in enumerate(entries)
                if i not in done and loads(e)["kind"] == "sleep"
            )
            result = dumps({"failure": {"code": 409, "message": "killed by an operator"}})
            out = Outcome(unit=unit, record=rec)
            terminal(out, rec, result)
            return replace(rec, status="killed", result=result, waiting=(), next_at=None)

        new, unit = await self._operate(invocation_id, "kill", change)
        for cid, index, text in unit.completions:
            self._deliver(cid, index, text)
        self._finish(new)
        return new

    async def cancel(self, invocation_id: str) -> InvocationRecord:
        """Cancel gracefully: the handler's next await of a call, sleep or awakeable raises a
        terminal "cancelled" error (409), so its compensations run; pending callees are
        cancelled too, down the call tree. An invocation that never started (pending behind
        its key, or scheduled) ends at once with that failure."""
        rec = await self.store.get_invocation(invocation_id)
        if rec is None:
            raise EngineError(f"invocation {invocation_id} not found", 404)
        if rec.status in TERMINAL_STATUSES:
            raise EngineError(f"invocation {invocation_id} is already {rec.status}", 409)
        if rec.status in ("pending", "scheduled") and rec.journal_len == 1:

            async def change(r: InvocationRecord, unit: CommitUnit) -> InvocationRecord:
                out = Outcome(unit=unit, record=r)
                terminal(out, r, CANCELLED_RESULT)
                return replace(r, status="completed", result=CANCELLED_RESULT, next_at=None)

            new, unit = await self._operate(invocation_id, "cancel", change)
            for cid, index, text in unit.completions:
                self._deliver(cid, index, text)
            self._finish(new)
            return new
        signal = completion_text(CANCEL_INDEX, CANCELLED_RESULT)
        await self._commit(CommitUnit(completions=[(rec.id, CANCEL_INDEX, signal)]), None)
        entries, completions = await self.store.get_journal(rec.id)
        done = {loads(c)["index"] for c in completions}
        for i, text in enumerate(entries):
            entry = loads(text)
            if entry["kind"] == "call" and i not in done:
                with contextlib.suppress(EngineError):
                    await self.cancel(entry["id"])
        self._deliver(rec.id, CANCEL_INDEX, signal)
        log.info("cancel %s (was %s)", invocation_id, rec.status)
        return rec

    async def pause(self, invocation_id: str) -> InvocationRecord:
        """Stop driving an invocation until ``resume``; it keeps its key and its timers."""

        async def change(rec: InvocationRecord, unit: CommitUnit) -> InvocationRecord:
            if rec.status == "paused":
                raise EngineError(f"invocation {rec.id} is already paused", 409)
            return replace(rec, status="paused", next_at=None)

        new, _ = await self._operate(invocation_id, "pause", change)
        return new

    async def resume(self, invocation_id: str) -> InvocationRecord:
        """Resume a paused invocation with a fresh retry budget (attempt 1)."""

        async def change(rec: InvocationRecord, unit: CommitUnit) -> InvocationRecord:
            if rec.status != "paused":
                raise EngineError(f"invocation {rec.id} is {rec.status}, not paused", 409)
            return replace(rec, status="running", attempt=1, next_at=None, waiting=())

        new, _ = await self._operate(invocation_id, "resume", change)
        if self._may_run(new):
            self._spawn(new.id)
        return new

    async def _operate(
        self,
        invocation_id: str,
        action: str,
        change: Any,
    ) -> tuple[InvocationRecord, CommitUnit]:
        """Stop the invocation's driver, apply ``change`` to its record in one unit (also
        dropping its retry/start timers), and commit; retried if the record moved meanwhile."""
        self._stopping_drivers.add(invocation_id)
        self._queued.pop(invocation_id, None)  # it changes: a driver must read it again
        try:
            task = self._drivers.get(invocation_id)
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            self._suspended.pop(invocation_id, None)
            for _ in range(5):
                rec = await self.store.get_invocation(invocation_id)
                if rec is None:
                    raise EngineError(f"invocation {invocation_id} not found", 404)
                if rec.status in TERMINAL_STATUSES:
                    raise EngineError(f"invocation {invocation_id} is already {rec.status}", 409)
                unit = CommitUnit(
                    timers_remove=[
                        TimerRecord(0, rec.id, "retry"),
                        TimerRecord(0, rec.id, "start"),
                    ]
                )
                unit.timers_remove = [
                    replace(t, partition=rec.partition) for t in unit.timers_remove
                ]
                new = await change(rec, unit)
                new = replace(new, modified_at=self.clock.now_ms(), version=rec.version + 1)
                unit.invocations.insert(0, InvocationWrite(new, expect_version=rec.version))
                here = self._owns(rec.partition)
                if not here:  # its leader drops or resumes it when it reads its inbox
                    unit.notify.append((rec.partition, rec.id))
                try:
                    await self._commit(unit, rec.partition if here else None)
                except ConflictError:
                    continue  # a commit of the cancelled attempt landed meanwhile: read again
                log.info("%s %s (was %s)", action, invocation_id, rec.status)
                return new, unit
            raise EngineError(f"invocation {invocation_id} keeps changing; try again", 409)
        finally:
            self._stopping_drivers.discard(invocation_id)

    # ------------------------------------------------------------------ key queues

    @staticmethod
    def _exclusive_key(rec: InvocationRecord) -> tuple[str, str] | None:
        if rec.key is None or rec.handler_kind == "shared":
            return None
        return (rec.service, rec.key)

    def _queue_for(self, rec: InvocationRecord) -> deque[str]:
        k = self._exclusive_key(rec)
        assert k is not None
        q = self._queues.get(k)
        if q is None:
            q = self._queues[k] = deque()
            self._key_states.pop(k, None)  # its holder reads the state (or ``submit`` took it)
        return q

    def _admit(self, rec: InvocationRecord) -> str:
        """Place a new invocation in its key queue: 'running' if it may start now.

        Not before its partition is recovered here (a callee created there by an invocation of
        a partition recovered sooner): the key may have a holder the recovery has yet to read,
        so the newcomer is 'pending', and the recovery puts it behind what it reads and starts
        it if it comes first (``_recover``; found by the simulation, seed 8444)."""
        if self._exclusive_key(rec) is None:
            return "running"
        if rec.partition not in self._ready:
            if self.leadership.holds(rec.partition):  # led here, its recovery still to come
                self._queue_for(rec).append(rec.id)
            return "pending"  # led elsewhere: its leader admits it (the unit notifies it)
        q = self._queue_for(rec)
        q.append(rec.id)
        return "running" if q[0] == rec.id else "pending"

    def _may_run(self, rec: InvocationRecord) -> bool:
        """Whether ``rec`` may start: it holds its key (or has none), and the key's queue is
        complete (its partition recovered here)."""
        k = self._exclusive_key(rec)
        if k is None:
            return True
        if rec.partition not in self._ready:
            return False
        q = self._queues.get(k)
        return q is not None and len(q) > 0 and q[0] == rec.id

    def _unqueue(self, rec: InvocationRecord) -> None:
        """Take ``rec`` out of its key's queue; if it held the key, start the next one.

        The next one gets the run ``submit`` kept for it (``_queued``), so its driver need not
        read it back. When ``rec`` is the record a driver here just finished with (``_finish``
        from ``_after_commit``: the run's record is this very object), that run's state is the
        key's committed state (loaded, then changed only by its own committed units, and only
        an exclusive holder writes a key's state): the next holder starts with a copy of it
        instead of reading it from the store; when nobody is next, the copy is kept for the
        key's next holder (``_key_states``, while this process alone uses the store)."""
        k = self._exclusive_key(rec)
        q = self._queues.get(k) if k is not None else None
        self._queued.pop(rec.id, None)
        if k is None or q is None:
            return
        head = q[0] if q else None
        with contextlib.suppress(ValueError):
            q.remove(rec.id)
        done = self._runs.get(rec.id)
        # the key's state, if ``rec`` is a holder that just finished here (an object's key)
        state = None
        if done is not None and done.rec is rec and done.promises is None:
            state = done.state
        if not q:
            del self._queues[k]
            if (
                state is not None
                and head == rec.id
                and self._alone()
                and sum(len(v) for v in state.values()) <= KEY_STATE_MAX_CHARS
            ):
                if len(self._key_states) >= KEY_STATES_CACHED:
                    del self._key_states[next(iter(self._key_states))]  # the oldest
                self._key_states[k] = dict(state)
        elif head == rec.id:
            nxt = self._queued.pop(q[0], None)
            if nxt is not None and nxt.state is None and state is not None:
                nxt.state = dict(state)
            self._spawn(q[0], nxt)

    # ------------------------------------------------------------------ drivers

    def _spawn(
        self, inv_id: str, run: _Run | None = None, timer: TimerRecord | None = None
    ) -> bool:
        """Start a driver for ``inv_id`` unless one runs or may not start; whether it did."""
        if self._closing or inv_id in self._drivers or inv_id in self._stopping_drivers:
            return False
        if inv_id in self._creating:
            # Its key was freed while ``submit`` commits its creation: a driver started now
            # could read the store before that commit lands, find nothing and stop, and the
            # one ``submit`` starts after the commit would then be refused as a duplicate.
            return False
        self._suspended.pop(inv_id, None)
        task = asyncio.get_running_loop().create_task(self._drive(inv_id, run, timer))
        self._drivers[inv_id] = task
        return True

    def _deliver(self, inv_id: str, index: int, text: str) -> None:
        """A completion for entry ``index`` of ``inv_id`` was committed: hand it over."""
        run = self._runs.get(inv_id)
        if run is not None:
            run.completions.setdefault(index, text)  # first writer wins, as in the store
        self._wake(inv_id)

    def _wake(self, inv_id: str) -> None:
        """A completion for ``inv_id`` was committed: resume it if it waits on anything.

        A driver still loading (no run yet) may have read the journal before the completion
        landed: it is told to re-read completions before it may suspend (``_reload``)."""
        run = self._runs.get(inv_id)
        if run is not None:
            run.arrived = True
        elif inv_id in self._drivers:
            self._reload.add(inv_id)
        elif inv_id in self._suspended:
            self._spawn(inv_id)

    async def _load(self, inv_id: str) -> _Run | None:
        rec = await self.store.get_invocation(inv_id)
        if rec is None or rec.status in TERMINAL_STATUSES:
            return None
        entries, completion_texts = await self.store.get_journal(inv_id)
        return _run_from_journal(rec, entries, completion_texts)

    async def _drive(self, inv_id: str, run: _Run | None, timer: TimerRecord | None) -> None:
        """Drive ``inv_id`` until it suspends, backs off or ends. ``timer``: the retry or sleep
        timer that woke it, removed from the store with the driver's first unit. A sleep
        timer's completion is held in memory until then (``_Run.deferred``); should the driver
        stop before any unit carries it, the timer (still in the store) is armed again."""
        held = timer if timer is not None and timer.kind == "sleep" else None
        try:
            if run is None:
                run = await self._load(inv_id)
                if run is None:
                    if timer is not None:  # a retry or sleep timer outlived its invocation
                        # (driven early by another path, then finished, or killed): it still
                        # goes from the store
                        await self._commit(CommitUnit(timers_remove=[timer]), timer.partition)
                        held = None
                    return
            if not await self._leading(run.rec.partition):
                return
            if timer is not None:
                run.timer_removals.append(timer)
            if held is not None:
                if held.index not in run.completions:  # not completed by an earlier fire
                    run.completions[held.index] = completion_text(held.index, '{"value":null}')
                    run.deferred.append(held)
                held = None  # the run holds it now
            self._runs[inv_id] = run
            if inv_id in self._reload:
                self._reload.discard(inv_id)
                run.reload = True
            while await self._step(run):
                pass
        except asyncio.CancelledError:
            raise
        except FencedError:
            if run is not None and run.rec.partition in self._ready:
                # Still ours (a lapse, or a fence of another partition that went wrong
                # twice): nothing of this attempt was committed; drive it again.
                log.warning("driver of %s: commit fenced; driving it again", inv_id)
                self._retry_driver(inv_id, 0.05)
            else:
                log.warning("driver of %s stopped: its partition has another leader", inv_id)
        except StoreError as e:  # the store's own message says it all: no traceback
            log.error("driver of %s: %s; it will be re-driven", inv_id, e)
            self._retry_driver(inv_id)
        except Exception:
            log.exception("driver of %s failed; it will be re-driven", inv_id)
            self._retry_driver(inv_id)
        finally:
            if run is not None and run.live is not None:
                run.live.abort()
                run.live = None
            self._runs.pop(inv_id, None)
            self._drivers.pop(inv_id, None)
            self._reload.discard(inv_id)
            # Sleep timers whose removal no unit carried: still in the store, so back in the
            # heap (they are due: they fire again at once, completing the sleep by a commit).
            left = [t for t in run.timer_removals if t.kind == "sleep"] if run is not None else []
            if held is not None:
                left.append(held)
            if left:
                self._rearm(left)

    def _retry_driver(self, inv_id: str, delay_s: float = 1.0) -> None:
        if not self._closing:
            asyncio.get_running_loop().call_later(delay_s, self._spawn, inv_id)

    async def _step(self, run: _Run) -> bool:
        """One attempt (or continuation) of ``run``; True to go on at once."""
        rec = run.rec
        if rec.status in TERMINAL_STATUSES:
            return False
        svc = self.registry.service(rec.service)
        service_kind = svc[0].kind if svc else "service"
        workflow = service_kind == "workflow" and rec.key is not None
        if workflow:  # shared handlers write promises beside the run: always read fresh
            run.state, run.promises = split_state(
                await self.store.get_state(rec.service, rec.key or "")
            )
        elif rec.key is not None and run.state is None:
            run.state = await self.store.get_state(rec.service, rec.key)
        run.arrived = False
        if run.reload:
            run.reload = False
            _, completions = await self.store.get_journal(rec.id)
            for text in completions:
                run.completions.setdefault(loads(text)["index"], text)
        p = rec.partition
        if not self._owns(p) and not await self._leading(p):
            return False  # another process leads its partition now
        self.counters["attempts"] += 1
        answer = await self._attempt(run, stream=not workflow)
        if crashpoints.ARMED:
            crashpoints.reach("after-invoke")
        if not workflow:
            return await self._settle(run, answer, service_kind, None)
        async with self._key_lock(rec.service, rec.key or ""):
            # Promises and their waiters are read and written under the key's lock, so a
            # resolution and a registration of a waiter can never miss each other.
            rows = await self.store.get_state(rec.service, rec.key or "")
            return await self._settle(run, answer, service_kind, rows)

    @contextlib.asynccontextmanager
    async def _key_lock(self, service: str, key: str) -> AsyncIterator[None]:
        """One holder at a time per workflow key. A lock is dropped only when nobody holds
        or awaits it (a lock released with a waiter still queued must stay the key's lock,
        or a newcomer would make a second one and both would run)."""
        k = (service, key)
        entry = self._locks.get(k)
        if entry is None:
            entry = self._locks[k] = (asyncio.Lock(), [0])
        lock, users = entry
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if users[0] == 0:
                del self._locks[k]

    async def _settle(
        self,
        run: _Run,
        answer: InvokeResponse | str,
        service_kind: str,
        workflow_rows: dict[str, str] | None,
    ) -> bool:
        """Turn the attempt's answer into one commit unit, commit it, perform its effects."""
        rec = run.rec
        outcome: Outcome
        if isinstance(answer, str):
            outcome = failed_attempt(
                record=rec,
                message=answer,
                now_ms=self.clock.now_ms(),
                retry=self._policy(rec),
                extra_timer_removals=run.timer_removals,
            )
        else:
            awakeables: dict[str, tuple[str, int]] = {}
            workflows: set[tuple[str, str]] = set()
            kinds = {entry.get("kind") for entry in answer.entries}
            if "complete_awakeable" in kinds:
                awakeables = await self._check_awakeables(run, answer)
            if "call" in kinds or "send" in kinds:
                workflows = await self._started_workflows(answer)
            try:
                outcome = apply_answer(
                    record=rec,
                    answer=answer,
                    journal_len=len(run.entries),
                    waitable=run.waitable,
                    service_kind=service_kind,
                    registry=self.registry,
                    now_ms=self.clock.now_ms(),
                    next_seq=self.next_seq,
                    admit=self._admit,
                    # read by an error answer only: not looked up for every step
                    retry=self._policy(rec) if answer.status == "error" else self.retry,
                    extra_timer_removals=run.timer_removals,
                    awakeables=awakeables,
                    workflow_rows=workflow_rows,
                    started_workflows=workflows,
                    partition_of=self._partition,
                    retention_ms=int(self.retention_s * 1000),
                )
            except AnswerError as exc:
                outcome = failed_attempt(
                    record=rec,
                    message=f"protocol: {exc}",
                    now_ms=self.clock.now_ms(),
                    retry=self._policy(rec),
                    extra_timer_removals=run.timer_removals,
                )
        if run.deferred:  # sleeps completed in memory when their timers fired: now durable
            outcome.unit.completions.extend(
                (rec.id, t.index, run.completions[t.index]) for t in run.deferred
            )
        if outcome.record.status in TERMINAL_STATUSES:
            self._drop_open_sleeps(run, outcome)
        # Callees queued behind their key: were the key freed while this commit is in flight,
        # the queue must not start them before they exist (a driver would read nothing and
        # stop); _after_commit starts them once they do (as submit does for its own).
        creating = [callee.id for callee in outcome.created]
        self._creating.update(creating)
        try:
            await self._commit(outcome.unit, rec.partition)
        except (ConflictError, StoreError):
            for callee in outcome.created:
                self._unqueue(callee)
            raise
        finally:
            self._creating.difference_update(creating)
        run.timer_removals = []
        run.deferred = []
        return self._after_commit(run, outcome)

    @staticmethod
    def _drop_open_sleeps(run: _Run, outcome: Outcome) -> None:
        """An invocation that finishes while a sleep is still pending (it lost a ``select``
        to an awakeable, say) takes that sleep's timer with it, in the same unit."""
        entries = run.entries + outcome.new_entries
        done = set(run.completions) | {i for c, i, _ in outcome.unit.completions if c == run.rec.id}
        for index in sorted(run.waitable.union(outcome.waitable)):
            if index not in done and loads(entries[index]).get("kind") == "sleep":
                outcome.unit.timers_remove.append(
                    TimerRecord(0, run.rec.id, "sleep", index, run.rec.partition)
                )

    async def _started_workflows(self, answer: InvokeResponse) -> set[tuple[str, str]]:
        """The (workflow, id) pairs this answer calls or sends to whose run already exists:
        a workflow runs once per id."""
        found: set[tuple[str, str]] = set()
        for entry in answer.entries:
            if entry.get("kind") not in ("call", "send") or not isinstance(entry.get("key"), str):
                continue
            service, _, handler = str(entry.get("name")).partition("/")
            target = self.registry.resolve(service, handler)
            if target is None or target.handler.kind != "workflow":
                continue
            key = str(entry.get("key"))
            if await self.store.find_idempotent(service, handler, key, WORKFLOW_RUN) is not None:
                found.add((service, key))
        return found

    def _policy(self, rec: InvocationRecord) -> RetryPolicy:
        info = self.registry.handler_info(rec.deployment_id, rec.service, rec.handler)
        if info is None or info.retry is None:
            return self.retry
        return info.retry.merged_over(self.retry)

    async def _attempt(self, run: _Run, *, stream: bool) -> InvokeResponse | str:
        """Invoke the endpoint; the answer, or a string saying why the attempt failed.

        A streamed attempt left open by a committed checkpoint goes on (acknowledged) when no
        completion arrived since and no request waits for a connection to the endpoint;
        otherwise it is finished and a new request is sent. With
        ``stream`` (not a workflow: its promises change beside it) an endpoint that offers
        streaming gets a streamed request, left open in ``run.live`` when it answers a
        checkpoint — if the handler is known to checkpoint (``_stepwise``): for a handler that
        answers at once a stream costs more than a plain request (more writes both ways).
        """
        rec = run.rec
        target = (rec.deployment_id, rec.service, rec.handler)
        live, run.live = run.live, None
        invoker = self.registry.invokers.get(rec.deployment_id)
        if live is not None and (
            len(run.completions) != run.live_seen or invoker is None or invoker.contended
        ):
            # Its request lacks what arrived, or others wait for a connection (a stream holds
            # one across steps): end it; a fresh request queues fairly for a connection.
            live.finish()
            live = None
        if invoker is None:
            return f"deployment {rec.deployment_id} is not registered"
        run.cancel_sent = CANCEL_INDEX in run.completions
        timeout = self.attempt_timeout_s
        try:
            # Each answer is due within ``timeout`` of its request: a stream bounds its line
            # waits with one timer of its own (an ``asyncio.timeout`` per step cost ~4% of the
            # loop's time), the rest with a cancellation-safe ``asyncio.timeout``.
            if live is not None:
                live.ack()
                raw = await live.next(timeout)
            elif stream and invoker.streams and self._stepwise.get(target):
                loop = asyncio.get_running_loop()
                due = loop.time() + timeout
                async with asyncio.timeout_at(due):
                    live = await invoker.open_stream(
                        rec.service, rec.handler, self._request_body(run)
                    )
                raw = await live.next(max(0.0, due - loop.time()))
            else:
                async with asyncio.timeout(timeout):  # cancellation-safe, unlike wait_for
                    raw = await invoker.invoke(rec.service, rec.handler, self._request_body(run))
        except BaseException as exc:
            if live is not None:
                live.abort()
            if isinstance(exc, TimeoutError):
                return f"transport: attempt timed out after {timeout:g} s"
            if isinstance(exc, InvokerError):
                return f"transport: {exc}"
            raise
        answer = self._decode_answer(raw)
        checkpoint = isinstance(answer, InvokeResponse) and answer.status == "checkpoint"
        if checkpoint and not self._stepwise.get(target):
            if len(self._stepwise) >= 4096:
                self._stepwise.clear()
            self._stepwise[target] = True
        if live is not None:
            if checkpoint:
                run.live, run.live_seen = live, len(run.completions)
            elif isinstance(answer, InvokeResponse):
                live.finish()
            else:
                live.abort()
        return answer

    @staticmethod
    def _request_body(run: _Run) -> bytes:
        """The InvokeRequest for ``run`` as it stands (built as text: entries stay as stored)."""
        rec = run.rec
        promises = ""
        if run.promises is not None:
            promises = (
                ',"promises":{'
                + ",".join(dumps(k) + ":" + v for k, v in run.promises.items())
                + "}"
            )
        state = "null"
        if run.state is not None:
            state = "{" + ",".join(dumps(k) + ":" + v for k, v in run.state.items()) + "}"
        return "".join(
            (
                '{"version":1,"type":"invoke","id":',
                dumps(rec.id),
                ',"service":',
                dumps(rec.service),
                ',"handler":',
                dumps(rec.handler),
                ',"key":',
                dumps(rec.key),
                ',"attempt":',
                str(rec.attempt),
                ',"journal":[',
                ",".join(run.entries),
                '],"completions":[',
                ",".join(run.completions[i] for i in sorted(run.completions)),
                '],"state":',
                state,
                promises,
                "}",
            )
        ).encode()

    @staticmethod
    def _decode_answer(raw: bytes) -> InvokeResponse | str:
        try:
            message = loads(raw)
        except ValueError as exc:
            return f"protocol: malformed answer: not JSON: {exc}"
        if not isinstance(message, dict):  # a list, a number, null: not a message at all
            return f"protocol: malformed answer: not a JSON object but {type(message).__name__}"
        try:
            check_int64(raw)  # orjson would have read it as a float: refuse, do not store
        except IntegerRangeError as exc:
            return f"protocol: malformed answer: {exc}"
        try:
            return InvokeResponse.decode(message)
        except (ProtocolError, ValueError, TypeError) as exc:
            return f"protocol: malformed answer: {exc}"

    def _after_commit(self, run: _Run, outcome: Outcome) -> bool:
        rec = outcome.record
        run.rec = rec
        run.entries.extend(outcome.new_entries)
        run.waitable.update(outcome.waitable)
        if run.state is not None:
            for name, value in outcome.state:
                if name is None:
                    run.state.clear()
                elif value is None:
                    run.state.pop(name, None)
                else:
                    run.state[name] = value
        for timer in outcome.unit.timers_remove:
            self._timers.discard(timer)
        for timer in outcome.unit.timers_add:
            self._timers.add(timer)
        for cid, index, text in outcome.unit.completions:
            if cid == rec.id:
                run.completions[index] = text
        for callee in outcome.created:
            if callee.status == "running":
                self._spawn(
                    callee.id, _Run(callee, [self._input_of(outcome, callee.id)], {}, set())
                )
            elif callee.status == "pending" and self._may_run(callee):
                self._spawn(callee.id)  # its key was freed while the commit was in flight
        for cid, index, text in outcome.unit.completions:
            if cid != rec.id:  # a caller's call entry, or another invocation's awakeable
                self._deliver(cid, index, text)
        if rec.status in TERMINAL_STATUSES:
            self._finish(rec)
            return False
        if rec.status == "running":  # checkpoint
            return True
        if rec.status == "suspended":
            if run.reload or any(i in run.completions for i in rec.waiting):
                return True
            if CANCEL_INDEX in run.completions and not run.cancel_sent:
                return True  # cancelled while this attempt was in flight
            self._suspended[rec.id] = (rec.waiting, rec.partition)
            return False
        return False  # backing-off: the retry timer re-spawns it; paused: an operator resumes

    @staticmethod
    def _input_of(outcome: Outcome, inv_id: str) -> str:
        for cid, index, text in outcome.unit.entries:
            if cid == inv_id and index == 0:
                return text
        raise AssertionError("callee without input entry")

    def _finish(self, rec: InvocationRecord) -> None:
        """Effects of a committed completion: answer waiters, free the key."""
        for fut in self._waiters.pop(rec.id, []):
            if not fut.done():
                fut.set_result(rec.result or "{}")
        self._unqueue(rec)

    # ------------------------------------------------------------------ timers

    async def _fire_timers(self, due: list[TimerRecord]) -> None:
        """Fire due timers: a sleep completes its entry; retry/start spawn the driver.

        A sleep whose invocation is suspended here on it wakes its invocation at once, the
        completion held by the new driver and committed with its attempt's answer (``_drive``)
        rather than first on its own: a sleep is complete once its timer is due, so nothing
        needs to be durable before the attempt. Until that unit lands the timer stays in the
        store, so a crash fires it again (the completion is first-writer-wins and the timer's
        removal idempotent: firing twice is harmless). Any other sleep (its invocation running,
        loading, or not known here) is completed by a commit first, then delivered."""
        later = [t for t in due if t.partition in self._ready and not self._owns(t.partition)]
        if later:  # our lease's validity lapsed, a renewal in flight: try again soon
            # Not at once: they are due, so the timer loop would take them again without
            # ever yielding, and the renewal's verdict could never come in (a livelock that
            # froze a whole orchestrator in the scale-out test).
            asyncio.get_running_loop().call_later(0.05, self._rearm, later)
        # timers of partitions we lost are dropped here: their new leader loaded them
        due = [t for t in due if self._owns(t.partition)]
        sleeps: dict[int, list[TimerRecord]] = {}
        for t in due:
            if t.kind != "sleep":
                continue
            waiting = self._suspended.get(t.invocation_id)
            if (
                waiting is not None
                and t.index in waiting[0]
                and self._spawn(t.invocation_id, None, t)
            ):
                self._timers.woke(t.fire_at, t.invocation_id)
            else:
                sleeps.setdefault(t.partition, []).append(t)
        if len(sleeps) == 1:
            await self._fire_sleeps(*sleeps.popitem())
        elif sleeps:  # one unit per partition, committed side by side (one group commit)
            await asyncio.gather(*(self._fire_sleeps(p, ts) for p, ts in sorted(sleeps.items())))
        for t in due:
            if t.kind == "retry":
                self._spawn(t.invocation_id, None, t)
                self._timers.woke(t.fire_at, t.invocation_id)
            elif t.kind == "start":
                await self._start_scheduled(t)

    async def _fire_sleeps(self, partition: int, sleeps: list[TimerRecord]) -> None:
        """Complete the sleeps of one partition in one unit (removing their timers), then wake
        their invocations. A fenced unit keeps its timers while the partition is ours; a unit
        the store failed is armed again after a second."""
        unit = CommitUnit(
            completions=[
                (t.invocation_id, t.index, completion_text(t.index, '{"value":null}'))
                for t in sleeps
            ],
            timers_remove=sleeps,
        )
        try:
            await self._commit(unit, partition)
        except FencedError:
            if partition in self._ready:  # a lapse, not a loss: keep them for the next round
                for t in sleeps:
                    self._timers.add(t)
            return  # lost: the new leader loaded these timers
        except StoreError:
            log.exception("firing %d sleep timers failed; retrying in 1 s", len(sleeps))
            asyncio.get_running_loop().call_later(1.0, self._rearm, sleeps)
            return
        for t, (inv_id, index, text) in zip(sleeps, unit.completions, strict=True):
            self._deliver(inv_id, index, text)
            self._timers.woke(t.fire_at, inv_id)

    def _handed_over(self, inv_id: str) -> bool:
        """Whether an invocation a timer woke got through its first attempt since (its record
        moved on from suspended or backing-off), or nothing here drives it (``_timers``)."""
        run = self._runs.get(inv_id)
        if run is None:
            return inv_id not in self._drivers  # a driver without a run is still loading
        return run.rec.status not in ("suspended", "backing-off")

    def _rearm(self, timers: list[TimerRecord]) -> None:
        """Put back timers set aside during a lease lapse, unless the partition was lost
        meanwhile (its new leader loaded them)."""
        for t in timers:
            if t.partition in self._ready:
                self._timers.add(t)

    async def _start_scheduled(self, timer: TimerRecord) -> None:
        rec = await self.store.get_invocation(timer.invocation_id)
        if rec is None or rec.status != "scheduled":
            await self._commit(CommitUnit(timers_remove=[timer]), timer.partition)
            return
        status = self._admit(rec)
        new = replace(rec, status=status, next_at=None, version=rec.version + 1)
        unit = CommitUnit(
            invocations=[InvocationWrite(new, expect_version=rec.version)], timers_remove=[timer]
        )
        try:
            await self._commit(unit, rec.partition)
        except ConflictError:
            # The record moved while the commit was in flight: admitted to its key's queue
            # above, it was started by the holder's finish meanwhile (found by the simulation,
            # seed 8517). It is driven, so it must keep its place in the queue; only the
            # timer is left to remove.
            now = await self.store.get_invocation(rec.id)
            if now is not None and now.status == "scheduled":
                if rec.id not in self._drivers:
                    self._unqueue(rec)
                raise
            await self._commit(CommitUnit(timers_remove=[timer]), timer.partition)
            return
        except BaseException:
            if rec.id not in self._drivers:  # never pull a running invocation off its key
                self._unqueue(rec)
            raise
        if status == "running":
            self._spawn(rec.id)
