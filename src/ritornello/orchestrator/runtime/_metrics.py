"""What the engine measures for ``GET /metrics``, without depending on a metrics library.

``CommitTimings`` is a fixed-bucket histogram the committer feeds (one ``observe`` per
successful ``store.commit``); ``Gauges`` is what ``Engine.gauges()`` reads of the engine's
memory; ``STATUS_COUNT_CAP`` bounds the count of invocations by status in the store. The
admin app turns these into Prometheus text (``ritornello.admin._metrics``), one registry per app.

Invariants: ``observe`` is O(buckets) and never raises; ``counts[i]`` is the number of
observations ``<= BUCKETS[i]`` that fell in no lower bucket (the exporter accumulates them), and
``count`` / ``total`` cover every observation including those above the last bucket.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

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
    channel_runs: int  # Lambda runs with a live checkpoint channel here
