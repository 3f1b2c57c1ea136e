"""Cron schedules (docs/schedules.md): each fire time is one ordinary invocation."""

from ritornello.orchestrator.schedules._cron import (
    MAX_COUNTED_MISSES,
    Cron,
    cron_of,
    idempotency_key,
)
from ritornello.orchestrator.schedules._scheduler import ScheduleHost, Scheduler

__all__ = [
    "MAX_COUNTED_MISSES",
    "Cron",
    "ScheduleHost",
    "Scheduler",
    "cron_of",
    "idempotency_key",
]
