"""``Engine``: one orchestrator process — the core and the runtime around it, on one event loop.

The engine feeds events to the core (``apply``) and performs the decisions that come back
(``perform`` for effects that take no time, ``run_effects`` where a flow awaits them): drivers
(``_driver``), commits (``_committer``), recovery and inboxes (``_recovery``), the alarm clock
(``_timers``), leases (``_leadership``), operators (``_operator``), deployments
(``_deployments``), waiting clients (``_waiters``), due timers and retention (``_alarms``), the
watchdog (``_watchdog``). It decides nothing about invocations itself: every decision is the
core's.

Invariants:

* The store is the truth; memory is rebuilt from it as partitions are recovered, and
  recovering twice is harmless.
* Effects are performed only after the commit that justifies them (the core releases them
  with ``Committed``), and in the order the core lists them.
* Only the leader of an invocation's partition drives it (``Leadership.leads``), and every unit
  it commits as leader is fenced by the partition's epoch (``Committer``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from ritornello.protocol import RetryPolicy, ServiceInfo, Settings, new_id
from ritornello.store import (
    FINAL_STATUSES,
    ConflictError,
    DeploymentRecord,
    FencedError,
    InvocationRecord,
    Status,
    Store,
    TimerRecord,
)

from .._clock import Clock, SystemClock
from .._json import dumps
from .._limit_spec import LimitSpec
from .._tracing import Tracing
from ..core import (
    DEBOUNCE_PREFIX,
    WORKFLOW_RUN,
    Arm,
    Booted,
    CheckAttach,
    CheckSuspended,
    Closing,
    Core,
    Decision,
    Disarm,
    Drive,
    DropTimers,
    Effect,
    Event,
    FireSleeps,
    Halt,
    LimitTurn,
    PartitionDraining,
    ReadLimits,
    ReadPermits,
    Rearm,
    Redrive,
    RedriveDue,
    Registry,
    Reply,
    StartDue,
    StartRecheck,
    Submit,
    Target,
    TimersBack,
    Woke,
    limit_partition,
)
from ..errors import NotFoundError, TryAgainError
from ..invokers import MAX_ANSWER_BYTES, MAX_DISCOVERY_BYTES, HostPolicy
from ..schedules import Scheduler
from ._alarms import Alarms
from ._committer import Committer
from ._deployments import Deployments
from ._driver import Drivers
from ._leadership import Leadership
from ._limits import Limits
from ._metrics import CommitTimings, Gauges
from ._operator import Operations
from ._recovery import Recovery
from ._restart import DryRun, Restarts
from ._service_settings import parse_patch, patch_service
from ._timers import TimerQueue
from ._waiters import Waiters
from ._watchdog import Watchdog

log = logging.getLogger("ritornello.engine")


class Engine:
    """An orchestrator process (see the module docstring)."""

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
        drain_s: float = 10.0,
        lead: bool = True,
        address: str = "",
        inbox_interval_s: float = 0.2,
        watchdog_interval_s: float = 30.0,
        schedule_interval_s: float = 1.0,
        signing_secret: str = "",
        deployment_hosts: HostPolicy | None = None,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
        max_discovery_bytes: int = MAX_DISCOVERY_BYTES,
        limits: Mapping[str, LimitSpec] | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self.store = store
        #: Traces (docs/tracing.md; ``_tracing.tracing_from_env``); None: off.
        self.tracing = tracing
        self.clock: Clock = clock or SystemClock()
        #: How long a finished invocation (its result, journal, idempotency key, and for a
        #: workflow its state and promises) is kept before it is purged.
        self.retention_s = retention_s
        self.attempt_timeout_s = attempt_timeout_s
        #: This process's name among orchestrators sharing the store.
        self.node = node or "node_" + secrets.token_hex(6)
        self.registry = Registry()
        self.core = Core(self.registry, retry=retry, retention_ms=int(retention_s * 1000))
        #: Events worth a metric: attempts, partitions recovered, inbox reconciliations,
        #: fenced commits, stuck invocations, schedule fires, checkpoint channels' runs and
        #: checkpoints (``invokers._channel``, ``ingress._channel``).
        self.counters: Counter[str] = Counter()
        #: Latency of ``store.commit`` (``_metrics.py``; GET /metrics).
        self.commit_timings = CommitTimings()
        self.leadership = Leadership(
            store,
            self.node,
            lease_s=lease_s,
            address=address,
            exclusive=store.exclusive,
            lead=lead,
            ready=self.core.ready,
            clock=self.clock,
        )
        self.committer = Committer(
            store,
            self.leadership,
            known_partition=self.core.partition_known,
            limit_partition=lambda name: limit_partition(name, self.core.partitions),
            counters=self.counters,
            timings=self.commit_timings,
            apply=self.apply,
            perform=self.perform,
        )
        #: Named limits (docs/limits.md): grant turns, reads, definitions.
        self.limits = Limits(
            self.core,
            store,
            self.committer,
            apply=self.apply,
            perform=self.perform,
            configured=limits,
            declared=self.registry.declared_limits,
            now_ms=self.clock.now_ms,
        )
        self.deployments = Deployments(
            store,
            self.registry,
            clock=self.clock,
            inprocess=inprocess if inprocess is not None else {},
            attempt_timeout_s=attempt_timeout_s,
            signing_secret=signing_secret,
            hosts=deployment_hosts if deployment_hosts is not None else HostPolicy(),
            max_answer_bytes=max_answer_bytes,
            max_discovery_bytes=max_discovery_bytes,
            check=self.limits.check,
            counters=self.counters,
        )
        self.drivers = Drivers(
            self.core,
            store,
            self.committer,
            self.leadership,
            clock=self.clock,
            endpoint=self.deployments.endpoint,
            perform=self.perform,
            attempt_timeout_s=attempt_timeout_s,
            counters=self.counters,
            missing=self.deployments.missing,
            tracing=tracing,
        )
        self.timers = TimerQueue(self.clock, self._fire_timers, self.core.handed_over)
        self.alarms = Alarms(
            self.core,
            store,
            self.committer,
            self.leadership,
            clock=self.clock,
            apply=self.apply,
            perform=self.perform,
            run_effects=self.run_effects,
            later=self._later,
            retention_s=retention_s,
        )
        self.recovery = Recovery(
            self.core,
            store,
            self.leadership,
            apply=self.apply,
            run_effects=self.run_effects,
            perform=self.perform,
            refresh_deployments=self.refresh_deployments,
            counters=self.counters,
            inbox_interval_s=inbox_interval_s,
            limits=self.limits,
        )
        #: How long a hand-over waits for the attempts in flight on a partition (``drain``).
        self.drain_s = drain_s
        self.leadership.on_drain = self.drain
        self.leadership.on_claim = self.recovery.claimed
        self.leadership.on_gain = self.recovery.recover
        self.leadership.on_lose = self.recovery.lost
        self.operations = Operations(
            self.core,
            store,
            self.committer,
            self.leadership,
            self.drivers,
            apply=self.apply,
            perform=self.perform,
        )
        # an AWS callback times out through the path every awakeable completion takes
        self.deployments.aws_durable.complete_awakeable = self.operations.complete_awakeable
        self.restarts = Restarts(
            self.core,
            store,
            self.committer,
            self.leadership,
            self.deployments,
            apply=self.apply,
            timeout_s=attempt_timeout_s,
        )
        #: How often the stuck-invocation watchdog looks (``_watchdog.py``); 0: never.
        self.watchdog_interval_s = watchdog_interval_s
        self.watchdog = Watchdog(
            self.core,
            store,
            self.leadership,
            self.timers,
            clock=self.clock,
            reconcile=self.recovery.reconcile,
            counters=self.counters,
        )
        self.waiters = Waiters()
        #: Cron schedules (``schedules``): polled every ``schedule_interval_s``; 0: never.
        self.schedules = Scheduler(self, interval_s=schedule_interval_s)
        self._loops: list[asyncio.Task[None]] = []  # inbox, sweeper, watchdog
        self._effects: set[asyncio.Task[None]] = set()  # effects performed in the background
        self._later_pending = 0  # events ``_later`` holds back for a while (``idle``)
        self._closing = False

    # ------------------------------------------------------------------ core

    def apply(self, event: Event) -> Decision:
        """Feed one event to the core, now."""
        return self.core.apply(event, self.clock.now_ms())

    def perform(self, effects: Sequence[Effect]) -> None:
        """Perform effects in order; those that need I/O run in the background."""
        for e in effects:
            if isinstance(e, Drive):
                self.drivers.start(e.invocation_id)
            elif isinstance(e, Reply):
                self.waiters.reply(e.invocation_id, e.result)
            elif isinstance(e, Arm):
                self.timers.add(e.timer)
            elif isinstance(e, Disarm):
                self.timers.discard(e.timer)
            elif isinstance(e, Woke):
                self.timers.woke(e.fire_at, e.invocation_id)
            elif isinstance(e, Halt):
                self.drivers.halt(e.invocation_id)
            elif isinstance(e, DropTimers):
                self.timers.drop_partition(e.partition)
            elif isinstance(e, Rearm):
                self._later(e.delay_s, TimersBack(e.timers))
            elif isinstance(e, Redrive):
                self._later(e.delay_s, RedriveDue(e.invocation_id))
            elif isinstance(e, LimitTurn):
                self.limits.turn(e.delay_ms)
            elif isinstance(e, ReadPermits):
                self.limits.read_permits(e.limit, e.read_from)
            elif isinstance(e, ReadLimits):
                self.limits.read_limits()
            else:  # reads and commits (FireSleeps, StartDue, ...): in the background
                task = asyncio.get_running_loop().create_task(self.run_effects([e]))
                self._effects.add(task)
                task.add_done_callback(self._effects.discard)

    async def run_effects(self, effects: Sequence[Effect]) -> None:
        """Perform effects in order, awaiting those that need I/O (sleeps of several
        partitions fired side by side: one group commit)."""
        sleeps: list[FireSleeps] = []
        for e in effects:
            if isinstance(e, FireSleeps):
                sleeps.append(e)
                continue
            if sleeps:
                await self.alarms.fire_sleeps(sleeps)
                sleeps = []
            if isinstance(e, StartDue):
                await self.alarms.start_due(e.timer, recheck=False)
            elif isinstance(e, StartRecheck):
                await self.alarms.start_due(e.timer, recheck=True)
            elif isinstance(e, CheckAttach):
                await self.alarms.check_attach(e.timer)
            elif isinstance(e, CheckSuspended):
                await self.recovery.wake_if_completed(e.invocation_ids)
            else:
                self.perform([e])
        if sleeps:
            await self.alarms.fire_sleeps(sleeps)

    async def _fire_timers(self, due: list[TimerRecord]) -> None:
        await self.alarms.fire(due)  # (the alarm clock is made before the alarms it calls)

    def _later(self, delay_s: float, event: Event) -> None:
        def due() -> None:
            self._later_pending -= 1
            if not self._closing:
                self.perform(self.apply(event).effects)

        self._later_pending += 1
        asyncio.get_running_loop().call_later(delay_s, due)

    def idle(self) -> bool:
        """Whether this process has nothing left to do until time passes on its clock or
        something arrives from outside: no driver runs (no attempt in flight, no commit of
        one), no effect is being performed, no timer is due or being fired, no grant turn or
        limit read is under way, and no event is held back for a retry after a failure
        (``_later``: those wait real seconds). Every invocation is then completed, or
        suspended on what only time or the outside world can complete, or waiting for a
        timer in the future. Synchronous, no I/O: what memory says now.

        For tests on a manual clock (``ritornello.testing``): move the clock, then wait until
        this is true again. A rate limit's turn waiting for its time does not count (it
        waits on the real clock, like the alarm that re-checks a lapsed lease)."""
        if self.drivers.tasks or self._effects or self._later_pending or self.limits.busy:
            return False
        if self.timers.firing:
            return False
        due = self.timers.next_fire_at()
        return due is None or due > self.clock.now_ms()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Load deployments, then take part in leadership: every partition this process comes
        to lead is recovered before it is driven."""
        await self.refresh_deployments()
        store = self.store
        self.apply(Booted(await store.max_seq(), store.partitions, store.exclusive))
        await self.limits.refresh()
        self.timers.start()
        loop = asyncio.get_running_loop()
        self._loops.append(loop.create_task(self.alarms.sweep_forever()))
        await self.leadership.start()
        self._loops.append(loop.create_task(self.recovery.inbox_forever()))
        self.schedules.start()
        if self.watchdog_interval_s > 0:
            self._loops.append(loop.create_task(self.watchdog.watch(self.watchdog_interval_s)))
        log.info(
            "engine %s started: leading %d of %d partitions",
            self.node,
            len(self.leadership.owned()),
            self.leadership.count,
        )

    async def stop(self) -> None:
        """Stop: take no new work, let the attempts in flight answer and commit (at most
        ``drain_s``), then stop driving and release the leases, so successors take over at
        once and re-run nothing that had run. What had not committed by then stays running in
        the store and is re-driven by the next leader; nothing is lost, because nothing is
        acknowledged before its commit. Clients still waiting here for a result (``/call``,
        ``/attach``) then get it from the store as the successors finish, within what is left
        of ``drain_s``; after that (or at once, on a store no other process uses) they are
        answered 503 with the invocation's id, to attach again."""
        if self._closing:
            return
        self._closing = True
        began = asyncio.get_running_loop().time()
        self.apply(Closing())
        await self.timers.stop()
        await self.schedules.stop()
        await self.limits.close()
        owned = self.leadership.owned()
        if not self.store.exclusive:  # (a store used alone has nobody to hand over to)
            for partition in owned:
                log.info(
                    "partition %d: handing over (stopping)",
                    partition,
                    extra={"partition": partition},
                )
        await asyncio.gather(*(self.drain(p) for p in owned))
        background = [*self._loops, *self._effects]
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        await self.drivers.stop()
        await self.leadership.stop()  # successors need not wait for our leases to expire
        if not self.store.exclusive:
            left = began + self.drain_s - asyncio.get_running_loop().time()
            still = await self.waiters.settle(max(0.0, left))
            if still:
                log.info("%d clients still waiting for results: told to attach again", still)
        self.waiters.shut_down()
        await self.deployments.close()

    async def drain(self, partition: int) -> bool:
        """Hand a partition over gracefully: no attempt starts on it from now on, and the ones
        in flight answer and commit; True once none is left, False if ``drain_s`` passed first
        (the hand-over then goes on as a loss: what had not committed runs again on the next
        leader). Its lease is still held meanwhile (renewed), so what commits is fenced by it.

        Timeline::

            PartitionDraining ── attempts in flight answer, commit ── last driver ends
                                                   └── drain_s passes ── (a loss)
            ──▶ PartitionLost (memory forgotten) ──▶ lease released ──▶ next leader claims"""
        self.perform(self.apply(PartitionDraining(partition)).effects)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.drain_s
        while True:
            self.drivers.ended.clear()
            left = self.core.drivers_in(partition)
            if not left:
                return True
            remaining = deadline - loop.time()
            if remaining <= 0:
                log.warning(
                    "partition %d: %d attempts still in flight after %g s; handing it over anyway",
                    partition,
                    left,
                    self.drain_s,
                    extra={"partition": partition},
                )
                return False
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self.drivers.ended.wait()

    def abandon(self) -> list[asyncio.Task[Any]]:
        """Stop acting at once, as a kill -9 would, and return every task of this engine for
        the caller to cancel (a simulation's crash): nothing is flushed or released."""
        self._closing = True
        self.apply(Closing())
        return [
            *self.leadership.abandon(),
            *self._loops,
            *self._effects,
            *self.timers.abandon(),
            *self.drivers.tasks.values(),
            *self.schedules.abandon(),
        ]

    # ------------------------------------------------------------------ what it leads

    def leads(self, partition: int) -> bool:
        """True while this process leads ``partition`` (holds its lease, has recovered it)."""
        return self.leadership.leads(partition)

    def partition_of(self, service: str, key: str | None, invocation_id: str) -> int:
        return self.core.partition_of(service, key, invocation_id)

    def leads_any(self) -> bool:
        """Whether this process leads any partition at all."""
        return bool(self.leadership.owned())

    def gauges(self) -> Gauges:
        """What memory holds now (no I/O)."""
        g = self.core.gauges()
        return Gauges(
            running=g["running"],
            suspended=g["suspended"],
            queue_depth=g["queue_depth"],
            keys_held=g["keys_held"],
            timers=len(self.timers),
            partitions_led=len(self.leadership.owned()),
            channel_runs=len(self.deployments.lambda_channels),
        )

    # ------------------------------------------------------------------ deployments

    async def refresh_deployments(self) -> None:
        """Load deployments registered (or removed) through any orchestrator sharing the
        store. Runs at start and every few seconds."""
        await self.deployments.refresh()

    async def register_deployment(
        self,
        uri: str,
        *,
        assume_role_arn: str | None = None,
        use_http_11: bool = False,
        limit: str | None = None,
    ) -> DeploymentRecord:
        """Discover what ``uri`` serves and register it (re-registering a URI refreshes it).
        ``use_http_11``: a Restate SDK endpoint is never reached over HTTP/2. ``limit``: the
        limit of every handler that names none (nor its service): docs/limits.md."""
        record = await self.deployments.register(
            uri, assume_role_arn=assume_role_arn, use_http_11=use_http_11, limit=limit
        )
        await self.limits.refresh()  # the limits its code defines
        return record

    async def register_durable_function(
        self, arn: str, service: str, execution_timeout_s: Any = None
    ) -> DeploymentRecord:
        """Register an AWS Lambda durable function (qualified ARN) as service ``service`` with
        one handler, ``run`` (docs/aws-durable.md); ``execution_timeout_s``: its executions'
        timeout (None: none; InvalidRequestError unless an integer from 1 to 31,622,400)."""
        return await self.deployments.register_durable_function(arn, service, execution_timeout_s)

    async def patch_service(self, service: str, body: Any) -> Settings:
        """Apply ``PATCH /services/{service}`` (Restate's fields, ``_service_settings``): the
        service's overrides after it. InvalidRequestError for a bad body, NotFoundError for a
        service no deployment serves."""
        changes = parse_patch(body)
        if await self.find_service(service) is None:
            raise NotFoundError(f"service {service} not found")
        return await patch_service(self.store, self.registry, self.clock, service, changes)

    async def delete_deployment(self, deployment_id: str) -> bool:
        """Forget a deployment (invocations pinned to it fail their attempts until re-added)."""
        return await self.deployments.delete(deployment_id)

    async def find_service(self, name: str) -> tuple[ServiceInfo, str] | None:
        """``registry.service(name)``; on a miss, when other processes share the store, after a
        refresh of the deployments that started after the miss (one shared by every request
        missing meanwhile: ``Deployments.refresh_after_now``), so a deployment registered
        through another orchestrator is found at once, never answered 404."""
        found = self.registry.service(name)
        if found is not None or self.store.exclusive:
            return found
        await self.deployments.refresh_after_now()
        return self.registry.service(name)

    # ------------------------------------------------------------------ ingress

    async def submit(
        self,
        target: Target,
        key: str | None,
        input_text: str,
        *,
        idempotency_key: str | None = None,
        delay_ms: int = 0,
        headers: dict[str, str] | None = None,
        debounce_ms: int = 0,
    ) -> tuple[InvocationRecord, bool]:
        """Create an invocation durably; returns (record, created). With an idempotency key
        already used for this target, returns the existing invocation and False. ``headers``
        (already redacted) go into the input entry, for ``ctx.headers``. ``debounce_ms``
        (with an idempotency key): start it after that long, unless another send with that
        key comes first, which replaces it (docs/limits.md, "Debounce")."""
        if debounce_ms:
            assert idempotency_key is not None, "debounce needs an idempotency key"
            return await self._debounce(
                target, key, input_text, idempotency_key, debounce_ms, headers
            )
        if self._closing:
            raise TryAgainError("the orchestrator is shutting down")
        if self.timers.behind():  # due timers first (_timers.py): wait a moment
            await self.timers.yield_to_timers()
        service, handler = target.service.name, target.handler.name
        if target.handler.kind == "workflow":
            idempotency_key = WORKFLOW_RUN  # a workflow runs once per id
        if idempotency_key is not None:
            found = await self.store.find_idempotent(service, handler, key, idempotency_key)
            if found is not None:
                return found, False
        inv_id = new_id()
        partition = self.core.partition_of(service, key, inv_id)
        for _ in range(3):
            here = self.leads(partition)
            event = Submit(
                inv_id, target, key, input_text, headers, idempotency_key, delay_ms, here
            )
            try:
                decision = await self.committer.commit_decision(self.apply(event))
            except FencedError:
                continue  # we lost the partition meanwhile: hand it to its new leader
            except ConflictError:
                if idempotency_key is not None:  # a concurrent request with the same key won
                    found = await self.store.find_idempotent(service, handler, key, idempotency_key)
                    if found is not None:
                        return found, False
                raise
            assert decision.record is not None
            return decision.record, True
        raise TryAgainError("partition leadership keeps changing; try again")

    async def _debounce(
        self,
        target: Target,
        key: str | None,
        input_text: str,
        idempotency_key: str,
        debounce_ms: int,
        headers: dict[str, str] | None,
    ) -> tuple[InvocationRecord, bool]:
        """A debounced send: scheduled ``debounce_ms`` from now under its key, superseding the
        one waiting with that key, if any (one unit, conditioned on that one's version)."""
        if self._closing:
            raise TryAgainError("the orchestrator is shutting down")
        service, handler = target.service.name, target.handler.name
        stored_key = DEBOUNCE_PREFIX + idempotency_key
        for _ in range(8):
            earlier = await self.store.find_idempotent(service, handler, key, stored_key)
            if earlier is not None and not _supersedable(earlier):
                raise TryAgainError("the debounced invocation is starting; send again")
            inv_id = new_id()
            partition = self.core.partition_of(service, key, inv_id)
            event = Submit(
                inv_id,
                target,
                key,
                input_text,
                headers,
                stored_key,
                debounce_ms,
                self.leads(partition),
                earlier,
            )
            try:
                decision = await self.committer.commit_decision(self.apply(event))
            except ConflictError:
                continue  # another send, or its start, came first: read again
            assert decision.record is not None
            return decision.record, True
        raise TryAgainError("debounced sends with this key keep racing; try again")

    async def wait_result(
        self, invocation_id: str, *, created: InvocationRecord | None = None
    ) -> str:
        """Wait until the invocation completes; its result text (``{"value"|"failure": ...}``).

        ``created``: the record ``submit`` just returned for this id (created, not found by
        its idempotency key), with no await between ``submit`` returning and this call (the
        ingress). When it provably has not finished here yet, the first read of the store is
        skipped; otherwise it is ignored. NotFoundError for an unknown id."""
        fut = self.waiters.add(invocation_id)
        try:
            # The waiter is registered (above, without awaiting) before this check: from now
            # on a ``Reply`` answers it, so skipping the read cannot miss the result.
            if (
                created is not None
                and self.leads(created.partition)
                and self.core.unfinished_here(created)
            ):
                rec: InvocationRecord | None = created
            else:
                rec = await self.store.get_invocation(invocation_id)
            if rec is None:
                raise NotFoundError(f"invocation {invocation_id} not found")
            # The future is answered when this process finishes the invocation; when another
            # process leads its partition (or takes it over), the store is polled instead.
            delay = 0.02
            while rec.status not in FINAL_STATUSES:
                timeout: float | None = delay
                if self.leads(rec.partition):  # ours: answered through the future
                    timeout = None if self.leadership.alone() else 1.0
                if timeout is None:
                    return await fut
                done, _ = await asyncio.wait({fut}, timeout=timeout)
                if done:
                    return fut.result()
                delay = min(delay * 2, 0.5)
                found = await self.store.get_invocation(invocation_id)
                if found is None:
                    raise NotFoundError(f"invocation {invocation_id} was purged")
                rec = found
            return rec.result or dumps({"failure": {"code": 409, "message": rec.status}})
        finally:
            self.waiters.remove(invocation_id, fut)

    async def describe(self, invocation_id: str) -> tuple[InvocationRecord, list[str], list[str]]:
        """An invocation with its journal and completions (live status if it is being driven)."""
        rec = await self.store.get_invocation(invocation_id)
        if rec is None:
            raise NotFoundError(f"invocation {invocation_id} not found")
        live = self.core.live(invocation_id)
        if live is not None and live.rec.version >= rec.version:
            rec = replace(live.rec, status=Status.RUNNING.value)
        entries, completions = await self.store.get_journal(invocation_id)
        return rec, entries, completions

    async def complete_awakeable(self, awakeable_id: str, result_text: str) -> None:
        """Resolve or reject an awakeable from outside (``result_text`` is ``{"value": ...}``
        or ``{"failure": ...}``). Unknown or forged ids: NotFoundError; already completed:
        StateConflictError."""
        if self._closing:
            raise TryAgainError("the orchestrator is shutting down")
        await self.operations.complete_awakeable(awakeable_id, result_text)

    # ------------------------------------------------------------------ operators

    async def kill(self, invocation_id: str, result: str | None = None) -> InvocationRecord:
        """Stop an invocation at once: its attempt is abandoned, it ends ``killed`` with a
        terminal failure (409) that its caller receives, and its key is freed. ``result``:
        that failure's text, a JSON object ``{"failure": {...}}`` (None: ``KILLED_RESULT``,
        "killed by an operator"); the durable API's stop keeps its ``Error`` in it."""
        return await self.operations.act("kill", invocation_id, result=result)

    async def cancel(self, invocation_id: str) -> InvocationRecord:
        """Cancel gracefully (``Operations.cancel``)."""
        return await self.operations.cancel(invocation_id)

    async def pause(self, invocation_id: str) -> InvocationRecord:
        """Stop driving an invocation until ``resume``; it keeps its key and its timers."""
        return await self.operations.act("pause", invocation_id)

    async def resume(self, invocation_id: str, deployment: str | None = None) -> InvocationRecord:
        """Resume a paused invocation with a fresh retry budget, on ``deployment``
        (``latest``, ``keep`` or an id; None: keep)."""
        return await self.operations.act("resume", invocation_id, deployment)

    async def restart_as_new(
        self, invocation_id: str, from_index: int = 0, deployment: str = "latest"
    ) -> InvocationRecord:
        """A new invocation restarting a finished one from entry ``from_index``
        (``Restarts.restart``); the new record."""
        return await self.restarts.restart(invocation_id, from_index, deployment)

    async def dry_run_restart(
        self, invocation_id: str, from_index: int = 0, deployment: str = "latest"
    ) -> DryRun:
        """Replay what a restart would keep against the deployment's code, starting nothing
        (``Restarts.dry_run``)."""
        return await self.restarts.dry_run(invocation_id, from_index, deployment)

    async def purge(self, invocation_id: str) -> InvocationRecord:
        """Delete a finished invocation now (``Operations.purge``)."""
        return await self.operations.purge(invocation_id)

    async def read_state(self, service: str, key: str) -> tuple[str, dict[str, Any]]:
        """(version, user state) of one object or workflow key (``Operations.read_state``)."""
        return await self.operations.read_state(service, key)

    async def write_state(
        self, service: str, key: str, new_state: dict[str, Any], expect_version: str | None
    ) -> str:
        """Replace an object's user state; the new version (``Operations.write_state``)."""
        return await self.operations.write_state(service, key, new_state, expect_version)

    async def pinned(self, deployment_id: str, limit: int = 10) -> list[InvocationRecord]:
        """Unfinished invocations pinned to a deployment (``Operations.pinned``)."""
        return await self.operations.pinned(deployment_id, limit)

    # ------------------------------------------------------------------ retention

    async def purge_expired(self) -> int:
        """Purge invocations finished more than ``retention_s`` ago (with a workflow's state
        and promises): their idempotency keys and workflow ids become free again. Returns how
        many were purged."""
        return await self.alarms.purge_expired()


def _supersedable(rec: InvocationRecord) -> bool:
    """A debounced send's earlier one that a new send may replace: still waiting to start,
    or finished (its key is given up)."""
    return rec.status == Status.SCHEDULED or rec.status in FINAL_STATUSES
