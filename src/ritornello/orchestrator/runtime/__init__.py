"""The orchestrator's runtime: the async shell that performs what the core decides —
drivers, commits, recovery, timers, leases, operators, deployments, waiting clients."""

from ritornello.orchestrator.runtime._engine import Engine
from ritornello.orchestrator.runtime._leadership import SAFETY, Leadership
from ritornello.orchestrator.runtime._metrics import (
    BUCKETS,
    STATUS_COUNT_CAP,
    CommitTimings,
    Gauges,
)
from ritornello.orchestrator.runtime._timers import TimerQueue

__all__ = [
    "BUCKETS",
    "SAFETY",
    "STATUS_COUNT_CAP",
    "CommitTimings",
    "Engine",
    "Gauges",
    "Leadership",
    "TimerQueue",
]
