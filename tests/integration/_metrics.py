"""Reading a real orchestrator's ``GET /metrics`` (Prometheus text, parsed with
prometheus_client's own parser) in the process tests."""

from __future__ import annotations

from collections import Counter

from prometheus_client.parser import text_string_to_metric_families

from tests.procs import http


def scrape(admin: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``admin``'s ``/metrics``: (name, sorted labels) -> value."""
    status, text, _ = http("GET", f"{admin}/metrics")
    assert status == 200, text
    samples = {}
    for family in text_string_to_metric_families(str(text)):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def engine_events(admin: str, prefix: str) -> Counter[str]:
    """The engine counters whose names start with ``prefix``, without it
    (``ritornello_engine_events_total{event="PREFIXname"}``)."""
    out: Counter[str] = Counter()
    for (name, labels), value in scrape(admin).items():
        event = dict(labels).get("event", "")
        if name == "ritornello_engine_events_total" and event.startswith(prefix):
            out[event[len(prefix) :]] = int(value)
    return out
