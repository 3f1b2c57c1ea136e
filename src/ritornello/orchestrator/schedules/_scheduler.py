"""Cron schedules: each fire time of a schedule becomes one ordinary invocation
(docs/schedules.md).

Invariants (each one is what a test tries to break):

* A fire time fires at most once. The invocation is created through the engine's ``submit`` with the
  idempotency key ``schedule:{id}:{fire ms}``, *then* the schedule's ``checked_until`` moves to
  that time with a compare-and-set. A crash between the two leaves the time due: the next pass
  submits again and gets the existing invocation back (``created`` False), so a restart never
  fires a time twice; the store holds one invocation per idempotency key.
* A fire time is never skipped silently. Every time after ``checked_until`` is fired, skipped
  for overlap (``skipped`` + 1, logged) or, when several are due at once after downtime,
  passed over by catch-up: the most recent one fires and the older ones are counted in
  ``missed`` (logged). Times that pass while a schedule is paused are not due: resuming moves
  ``checked_until`` to the moment of the resume.
* One orchestrator fires a schedule: the leader of the schedule's partition (by id). Nothing
  else depends on it: two leaders for a moment would submit the same idempotency key (one
  invocation) and race on the compare-and-set (one wins, the other reads again).
* A pause, resume or delete is a compare-and-set too: a fire that raced with it either landed
  first (its invocation stands) or loses the compare-and-set and is re-read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from typing import Protocol

from ritornello.protocol import ServiceInfo
from ritornello.store import (
    FINAL_STATUSES,
    OVERLAP_POLICIES,
    ConflictError,
    InvocationRecord,
    ScheduleRecord,
    Store,
    crashpoints,
)

from .._clock import Clock
from .._json import JsonInputError, json_input
from .._keys import key_problem
from ..core import Registry, Target
from ..errors import InvalidRequestError, NotFoundError, OrchestratorError, StateConflictError
from ._cron import MAX_COUNTED_MISSES, cron_of, idempotency_key

log = logging.getLogger("ritornello.schedules")

_CAS_ROUNDS = 5


class ScheduleHost(Protocol):
    """What the scheduler needs of the engine that hosts it."""

    store: Store
    clock: Clock
    registry: Registry
    counters: Counter[str]

    def leads(self, partition: int) -> bool: ...

    def leads_any(self) -> bool: ...

    def partition_of(self, service: str, key: str | None, invocation_id: str) -> int: ...

    async def find_service(self, name: str) -> tuple[ServiceInfo, str] | None: ...

    async def submit(
        self,
        target: Target,
        key: str | None,
        input_text: str,
        *,
        idempotency_key: str | None = None,
        delay_ms: int = 0,
        headers: dict[str, str] | None = None,
    ) -> tuple[InvocationRecord, bool]: ...


class Scheduler:
    """Fires the schedules of the partitions its engine leads; serves the admin's changes.

    ``tick()`` is one pass over the store's schedules (tests call it with a manual clock);
    ``start()`` runs it every ``interval_s`` or sooner when a fire time is near."""

    def __init__(self, engine: ScheduleHost, *, interval_s: float = 1.0) -> None:
        self.engine = engine
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._unresolved: dict[str, int] = {}  # id -> the fire time whose target is missing
        self._empty = False  # the last pass found no schedule at all

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        if self._task is None and self.interval_s > 0:
            self._task = asyncio.get_running_loop().create_task(self._run_forever())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def abandon(self) -> list[asyncio.Task[None]]:
        """Stop at once (as a kill -9 would): the task to cancel, if any."""
        task, self._task = self._task, None
        return [task] if task is not None else []

    def poke(self) -> None:
        """Look again now (a schedule changed here)."""
        self._wake.set()

    async def _run_forever(self) -> None:
        """A pass, then wait: until the next fire time, at most ``interval_s`` (schedules
        may change through another orchestrator). A process alone on an exclusive store
        (SQLite) with no schedule at all waits for ``poke`` alone: nobody else can add one."""
        while True:
            delay: float | None = self.interval_s
            try:
                due = await self.tick()
                if due is not None:
                    delay = min(
                        self.interval_s, max(0.0, (due - self.engine.clock.now_ms()) / 1000)
                    )
                elif self._empty and self.engine.store.exclusive:
                    delay = None
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("schedules: a pass failed; trying again")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            self._wake.clear()

    # ------------------------------------------------------------------ firing

    async def tick(self) -> int | None:
        """Fire (or skip) every due schedule this process leads. Returns the earliest next
        fire time (Unix ms) among them, or None. Leads nothing: reads nothing."""
        if not self.engine.leads_any():
            return None
        earliest: int | None = None
        schedules = await self.engine.store.list_schedules()
        self._empty = not schedules
        for schedule in schedules:
            if schedule.paused or not self.engine.leads(schedule.partition):
                continue
            try:
                upcoming = await self._advance(schedule)
            except ConflictError:
                continue  # changed meanwhile (paused, deleted, another leader): next pass
            except OrchestratorError as exc:
                log.warning("schedule %s cannot fire: %s", schedule.id, exc)
                continue
            if upcoming is not None and (earliest is None or upcoming < earliest):
                earliest = upcoming
        return earliest

    async def _advance(self, s: ScheduleRecord) -> int | None:
        """Deal with ``s``'s due fire time, if any; return its next fire time."""
        cron = cron_of(s.cron, s.timezone)
        now = self.engine.clock.now_ms()
        latest = cron.latest_at_or_before(now)
        if latest is None or latest <= s.checked_until:
            return cron.next_after(s.checked_until)
        target = self.engine.registry.resolve(s.service, s.handler)
        if target is None and await self.engine.find_service(s.service) is not None:
            target = self.engine.registry.resolve(s.service, s.handler)
        if target is None:  # not fired, not skipped: it fires once the handler is back
            if self._unresolved.get(s.id) != latest:  # one warning per fire time
                self._unresolved[s.id] = latest
                log.warning("schedule %s: %s/%s is not registered", s.id, s.service, s.handler)
            return None
        self._unresolved.pop(s.id, None)
        missed = await asyncio.to_thread(cron.count_between, s.checked_until, latest)
        if missed:
            log.warning(
                "schedule %s: %s%d fire times passed while no orchestrator fired it; "
                "firing the latest (%d) once",
                s.id,
                "at least " if missed >= MAX_COUNTED_MISSES else "",
                missed,
                latest,
            )
        if s.overlap == "skip" and await self._previous_running(s):
            log.info("schedule %s: skipping %d, its previous invocation still runs", s.id, latest)
            new = replace(s, checked_until=latest, skipped=s.skipped + 1, missed=s.missed + missed)
            await self._put(new, s)
            self.engine.counters["schedule_skipped"] += 1
            self.engine.counters["schedule_missed"] += missed
            return cron.next_after(latest)
        rec, created = await self.engine.submit(
            target, s.key, s.input, idempotency_key=idempotency_key(s.id, latest)
        )
        if crashpoints.ARMED:
            crashpoints.reach("after-fire")
        await self._record_fire(s, latest, rec.id, missed)
        self.engine.counters["schedule_fires"] += 1
        self.engine.counters["schedule_missed"] += missed
        again = "" if created else " (its invocation existed: a retry after a crash)"
        log.info("schedule %s fired for %d: %s%s", s.id, latest, rec.id, again)
        return cron.next_after(latest)

    async def _record_fire(
        self, s: ScheduleRecord, fire_ms: int, invocation_id: str, missed: int
    ) -> None:
        """Move ``s`` past ``fire_ms`` (compare-and-set). The invocation exists by now, so
        when the schedule changed meanwhile (paused, say) the fire is recorded on the fresh
        read, unless the schedule is gone or already past ``fire_ms`` (recorded elsewhere,
        or resumed later than it)."""
        current: ScheduleRecord | None = s
        for _ in range(_CAS_ROUNDS):
            if current is None or current.checked_until >= fire_ms:
                return
            new = replace(
                current,
                checked_until=fire_ms,
                last_fire_at=fire_ms,
                last_invocation_id=invocation_id,
                fires=current.fires + 1,
                missed=current.missed + missed,
            )
            try:
                await self._put(new, current)
                return
            except ConflictError:
                current = await self.engine.store.get_schedule(s.id)
        raise ConflictError(f"schedule {s.id} keeps changing under its fire of {fire_ms}")

    async def _previous_running(self, s: ScheduleRecord) -> bool:
        if s.last_invocation_id is None:
            return False
        rec = await self.engine.store.get_invocation(s.last_invocation_id)
        return rec is not None and rec.status not in FINAL_STATUSES  # purged: finished

    async def _put(self, new: ScheduleRecord, old: ScheduleRecord) -> None:
        await self.engine.store.put_schedule(
            replace(new, version=old.version + 1), expect_version=old.version
        )

    # ------------------------------------------------------------------ the admin's changes

    async def create(
        self,
        *,
        cron: str,
        target: str,
        key: str | None,
        input_text: str,
        overlap: str = "skip",
        timezone: str = "UTC",
    ) -> ScheduleRecord:
        """Validate and store a new schedule; its first fire time is the first after now.
        ``input_text`` passes the ingress's checks of a body (``_json.json_input``) and ``key``
        those of a key in an ingress path: every fire submits them as they are."""
        checked = cron_of(cron, timezone)
        try:
            input_text = json_input(input_text, "schedule input")
        except JsonInputError as exc:
            raise InvalidRequestError(str(exc)) from None
        if key is not None and (problem := key_problem(key)) is not None:
            raise InvalidRequestError(problem)
        if overlap not in OVERLAP_POLICIES:
            raise InvalidRequestError(f"overlap must be one of {', '.join(OVERLAP_POLICIES)}")
        service, _, handler = target.partition("/")
        if not service or not handler or "/" in handler:
            raise InvalidRequestError(f"target {target!r}: give Service/handler or Object/handler")
        found = await self.engine.find_service(service)
        if found is None:
            raise NotFoundError(f"service {service} not found")
        info = found[0]
        resolved = self.engine.registry.resolve(service, handler)
        if resolved is None:
            raise NotFoundError(f"handler {service}/{handler} not found")
        if resolved.handler.kind == "workflow":
            raise InvalidRequestError(
                f"{target} is a workflow's run, which runs once per workflow id: schedule a "
                "service handler that starts the workflow instead"
            )
        if info.kind == "service" and key is not None:
            raise InvalidRequestError(f"{service} is a service: it takes no key")
        if info.kind != "service" and key is None:
            raise InvalidRequestError(f"{service} is a {info.kind}: give a key")
        now = self.engine.clock.now_ms()
        schedule_id = "sch_" + secrets.token_hex(10)
        record = ScheduleRecord(
            id=schedule_id,
            cron=checked.expr,
            service=service,
            handler=handler,
            key=key,
            input=input_text,
            overlap=overlap,
            timezone=timezone,
            paused=False,
            created_at=now,
            checked_until=now,
            partition=self.engine.partition_of("schedule", None, schedule_id),
        )
        await self.engine.store.put_schedule(record)
        self.poke()
        log.info("schedule %s created: %r -> %s", schedule_id, checked.expr, target)
        return record

    async def get(self, schedule_id: str) -> ScheduleRecord:
        found = await self.engine.store.get_schedule(schedule_id)
        if found is None:
            raise NotFoundError(f"schedule {schedule_id} not found")
        return found

    async def list_all(self) -> list[ScheduleRecord]:
        return await self.engine.store.list_schedules()

    async def pause(self, schedule_id: str) -> ScheduleRecord:
        """Stop firing it (409 if it is paused already)."""

        def change(s: ScheduleRecord) -> ScheduleRecord:
            if s.paused:
                raise StateConflictError(f"schedule {schedule_id} is already paused")
            return replace(s, paused=True)

        return await self._change(schedule_id, change)

    async def resume(self, schedule_id: str) -> ScheduleRecord:
        """Fire it again from now on: the times that passed while it was paused are not due
        (409 if it is not paused)."""
        now = self.engine.clock.now_ms()

        def change(s: ScheduleRecord) -> ScheduleRecord:
            if not s.paused:
                raise StateConflictError(f"schedule {schedule_id} is not paused")
            return replace(s, paused=False, checked_until=max(s.checked_until, now))

        return await self._change(schedule_id, change)

    async def delete(self, schedule_id: str) -> None:
        if not await self.engine.store.delete_schedule(schedule_id):
            raise NotFoundError(f"schedule {schedule_id} not found")
        log.info("schedule %s deleted", schedule_id)

    async def _change(
        self, schedule_id: str, change: Callable[[ScheduleRecord], ScheduleRecord]
    ) -> ScheduleRecord:
        for _ in range(_CAS_ROUNDS):
            current = await self.get(schedule_id)
            new = replace(change(current), version=current.version + 1)
            try:
                await self.engine.store.put_schedule(new, expect_version=current.version)
            except ConflictError:
                continue  # fired (or changed) meanwhile: read it again
            self.poke()
            return new
        raise StateConflictError(f"schedule {schedule_id} keeps changing; try again")

    @staticmethod
    def next_fire_at(s: ScheduleRecord) -> int | None:
        """The first fire time not yet dealt with (None while paused): in the past when the
        schedule is overdue (catch-up fires it, see the module docstring)."""
        if s.paused:
            return None
        try:
            return cron_of(s.cron, s.timezone).next_after(s.checked_until)
        except InvalidRequestError:
            return None
