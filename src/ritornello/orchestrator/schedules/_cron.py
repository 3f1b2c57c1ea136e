"""Cron expressions in a time zone, and the idempotency key of a fire time: the pure part of
schedules, shared by the scheduler and the invariant checker."""

from __future__ import annotations

import functools
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadCronError, CroniterBadDateError, CroniterError, croniter

from ..errors import InvalidRequestError

#: Catch-up counts the fire times it passes over one by one (on a thread: croniter takes
#: ~50 us a step), up to this many; a longer run of missed times is counted as this many.
MAX_COUNTED_MISSES = 1_000


def idempotency_key(schedule_id: str, fire_ms: int) -> str:
    """The idempotency key of a schedule's invocation for one fire time."""
    return f"schedule:{schedule_id}:{fire_ms}"


class Cron:
    """A validated cron expression in a time zone: 5 fields (minute precision), 6 fields
    (a *leading* seconds field: ``sec min hour day month weekday``) or an ``@hourly``-style
    alias. Fire times are whole seconds, as Unix ms."""

    def __init__(self, expr: str, timezone: str = "UTC") -> None:
        fields = expr.split()
        if not fields or (len(fields) not in (5, 6) and not (len(fields) == 1 and expr[0] == "@")):
            raise InvalidRequestError(
                f"cron {expr!r}: give 5 fields (minute hour day month weekday), 6 with a "
                "leading seconds field, or an alias such as @hourly"
            )
        self.expr = " ".join(fields)
        self.zone = _zone(timezone)
        try:
            self._iter(0)
        except CroniterError as exc:
            raise InvalidRequestError(f"cron {expr!r} is not valid: {exc}") from None
        if self.next_after(_now_ms()) is None:
            raise InvalidRequestError(f"cron {expr!r} never fires")

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
    """A cached ``Cron`` (InvalidRequestError if invalid)."""
    return Cron(expr, timezone)


def _zone(name: str) -> tzinfo:
    if name == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidRequestError(
            f"unknown time zone {name!r} (give an IANA name such as UTC)"
        ) from None


def _now_ms() -> int:
    return int(datetime.now(UTC).timestamp() * 1000)
