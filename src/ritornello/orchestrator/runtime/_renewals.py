"""How lease renewals keep time: what ``Leadership`` measures of its own renewals, and the
coordination requests it sends (``GET /cluster`` shows both).

Per renewal round: how late it started against its fixed-rate schedule (the event loop's lag).
Per renewal: its round trip (sent → answered: the store's latency, the lease lane's queue) and
the margin left on the lease's validity when the answer came in (negative: the lease had
lapsed — the process stopped acting as leader until it landed). Lateness plus round trip must
stay under ``lease_s * (SAFETY - 1/3)`` (2.33 s at the default 5 s) for a lease never to lapse.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

#: Recent samples kept for the percentiles (bounded memory).
SAMPLES = 4096


def _p99(samples: deque[float]) -> float:
    if not samples:
        return 0.0
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


@dataclass(slots=True)
class RenewalStats:
    """Renewals' lateness, round trips and margins (seconds), and lapses counted."""

    rounds: int = 0
    renewals: int = 0
    #: renewals answered after the lease's validity had run out
    lapses: int = 0
    late: deque[float] = field(default_factory=lambda: deque(maxlen=SAMPLES))
    round_trip: deque[float] = field(default_factory=lambda: deque(maxlen=SAMPLES))
    late_max: float = 0.0
    round_trip_max: float = 0.0
    margin_min: float = float("inf")
    #: coordination requests sent to the store, by kind (renew, heartbeat, list_leases, ...)
    requests: Counter[str] = field(default_factory=Counter)

    def round_started(self, late_s: float) -> None:
        self.rounds += 1
        self.late.append(late_s)
        self.late_max = max(self.late_max, late_s)

    def renewed(self, round_trip_s: float, margin_s: float) -> None:
        self.renewals += 1
        self.round_trip.append(round_trip_s)
        self.round_trip_max = max(self.round_trip_max, round_trip_s)
        self.margin_min = min(self.margin_min, margin_s)
        if margin_s < 0:
            self.lapses += 1

    def view(self) -> dict[str, Any]:
        """What ``GET /cluster`` shows (milliseconds)."""
        return {
            "rounds": self.rounds,
            "renewals": self.renewals,
            "lapses": self.lapses,
            "late_p99_ms": round(_p99(self.late) * 1000, 1),
            "late_max_ms": round(self.late_max * 1000, 1),
            "round_trip_p99_ms": round(_p99(self.round_trip) * 1000, 1),
            "round_trip_max_ms": round(self.round_trip_max * 1000, 1),
            "margin_min_ms": None if self.renewals == 0 else round(self.margin_min * 1000, 1),
            "requests": dict(self.requests),
        }
