"""Cron schedules: each fire time of a schedule becomes one ordinary invocation
(docs/schedules.md).

Invariants (each one is what a test tries to break):

* A fire time fires at most once. The invocation is created through ``Engine.submit`` with the
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
import functools
import logging
import secrets
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, tzinfo
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadCronError, CroniterBadDateError, CroniterError, croniter

from ritornello.store import (
    OVERLAP_POLICIES,
    TERMINAL_STATUSES,
    ConflictError,
    ScheduleRecord,
    crashpoints,
)

from ._partitions import partition_of

if TYPE_CHECKING:
    from ._engine import Engine

log = logging.getLogger("ritornello.schedules")

#: Catch-up counts the fire times it passes over one by one (on a thread: croniter takes
#: ~50 us a step), up to this many; a longer run of missed times is counted as this many.
MAX_COUNTED_MISSES = 1_000
_CAS_ROUNDS = 5


class ScheduleError(Exception):
    """A schedule request that cannot be served; ``status`` is the HTTP status to answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class Cron:
    """A validated cron expression in a time zone: 5 fields (minute precision), 6 fields
    (a *leading* seconds field: ``sec min hour day month weekday``) or an ``@hourly``-style
    alias. Fire times are whole seconds, as Unix ms."""

    def __init__(self, expr: str, timezone: str = "UTC") -> None:
        fields = expr.split()
        if not fields or (len(fields) not in (5, 6) and not (len(fields) == 1 and expr[0] == "@")):
            raise ScheduleError(
                f"cron {expr!r}: give 5 fields (minute hour day month weekday), 6 with a "
                "leading seconds field, or an alias such as @hourly"
            )
        self.expr = " ".join(fields)
        self.zone = _zone(timezone)
        try:
            self._iter(0)
        except CroniterError as exc:
            raise ScheduleError(f"cron {expr!r} is not valid: {exc}") from None
        if self.next_after(_now_ms()) is None:
            raise ScheduleError(f"cron {expr!r} never fires")

    def _iter(self, ms: int) -> croniter:
        start = datetime.fromtimestamp(ms // 1000, self.zone)
        return croniter(self.expr, start, second_at_beginning=True)

    def next_after(self, ms: int) -> int | None:
        """The first fire time strictly after ``ms``; None if there is none."""
        try:
            found: datetime = self._iter(ms).get_next(datetime)
        except (CroniterBadDateError, CroniterBadCronError):
            return None
        return int(found.timestamp()) * 1000

    def latest_at_or_before(self, ms: int) -> int | None:
        """The last fire time at or before ``ms``; None if there is none."""
        try:
            found: datetime = self._iter(ms + 1000).get_prev(datetime)
        except (CroniterBadDateError, CroniterBadCronError):
            return None
        return int(found.timestamp()) * 1000

    def count_between(self, after_ms: int, before_ms: int) -> int:
        """How many fire times lie strictly between the two (at most MAX_COUNTED_MISSES)."""
        it = self._iter(after_ms)
        count = 0
        while count < MAX_COUNTED_MISSES:
            try:
                at = int(it.get_next(datetime).timestamp()) * 1000
            except CroniterError:
                break
            if at >= before_ms:
                break
            count += 1
        return count


@functools.lru_cache(maxsize=256)
def cron_of(expr: str, timezone: str) -> Cron:
    """A cached ``Cron`` (ScheduleError if invalid)."""
    return Cron(expr, timezone)


def _zone(name: str) -> tzinfo:
    if name == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"unknown time zone {name!r} (give an IANA name such as UTC)") from None


def _now_ms() -> int:
    return int(datetime.now(UTC).timestamp() * 1000)


def idempotency_key(schedule_id: str, fire_ms: int) -> str:
    """The idempotency key of a schedule's invocation for one fire time."""
    return f"schedule:{schedule_id}:{fire_ms}"


class Scheduler:
    """Fires the schedules of the partitions its engine leads; serves the admin's changes.

    ``tick()`` is one pass over the store's schedules (tests call it with a manual clock);
    ``start()`` runs it every ``interval_s`` or sooner when a fire time is near."""

    def __init__(self, engine: Engine, *, interval_s: float = 1.0) -> None:
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
        if not self.engine.leadership.owned():
            return None
        earliest: int | None = None
        schedules = await self.engine.store.list_schedules()
        self._empty = not schedules
        for schedule in schedules:
            if schedule.paused or not self.engine._owns(schedule.partition):
                continue
            try:
                upcoming = await self._advance(schedule)
            except ConflictError:
                continue  # changed meanwhile (paused, deleted, another leader): next pass
            except ScheduleError as exc:
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
        return rec is not None and rec.status not in TERMINAL_STATUSES  # purged: finished

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
        """Validate and store a new schedule; its first fire time is the first after now."""
        checked = cron_of(cron, timezone)
        if overlap not in OVERLAP_POLICIES:
            raise ScheduleError(f"overlap must be one of {', '.join(OVERLAP_POLICIES)}")
        service, _, handler = target.partition("/")
        if not service or not handler or "/" in handler:
            raise ScheduleError(f"target {target!r}: give Service/handler or Object/handler")
        found = await self.engine.find_service(service)
        if found is None:
            raise ScheduleError(f"service {service} not found", 404)
        info = found[0]
        resolved = self.engine.registry.resolve(service, handler)
        if resolved is None:
            raise ScheduleError(f"handler {service}/{handler} not found", 404)
        if resolved.handler.kind == "workflow":
            raise ScheduleError(
                f"{target} is a workflow's run, which runs once per workflow id: schedule a "
                "service handler that starts the workflow instead"
            )
        if info.kind == "service" and key is not None:
            raise ScheduleError(f"{service} is a service: it takes no key")
        if info.kind != "service" and key is None:
            raise ScheduleError(f"{service} is a {info.kind}: give a key")
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
            partition=partition_of("schedule", None, schedule_id, self.engine.leadership.count),
        )
        await self.engine.store.put_schedule(record)
        self.poke()
        log.info("schedule %s created: %r -> %s", schedule_id, checked.expr, target)
        return record

    async def get(self, schedule_id: str) -> ScheduleRecord:
        found = await self.engine.store.get_schedule(schedule_id)
        if found is None:
            raise ScheduleError(f"schedule {schedule_id} not found", 404)
        return found

    async def list_all(self) -> list[ScheduleRecord]:
        return await self.engine.store.list_schedules()

    async def pause(self, schedule_id: str) -> ScheduleRecord:
        """Stop firing it (409 if it is paused already)."""

        def change(s: ScheduleRecord) -> ScheduleRecord:
            if s.paused:
                raise ScheduleError(f"schedule {schedule_id} is already paused", 409)
            return replace(s, paused=True)

        return await self._change(schedule_id, change)

    async def resume(self, schedule_id: str) -> ScheduleRecord:
        """Fire it again from now on: the times that passed while it was paused are not due
        (409 if it is not paused)."""
        now = self.engine.clock.now_ms()

        def change(s: ScheduleRecord) -> ScheduleRecord:
            if not s.paused:
                raise ScheduleError(f"schedule {schedule_id} is not paused", 409)
            return replace(s, paused=False, checked_until=max(s.checked_until, now))

        return await self._change(schedule_id, change)

    async def delete(self, schedule_id: str) -> None:
        if not await self.engine.store.delete_schedule(schedule_id):
            raise ScheduleError(f"schedule {schedule_id} not found", 404)
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
        raise ScheduleError(f"schedule {schedule_id} keeps changing; try again", 409)

    @staticmethod
    def next_fire_at(s: ScheduleRecord) -> int | None:
        """The first fire time not yet dealt with (None while paused): in the past when the
        schedule is overdue (catch-up fires it, see the module docstring)."""
        if s.paused:
            return None
        try:
            return cron_of(s.cron, s.timezone).next_after(s.checked_until)
        except ScheduleError:
            return None
