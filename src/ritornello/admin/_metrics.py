"""``GET /metrics``: Prometheus text exposition (prometheus_client), one registry per app.

A custom collector reads the engine at scrape time (``ritornello.orchestrator.runtime._metrics``):
invocations by status (counted in the store: at every scrape on SQLite, at most once a minute
on a shared store such as DynamoDB, where counting reads the table), attempts, journal commit
latency (histogram fed by the engine's commit path), queue depth, timers, and every engine
counter; and per named limit whose owner is this process (``engine.core.limits``: a limit's
partition is led here), its permits out, its waiters, its grants and how long their asks
waited. Nothing is registered in prometheus_client's global registry, so several apps (tests)
can coexist.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector

from ritornello.orchestrator import Engine
from ritornello.orchestrator.core import WAIT_BUCKETS_MS
from ritornello.orchestrator.runtime import BUCKETS, STATUS_COUNT_CAP


class EngineCollector(Collector):
    """Everything but the store counts, read synchronously at collection time; the store
    counts (invocations by status, timers) are read by the route before collection."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.statuses: dict[str, int] = {}
        self.timers = 0

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily]:
        engine = self.engine
        inv = GaugeMetricFamily(
            "ritornello_invocations", "Invocations in the store by status", labels=["status"]
        )
        for status, n in sorted(self.statuses.items()):
            inv.add_metric([status], n)
        yield inv
        yield CounterMetricFamily(
            "ritornello_attempts", "Attempts sent to endpoints", value=engine.counters["attempts"]
        )
        t = engine.commit_timings
        buckets: list[tuple[str, float]] = []
        running = 0
        for bound, n in zip(BUCKETS, t.counts, strict=True):
            running += n
            buckets.append((repr(bound), running))
        buckets.append(("+Inf", t.count))
        yield HistogramMetricFamily(
            "ritornello_journal_commit_seconds",
            "Latency of journal commits (one atomic store commit each)",
            buckets=buckets,
            sum_value=t.total,
        )
        g = engine.gauges()
        for name, value, text in (
            ("queue_depth", g.queue_depth, "Invocations queued behind an exclusive handler"),
            ("keys_held", g.keys_held, "Object keys held by an exclusive invocation"),
            ("timers", self.timers, "Durable timers in the store (all partitions)"),
            ("timers_armed", g.timers, "Timers armed in this process's memory"),
            ("running", g.running, "Invocations with a driver (attempt in flight)"),
            ("suspended", g.suspended, "Suspended invocations waiting on a completion"),
            ("partitions_led", g.partitions_led, "Partitions this orchestrator leads"),
            ("channel_runs", g.channel_runs, "Lambda runs with a live checkpoint channel here"),
        ):
            yield GaugeMetricFamily(f"ritornello_{name}", text, value=value)
        events = CounterMetricFamily(
            "ritornello_engine_events", "Engine counters by event", labels=["event"]
        )
        for event, n in sorted(engine.counters.items()):
            events.add_metric([_label(event)], n)
        yield events
        yield from self._limits()

    def _limits(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily]:
        """The limits owned here (another process owns the others and reports them)."""
        label = ["limit"]
        in_flight = GaugeMetricFamily(
            "ritornello_limit_in_flight",
            "Permits out (held, or granted and being committed) of a limit owned here",
            labels=label,
        )
        waiting = GaugeMetricFamily(
            "ritornello_limit_waiting",
            "Asks waiting for a permit of a limit owned here",
            labels=label,
        )
        granted = CounterMetricFamily(
            "ritornello_limit_granted",
            "Permits granted since this process came to own the limit",
            labels=label,
        )
        waits = HistogramMetricFamily(
            "ritornello_limit_wait_seconds",
            "How long each granted ask waited for its permit",
            labels=label,
        )
        instances = self.engine.core.limits.instances
        for name in sorted(instances):
            inst = instances[name]
            value = [_label_value(name)]
            in_flight.add_metric(value, inst.in_flight())
            waiting.add_metric(value, len(inst.waiting))
            granted.add_metric(value, inst.granted_total)
            buckets = [  # the instance's counts are cumulative already
                (repr(bound / 1000), n)
                for bound, n in zip(WAIT_BUCKETS_MS, inst.wait_buckets, strict=True)
            ]
            buckets.append(("+Inf", inst.granted_total))
            waits.add_metric(value, buckets, sum_value=inst.wait_ms_total / 1000)
        yield from (in_flight, waiting, granted, waits)


def _label(name: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


def _label_value(value: str) -> str:
    """A label value that reads back as the same text wherever it goes: control characters (a
    NUL-separated key) and the backslash itself as ``\\xNN`` (so the mapping is one to one);
    prometheus_client then escapes the backslashes, quotes and line feeds the text format
    needs. Not ``_label``: it would merge ``a.b`` and ``a_b``."""
    return re.sub(r"[\x00-\x1f\x7f\\]", lambda m: f"\\x{ord(m.group()):02x}", value)


#: On a store shared by several orchestrators (DynamoDB) counting pages through the table, so
#: the store counts are read at most this often (seconds) and scrapes in between reuse them.
#: A local store (SQLite) counts with one indexed query per scrape.
SHARED_STORE_COUNTS_S = 60.0


def metrics_router(engine: Engine) -> APIRouter:
    """``GET /metrics`` over this engine, with a registry of its own."""
    router = APIRouter(tags=["metrics"])
    registry = CollectorRegistry(auto_describe=False)
    collector = EngineCollector(engine)
    registry.register(collector)
    lock = asyncio.Lock()
    counted_at = float("-inf")

    @router.get(
        "/metrics",
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
    )
    async def metrics() -> Response:
        """Prometheus text exposition format (version 0.0.4)."""
        nonlocal counted_at
        async with lock:  # one scrape at a time reads the store
            now = asyncio.get_running_loop().time()
            if engine.store.exclusive or now - counted_at >= SHARED_STORE_COUNTS_S:
                collector.statuses = await engine.store.count_invocations(STATUS_COUNT_CAP)
                collector.timers = await engine.store.count_timers()
                counted_at = now
            body = generate_latest(registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return router
