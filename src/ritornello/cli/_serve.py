"""The orchestrator process: store + engine + ingress (:8080) + admin (:9070) on one loop.

SIGTERM/SIGINT stop it cleanly: the servers stop accepting, drivers are cancelled, pending
commits are flushed and the store is closed. Whatever was in flight is re-driven at the next
start (nothing was acknowledged before its commit, so nothing is lost).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Generator
from typing import Any

import uvicorn

from ritornello.orchestrator import Engine, IngressApp, Settings
from ritornello.protocol import RetryPolicy
from ritornello.store import open_store
from ritornello.store.faults import FaultyStore
from ritornello.store.retrying import RetryingStore

log = logging.getLogger("ritornello.serve")


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the process that hosts several."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def _store_url(settings: Settings) -> str:
    return settings.store


async def run_orchestrator(
    settings: Settings,
    *,
    inprocess: dict[str, Any] | None = None,
    on_started: Any = None,
) -> None:
    """Serve until SIGTERM/SIGINT. ``inprocess`` maps names to in-process endpoints
    (deployable as ``inproc://NAME``); ``on_started(engine)`` runs once the engine has
    recovered, before the servers listen."""
    # The store's writer and reader threads need the GIL for a few microseconds per batch; with
    # the default 5 ms switch interval they wait behind a busy event loop for up to 5 ms each
    # time (a convoy that capped throughput). 0.5 ms keeps the hand-off short.
    sys.setswitchinterval(0.0005)
    store = open_store(settings.store)
    if hasattr(store, "synchronous"):
        store.synchronous = settings.sqlite_synchronous
    if settings.store_faults:
        store = FaultyStore(store, **FaultyStore.spec_from_text(settings.store_faults))
    if settings.store_faults or settings.store.startswith("dynamodb:"):
        store = RetryingStore(store, budget_s=settings.store_retry_budget_s)
    await store.open()
    engine = Engine(
        store,
        retry=RetryPolicy(
            initial_interval_ms=settings.retry_initial_ms,
            factor=settings.retry_factor,
            max_interval_ms=settings.retry_max_ms,
            max_attempts=settings.retry_max_attempts,
            on_max_attempts=settings.retry_on_max_attempts,
        ),
        attempt_timeout_s=settings.attempt_timeout_s,
        retention_s=settings.retention_s,
        inprocess=inprocess,
        node=settings.node_id or None,
        lease_s=settings.lease_s,
        inbox_interval_s=settings.inbox_interval_s,
        watchdog_interval_s=settings.watchdog_interval_s,
        schedule_interval_s=settings.schedule_interval_s,
        address=f"http://{settings.host}:{settings.ingress_port}",
        signing_secret=settings.signing_secret,
    )
    servers: list[_Server] = []
    try:
        await engine.start()
        if on_started is not None:  # before listening: no request finds the app unregistered
            await on_started(engine)
        # Imported once the engine has recovered and is driving what was in flight: FastAPI
        # and pydantic take a few hundred ms to import, which a restart need not wait for.
        from ritornello.admin import create_app

        common: dict[str, Any] = {
            "host": settings.host,
            "log_level": "warning",
            "access_log": False,
            "lifespan": "off",
            "http": "httptools",
            "loop": "none",
        }
        ingress = IngressApp(
            engine,
            max_body_bytes=settings.max_body_bytes,
            token=settings.ingress_token,
            redact_headers=settings.redact_headers,
        )
        servers = [
            _Server(uvicorn.Config(ingress, port=settings.ingress_port, **common)),
            _Server(
                uvicorn.Config(
                    create_app(
                        engine,
                        admin_token=settings.admin_token,
                        max_body_bytes=settings.max_body_bytes,
                    ),
                    port=settings.admin_port,
                    **common,
                )
            ),
        ]
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        tasks = [loop.create_task(s.serve()) for s in servers]
        while not all(s.started for s in servers):
            if any(t.done() for t in tasks):
                for t in tasks:
                    if t.done() and t.exception() is not None:
                        raise t.exception()  # type: ignore[misc]
                raise SystemExit(f"could not listen on {settings.host}")
            await asyncio.sleep(0.01)
        log.info(
            "ritornello serving: ingress http://%s:%d, admin http://%s:%d, store %s",
            settings.host,
            settings.ingress_port,
            settings.host,
            settings.admin_port,
            settings.store,
        )
        await stop.wait()
        log.info("shutting down")
        for s in servers:
            s.should_exit = True  # stop accepting
        await engine.stop()  # in-flight calls answer 503 with their invocation id
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        await engine.stop()
        await store.close()
