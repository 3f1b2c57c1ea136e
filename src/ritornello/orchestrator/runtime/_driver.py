"""Drivers: one task per invocation the core drives, performing the actions it names.

A driver reports ``DriverStarted``, then loops: commit the decision's unit and report the
outcome, perform the decision's effects, do its next action (read, invoke, look up) and report
what came of it — until the core names no next action. Whatever way it stops (done, its partition
lost, a commit fenced, a store failure, an error, cancelled), it reports ``DriverEnded`` with
the cause; the core decides whether it is driven again.

Invariants: every unit a driver commits gets exactly one ``Committed`` or ``CommitFailed``
report (cancellation included: a cut-off commit may still land); a workflow's rows are read,
its answer settled and its unit committed under the key's lock (``_locks``).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Sequence

from ritornello.protocol import parse_awakeable_id
from ritornello.store import (
    FINAL_STATUSES,
    FencedError,
    InvocationRecord,
    Store,
    StoreError,
    crashpoints,
)

from .._clock import Clock
from .._tracing import Tracing
from ..core import (
    WORKFLOW_RUN,
    Answered,
    CompletionsRead,
    Core,
    Decision,
    DriverEnded,
    DriverStarted,
    Effect,
    Event,
    Invoke,
    Load,
    Loaded,
    LookedUp,
    Lookup,
    ReadCompletions,
    ReadState,
    StateRead,
    attempt_timeout_s,
)
from ..core import AttemptFailed as _AttemptFailed
from ..invokers import Invoker
from ..protocols import Exchange, ProtocolAdapter
from ._committer import Committer
from ._leadership import Leadership
from ._locks import KeyLocks
from ._traced import traced_attempt

log = logging.getLogger("ritornello.engine")


class Drivers:
    """The driver tasks of one orchestrator process."""

    def __init__(
        self,
        core: Core,
        store: Store,
        committer: Committer,
        leadership: Leadership,
        *,
        clock: Clock,
        endpoint: Callable[[str], tuple[ProtocolAdapter, Invoker] | None],
        perform: Callable[[Sequence[Effect]], None],
        attempt_timeout_s: float,
        counters: Counter[str],
        missing: Callable[[str], str] | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self.core = core
        self.store = store
        self.committer = committer
        self.leadership = leadership
        self.clock = clock
        self._endpoint = endpoint  # deployment id -> (protocol adapter, invoker)
        #: deployment id -> why it has no endpoint here (not registered, or not reachable)
        self._missing = missing or (lambda dep: f"deployment {dep} is not registered")
        self._perform = perform
        self.attempt_timeout_s = attempt_timeout_s
        self._counters = counters
        #: traces (docs/tracing.md); None: off, and an attempt costs one ``is None`` check
        self.tracing = tracing
        self.locks = KeyLocks()
        self.tasks: dict[str, asyncio.Task[None]] = {}
        #: set each time a driver ends (a drain waits on it)
        self.ended = asyncio.Event()

    def __len__(self) -> int:
        return len(self.tasks)

    def start(self, invocation_id: str) -> None:
        task = asyncio.get_running_loop().create_task(self._run(invocation_id))
        self.tasks[invocation_id] = task

    def halt(self, invocation_id: str) -> None:
        task = self.tasks.get(invocation_id)
        if task is not None:
            task.cancel()

    async def halted(self, invocation_id: str) -> None:
        """Wait until the driver of ``invocation_id`` (if any) has stopped."""
        task = self.tasks.get(invocation_id)
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)

    async def stop(self) -> None:
        tasks = list(self.tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _apply(self, event: Event) -> Decision:
        return self.core.apply(event, self.clock.now_ms())

    async def _run(self, inv_id: str) -> None:
        cause = "cancelled"
        exchange: Exchange | None = None
        # bound once: the loop runs once per answer of every invocation
        apply, now = self.core.apply, self.clock.now_ms
        commit, perform, leads = (
            self.committer.commit_decision,
            self._perform,
            self.leadership.leads,
        )
        tracing = self.tracing
        try:
            decision = apply(DriverStarted(inv_id), now())
            while True:
                if decision.unit is not None:  # committed, and what follows performed
                    decision = await commit(decision)
                if decision.effects:
                    perform(decision.effects)
                action = decision.next
                if action is None:
                    cause = "done"
                    break
                if isinstance(action, Invoke):
                    p = action.invocation.rec.partition
                    if not leads(p) and not await self.leadership.leading(p):
                        cause = "lost"  # another process leads its partition now
                        break
                    found = self._endpoint(action.invocation.rec.deployment_id)
                    if found is None:
                        why = self._missing(action.invocation.rec.deployment_id)
                        event: Event = _AttemptFailed(inv_id, why)
                    else:
                        adapter, invoker = found
                        if exchange is None:
                            exchange = adapter.new_exchange()
                        self._counters["attempts"] += 1
                        timeout_s = self._timeout_of(action.invocation.rec)
                        if tracing is None:
                            event = await adapter.attempt(invoker, action, exchange, timeout_s)
                        else:
                            event = await traced_attempt(
                                tracing, adapter, invoker, action, exchange, timeout_s
                            )
                        if crashpoints.ARMED:
                            crashpoints.reach("after-invoke")
                    if isinstance(event, _AttemptFailed) or (
                        isinstance(event, Answered) and event.answer.status == "error"
                    ):
                        _log_failed_attempt(action.invocation.rec, event)
                    decision = apply(event, now())
                elif isinstance(action, Lookup) and action.rows is not None:
                    async with self.locks.hold(action.rows):
                        decision = self._apply(await self._look_up(inv_id, action))
                        if decision.unit is not None:
                            decision = await self.committer.commit_decision(decision)
                else:
                    decision = self._apply(await self._read(inv_id, action))
        except asyncio.CancelledError:
            raise
        except FencedError:
            cause = "fenced"
            log.warning("driver of %s: a commit was fenced", inv_id, extra=_fields(inv_id))
        except StoreError as exc:  # the store's own message says it all: no traceback
            cause = "store"
            log.error("driver of %s: %s; it will be re-driven", inv_id, exc, extra=_fields(inv_id))
        except Exception:
            cause = "error"
            log.exception(
                "driver of %s failed; it will be re-driven", inv_id, extra=_fields(inv_id)
            )
        finally:
            if exchange is not None:
                exchange.close()
            self.tasks.pop(inv_id, None)
            self._perform(self._apply(DriverEnded(inv_id, cause)).effects)
            self.ended.set()

    def _timeout_of(self, rec: InvocationRecord) -> float:
        """How long the attempt of ``rec`` may wait for each answer (``core.attempt_timeout_s``
        of its handler's effective settings): one dict lookup, a miss for most handlers."""
        settings = self.core.registry.settings_of(rec.deployment_id, rec.service, rec.handler)
        if settings is None:
            return self.attempt_timeout_s
        return attempt_timeout_s(settings, self.attempt_timeout_s)

    async def _read(self, inv_id: str, action: object) -> Event:
        store = self.store
        if isinstance(action, Load):
            rec = await store.get_invocation(inv_id)
            if rec is None or rec.status in FINAL_STATUSES:
                return Loaded(inv_id, rec)
            entries, completions = await store.get_journal(inv_id)
            return Loaded(inv_id, rec, entries, completions)
        if isinstance(action, ReadState):
            return StateRead(inv_id, await store.get_state(action.service, action.key))
        if isinstance(action, ReadCompletions):
            _, completions = await store.get_journal(inv_id)
            return CompletionsRead(inv_id, completions)
        if isinstance(action, Lookup):
            return await self._look_up(inv_id, action)
        raise AssertionError(f"unknown action {action!r}")

    async def _look_up(self, inv_id: str, action: Lookup) -> LookedUp:
        store = self.store
        awakeables = {}
        for aid in action.awakeables:
            target = aid_invocation(aid)
            rec = await store.get_invocation(target) if target is not None else None
            entries, completions = ([], []) if rec is None else await store.get_journal(rec.id)
            awakeables[aid] = (rec, entries, completions)
        started = set()
        for service, handler, key in action.workflows:
            if (service, key) in started:
                continue
            if await store.find_idempotent(service, handler, key, WORKFLOW_RUN) is not None:
                started.add((service, key))
        rows = await store.get_state(*action.rows) if action.rows is not None else None
        existing = []
        for keyed in action.keyed:
            found = await store.find_idempotent(*keyed)
            if found is not None:
                existing.append((keyed, found))
        return LookedUp(inv_id, awakeables, frozenset(started), rows, tuple(existing))


def _fields(invocation_id: str) -> dict[str, object]:
    """A record's ``extra`` about one invocation known by its id only (cli/_logs.py)."""
    return {"invocation_id": invocation_id}


def invocation_fields(rec: InvocationRecord) -> dict[str, object]:
    """A record's ``extra`` about one invocation (read by ``--log-format json``)."""
    return {
        "invocation_id": rec.id,
        "service": rec.service,
        "handler": rec.handler,
        "attempt": rec.attempt,
        "partition": rec.partition,
    }


def _log_failed_attempt(rec: InvocationRecord, event: Event) -> None:
    """A warning for an attempt that failed (the core retries it, or pauses or fails the
    invocation past its policy's attempts); a throttled one is not an attempt: debug."""
    throttled = isinstance(event, _AttemptFailed) and event.throttled
    level = logging.DEBUG if throttled else logging.WARNING
    if not log.isEnabledFor(level):
        return
    if isinstance(event, _AttemptFailed):
        why = event.message
    else:
        assert isinstance(event, Answered)
        error = event.answer.error or {}
        why = f"the handler failed: {error.get('message', error)}"
    log.log(
        level,
        "invocation %s (%s/%s): attempt %d failed: %s",
        rec.id,
        rec.service,
        rec.handler,
        rec.attempt,
        why,
        extra=invocation_fields(rec),
    )


def aid_invocation(awakeable_id: str) -> str | None:
    """The invocation an awakeable id names (None: not an awakeable id); a signal's target
    is looked up by its invocation id itself."""
    if awakeable_id.startswith("inv_"):
        return awakeable_id
    target = parse_awakeable_id(awakeable_id)
    return target[0] if target is not None else None
