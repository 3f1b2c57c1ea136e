"""What the engine measures for ``GET /metrics``, without depending on a metrics library.

``CommitTimings`` is a fixed-bucket histogram the engine feeds from its commit path (one
``observe`` per successful ``store.commit``); ``gauges`` reads the engine's in-memory
structures; ``count_statuses`` counts invocations in the store. The admin app turns these into
Prometheus text (``ritornello.admin._metrics``), one registry per app.

Invariants: ``observe`` is O(buckets) and never raises; ``counts[i]`` is the number of
observations ``<= BUCKETS[i]`` that fell in no lower bucket (the exporter accumulates them), and
``count`` / ``total`` cover every observation including those above the last bucket.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._engine import Engine

#: Upper bounds (seconds) of the journal-commit latency buckets (SQLite group commit is
#: milliseconds; a DynamoDB transaction tens of them).
BUCKETS: tuple[float, ...] = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)

#: ``count_statuses`` stops counting a status at this many invocations (the metric then reads
#: "at least this many"); it pages through the store, so an unbounded count would cost a scan.
STATUS_COUNT_CAP = 100_000


@dataclass(slots=True)
class CommitTimings:
    """Latency of journal commits (``store.commit`` as the engine awaits it), in seconds."""

    counts: list[int] = field(default_factory=lambda: [0] * len(BUCKETS))
    count: int = 0
    total: float = 0.0

    def observe(self, seconds: float) -> None:
        """Record one commit that took ``seconds``."""
        i = bisect.bisect_left(BUCKETS, seconds)
        if i < len(BUCKETS):
            self.counts[i] += 1
        self.count += 1
        self.total += seconds


@dataclass(frozen=True, slots=True)
class Gauges:
    """The engine's in-memory view (the partitions this process leads)."""

    running: int  # driver tasks (attempts in flight or about to be)
    suspended: int  # suspended invocations waiting on a completion
    queue_depth: int  # invocations queued behind an exclusive handler of their key
    keys_held: int  # object keys with an exclusive invocation holding them
    timers: int  # durable timers armed in memory
    partitions_led: int


def gauges(engine: Engine) -> Gauges:
    """Read the engine's in-memory structures (no I/O; call on its event loop)."""
    queues = engine._queues  # the engine's own reader
    return Gauges(
        running=len(engine._drivers),
        suspended=len(engine._suspended),
        queue_depth=sum(max(0, len(q) - 1) for q in queues.values()),
        keys_held=sum(1 for q in queues.values() if q),
        timers=len(engine._timers),
        partitions_led=len(engine.leadership.owned()),
    )


async def count_statuses(engine: Engine) -> dict[str, int]:
    """Invocations in the store by status (each capped at ``STATUS_COUNT_CAP``)."""
    return await engine.store.count_invocations(STATUS_COUNT_CAP)
