"""The orchestrator process: store + engine + ingress (:8080) + admin (:9070) on one loop.

SIGTERM/SIGINT stop it cleanly: the servers stop accepting, drivers are cancelled, pending
commits are flushed and the store is closed. Whatever was in flight is re-driven at the next
start (nothing was acknowledged before its commit, so nothing is lost).

A restart is on the clock: invocations that were in flight wait for it. So the engine
recovers first, before anything that only the HTTP side needs: uvicorn and the admin app
(FastAPI and pydantic, about 0.4 s of imports and app building) are prepared on a thread of
their own while the loop recovers and re-drives, and the servers listen once both are ready.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import signal
import sys
import threading
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from ritornello.orchestrator import ConfigError, Engine, IngressApp, Settings, load_settings
from ritornello.protocol import RetryPolicy
from ritornello.store import StoreError, open_store
from ritornello.store.faults import FaultyStore
from ritornello.store.retrying import RetryingStore

if TYPE_CHECKING:
    from ritornello.cli._listen import Server

log = logging.getLogger("ritornello.serve")


def configure_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def run_loop(coro: Coroutine[Any, Any, None]) -> None:
    """Run ``coro`` to the end on uvloop (the asyncio loop where uvloop is missing)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency of the server extra
        asyncio.run(coro)
        return
    uvloop.run(coro)


def serve_plainly(overrides: dict[str, Any]) -> bool:
    """``ritornello serve`` without typer (see ``ritornello.cli``). False, having done
    nothing, when the settings do not load: typer then reports why, as for any bad option."""
    try:
        settings = load_settings(**overrides)
    except ConfigError:
        return False
    configure_logging(settings)
    try:
        run_loop(run_orchestrator(settings))
    except StoreError as exc:  # as the typer command reports it
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    return True


def _raise_open_file_limit() -> None:
    """Raise the soft limit on open files to the hard one (as Go's runtime does): the
    endpoint pools alone may hold 1,024 connections each (``_invokers.CONNECTIONS``), beyond
    the common soft limit of 1,024."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on POSIX
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _on_a_thread(*calls: Callable[[], Any]) -> list[asyncio.Future[Any]]:
    """Run ``calls`` one after another on a new thread; a future of the loop for each. A call
    that raises fails its future and the ones after it."""
    loop = asyncio.get_running_loop()
    futures: list[concurrent.futures.Future[Any]] = [concurrent.futures.Future() for _ in calls]

    def work() -> None:
        for i, call in enumerate(calls):
            try:
                futures[i].set_result(call())
            except BaseException as exc:  # handed to the awaiting loop
                for future in futures[i:]:
                    future.set_exception(exc)
                return

    threading.Thread(target=work, name="ritornello-http-setup").start()
    return [asyncio.wrap_future(f, loop=loop) for f in futures]


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
    _raise_open_file_limit()
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
    # Off the loop while it recovers: the imports only the HTTP side needs, and the admin app.
    listen_module, admin_app = _on_a_thread(
        _import_listen,
        lambda: _admin_app(engine, settings),
    )
    servers: list[Server] = []
    tasks: list[asyncio.Task[None]] = []
    try:
        await engine.start()
        if on_started is not None:  # before listening: no request finds the app unregistered
            await on_started(engine)
        ingress = IngressApp(
            engine,
            max_body_bytes=settings.max_body_bytes,
            token=settings.ingress_token,
            redact_headers=settings.redact_headers,
        )
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        # The ingress listens as soon as uvicorn is imported; the admin API once it is built.
        listen = await listen_module
        servers.append(listen.server(ingress, settings.host, settings.ingress_port))
        tasks.append(loop.create_task(servers[-1].serve()))
        servers.append(listen.server(await admin_app, settings.host, settings.admin_port))
        tasks.append(loop.create_task(servers[-1].serve()))
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
        for s in servers:  # on a failure: the ones already serving stop too
            s.should_exit = True
        await engine.stop()
        await asyncio.gather(*tasks, return_exceptions=True)
        await store.close()


def _import_listen() -> Any:
    from ritornello.cli import _listen

    return _listen


def _admin_app(engine: Engine, settings: Settings) -> Any:
    from ritornello.admin import create_app

    return create_app(
        engine, admin_token=settings.admin_token, max_body_bytes=settings.max_body_bytes
    )
