"""The orchestrator process: store + engine + ingress (:8080) + admin (:9070) on one loop.

SIGTERM/SIGINT stop it cleanly: the servers stop accepting, drivers are cancelled, pending
commits are flushed and the store is closed. Whatever was in flight is re-driven at the next
start (nothing was acknowledged before its commit, so nothing is lost).

A restart is on the clock: invocations that were in flight wait for it. So the engine
recovers first, and nothing the HTTP side alone needs stands in its way: uvicorn is imported
on a thread while the engine recovers, and both ports listen as soon as it is in. The admin
API's app (FastAPI and pydantic: about 0.4 s of imports, 0.1 s of routes) is built on a thread
before listening when recovery re-drove nothing (on the loop, as it always was: nothing waits
on it then); otherwise on a thread when its first request arrives, or ``ADMIN_BUILD_DELAY_S``
after listening if none did: built at once, it would take the GIL from the loop while the loop
re-drives what was in flight. The price: the first admin request after a restart with work in
flight may wait about half a second.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import ipaddress
import logging
import signal
import socket
import sys
import threading
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from ritornello import _child
from ritornello.cli._connections import Limits, per_port, raise_open_file_limit
from ritornello.cli._logs import log_handler
from ritornello.cli._plain import WRITER_MODULE
from ritornello.orchestrator import (
    ConfigError,
    Engine,
    HeaderLimits,
    IngressApp,
    Settings,
    TracedIngress,
    load_settings,
    tracing_from_env,
)
from ritornello.orchestrator.ingress import advertised_url
from ritornello.protocol import RetryPolicy
from ritornello.store import StoreError, open_store
from ritornello.store.faults import FaultyStore
from ritornello.store.retrying import RetryingStore

if TYPE_CHECKING:
    from ritornello.cli._listen import Server

log = logging.getLogger("ritornello.serve")


def configure_logging(settings: Settings) -> None:
    """The root logger: ``log_level``, on stderr in ``log_format`` (``_logs``)."""
    logging.basicConfig(
        level=settings.log_level.upper(), handlers=[log_handler(settings.log_format)]
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
    except (StoreError, PortInUseError) as exc:  # as the typer command reports it
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    return True


class PortInUseError(Exception):
    """A port serve would listen on is taken; the message names the flag that changes it."""


def check_ports(settings: Settings) -> None:
    """Bind each port once, and let it go, before the store is opened: a port in use is a
    one-line error naming its flag, not uvicorn's failure after recovery. (Another process
    may still take it in between; uvicorn then reports that itself.)"""
    for what, flag, port in (
        ("the ingress", "--ingress-port", settings.ingress_port),
        ("the admin API", "--admin-port", settings.admin_port),
    ):
        if port == 0:
            continue
        family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            try:
                probe.bind((settings.host, port))
            except OSError as exc:
                raise PortInUseError(
                    f"cannot listen on {settings.host}:{port} for {what} "
                    f"({exc.strerror or exc}): choose another port with {flag}"
                ) from None


#: Seconds after listening when the admin app is built if no admin request came first.
ADMIN_BUILD_DELAY_S = 2.0


class AdminApp:
    """The admin API's ASGI app: built at once (``build_now``) or on a thread on first use
    (``start``), requests that arrive meanwhile waiting for it. A build that fails on the
    thread is logged, and fails every request."""

    def __init__(self, build: Callable[[], Any]) -> None:
        self._build = build
        self._app: Any = None
        self._future: asyncio.Future[Any] | None = None

    def build_now(self) -> None:
        """Build it here and now (on the caller's thread), unless it was built already."""
        if self._app is None and self._future is None:
            self._app = self._build()

    def start(self) -> asyncio.Future[Any]:
        """Build it on a thread, once (nothing to do if ``build_now`` did); its future."""
        if self._future is None:
            if self._app is not None:
                self._future = asyncio.get_running_loop().create_future()
                self._future.set_result(self._app)
            else:
                (self._future,) = _on_a_thread(self._build)
                self._future.add_done_callback(_log_failure)
        return self._future

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        app = self._app
        if app is None:  # a request that goes away does not cancel the build
            app = self._app = await asyncio.shield(self.start())
        await app(scope, receive, send)


def _log_failure(future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("the admin API could not be built", exc_info=future.exception())


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
    # The store's reader thread (and the SQLite writer, when it runs on a thread) needs the GIL
    # for a few microseconds per batch; with the default 5 ms switch interval it waits behind a
    # busy event loop for up to 5 ms each time (a convoy that capped throughput). 0.5 ms keeps
    # the hand-off short. The default SQLite writer is a process of its own and needs no GIL.
    sys.setswitchinterval(0.0005)
    check_ports(settings)
    limits = connection_limits(settings, raise_open_file_limit())
    store = raw_store = open_store(settings.store)
    if getattr(store, "writer", None) != "process":  # no SQLite writer process: not needed
        _child.discard(WRITER_MODULE)
    if hasattr(store, "synchronous"):
        store.synchronous = settings.sqlite_synchronous
    if settings.store_faults:
        store = FaultyStore(store, **FaultyStore.spec_from_text(settings.store_faults))
    if settings.store_faults or settings.store.startswith("dynamodb:"):
        store = RetryingStore(store, budget_s=settings.store_retry_budget_s)
    await store.open()
    writer_failed: asyncio.Future[StoreError] | None = getattr(raw_store, "writer_failed", None)
    tracing = tracing_from_env()  # None unless OTEL_EXPORTER_OTLP_*ENDPOINT is set
    if tracing is not None and inprocess:  # dev: its handlers' step spans go out too
        tracing.trace_handlers_here()
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
        drain_s=settings.drain_s,
        inbox_interval_s=settings.inbox_interval_s,
        watchdog_interval_s=settings.watchdog_interval_s,
        schedule_interval_s=settings.schedule_interval_s,
        address=settings.advertise_url or f"http://{settings.host}:{settings.ingress_port}",
        signing_secret=settings.signing_secret,
        deployment_hosts=settings.host_policy(),
        max_answer_bytes=settings.max_answer_bytes,
        max_discovery_bytes=settings.max_discovery_bytes,
        limits=settings.limits,
        tracing=tracing,
    )
    warn_if_open(settings)
    warn_if_unadvertised(settings)
    # Lambda runs checkpoint to this ingress (docs/protocol.md, "Checkpoint channel")
    channel_url = advertised_url(settings.advertise_url, settings.host, settings.ingress_port)
    engine.deployments.lambda_channels.advertise(channel_url)
    (listen_module,) = _on_a_thread(_import_listen)  # off the loop while it recovers
    admin = AdminApp(lambda: _admin_app(engine, settings))
    servers: list[Server] = []
    tasks: list[asyncio.Task[None]] = []
    build_later: asyncio.TimerHandle | None = None
    try:
        tune_gc()
        await engine.start()
        if on_started is not None:  # before listening: no request finds the app unregistered
            await on_started(engine)
        if engine.gauges().running == 0:  # nothing re-driven: built now, on the loop, as it
            admin.build_now()  # always was; it answers its first request at once
        ingress = IngressApp(
            engine,
            max_body_bytes=settings.max_body_bytes,
            token=settings.ingress_token,
            redact_headers=settings.redact_headers,
            max_header_bytes=settings.max_header_bytes,
            max_headers=settings.max_headers,
        )
        app: Any = ingress if tracing is None else TracedIngress(ingress, tracing)
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        listen = await listen_module
        own_log = settings.log_format == "text"  # json: uvicorn's records through ours
        servers = [
            listen.server(
                app,
                settings.host,
                settings.ingress_port,
                proxy_headers=False,
                limits=limits,
                own_log=own_log,
            ),
            listen.server(
                admin, settings.host, settings.admin_port, limits=limits, own_log=own_log
            ),
        ]
        tasks = [loop.create_task(s.serve()) for s in servers]
        while not all(s.started for s in servers):
            if any(t.done() for t in tasks):
                for t in tasks:
                    if t.done() and t.exception() is not None:
                        raise t.exception()  # type: ignore[misc]
                raise SystemExit(f"could not listen on {settings.host}")
            await asyncio.sleep(0.01)
        build_later = loop.call_later(ADMIN_BUILD_DELAY_S, admin.start)
        log.info(
            "ritornello serving: ingress http://%s:%d, admin http://%s:%d, store %s",
            settings.host,
            settings.ingress_port,
            settings.host,
            settings.admin_port,
            settings.store,
        )
        failure = await _until_stopped(stop, writer_failed)
        if failure is not None:
            log.error("%s; stopping (a restart recovers what was in flight)", failure)
        else:
            log.info("shutting down")
        for s in servers:
            s.should_exit = True  # stop accepting
        await engine.stop()  # in-flight calls answer 503 with their invocation id
        await asyncio.gather(*tasks, return_exceptions=True)
        if failure is not None:
            raise failure
    finally:
        if build_later is not None:
            build_later.cancel()
        for s in servers:  # on a failure: the ones already serving stop too
            s.should_exit = True
        await engine.stop()
        await asyncio.gather(*tasks, return_exceptions=True)
        await store.close()
        if tracing is not None:  # what is batched goes out before the process ends
            await asyncio.to_thread(tracing.shutdown)


def connection_limits(settings: Settings, open_files: int) -> Limits:
    """Each port's bounds: the settings', ``max_connections`` lowered (and said so) where the
    process may not open that many files (``open_files``: its soft limit, 0 if none)."""
    most = per_port(settings.max_connections, open_files)
    if most < settings.max_connections:
        log.warning(
            "max_connections lowered from %d to %d per port: this process may open %d files "
            "(raise its limit, ulimit -n, to hold more)",
            settings.max_connections,
            most,
            open_files,
        )
    return Limits(
        max_connections=most,
        idle_timeout_s=settings.idle_timeout_s,
        header_timeout_s=settings.header_timeout_s,
        body_timeout_s=settings.body_timeout_s,
    )


def warn_if_open(settings: Settings) -> None:
    """Warn about each port served beyond this machine without a token (docs/auth.md): anyone
    who reaches the address may use it, a web page through a visitor's browser included."""
    if is_loopback(settings.host):
        return
    ports = (
        ("the ingress", settings.ingress_port, settings.ingress_token, "INGRESS", "call handlers"),
        (
            "the admin API",
            settings.admin_port,
            settings.admin_token,
            "ADMIN",
            "register deployments, change state and kill invocations",
        ),
    )
    for what, port, token, name, can in ports:
        if not token:
            log.warning(
                "serving %s on %s:%d without a token: anyone who can reach it can %s; "
                "set RITORNELLO_%s_TOKEN (docs/auth.md)",
                what,
                settings.host,
                port,
                can,
                name,
            )


def warn_if_unadvertised(settings: Settings) -> None:
    """Warn when other orchestrators sharing the store would be told a wildcard address as
    this one's (its member record): they forward durable functions' checkpoints there
    (docs/aws-durable.md), and a wildcard address reaches nobody else."""
    if settings.advertise_url or not settings.store.startswith("dynamodb:"):
        return
    try:
        wildcard = ipaddress.ip_address(settings.host.strip("[]")).is_unspecified
    except ValueError:  # a host name: other machines may reach it
        return
    if wildcard:
        log.warning(
            "listening on %s with no advertise_url: other orchestrators cannot reach this "
            "one's ingress (forwarded checkpoints fail); set RITORNELLO_ADVERTISE_URL",
            settings.host,
        )


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address to listen on) is reachable from this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may name any address
        return False


async def _until_stopped(
    stop: asyncio.Event, writer_failed: asyncio.Future[StoreError] | None
) -> StoreError | None:
    """Wait for SIGTERM/SIGINT (None) or the SQLite writer process's death (its error)."""
    stopped = asyncio.ensure_future(stop.wait())
    if writer_failed is None:
        await stopped
        return None
    try:
        await asyncio.wait((stopped, writer_failed), return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
    return writer_failed.result() if writer_failed.done() else None


#: Objects allocated between two young-generation collections (CPython's default is 700).
GC_YOUNG_THRESHOLD = 10_000


def tune_gc() -> None:
    """Collect the young generation less often, and leave what is loaded by now (modules,
    classes, the engine) out of every later collection (``gc.freeze``). Measured at greet, 64
    clients: about 8 % of the event loop's time went to the collector (2,000 collections over
    30,000 requests, the full ones 20-30 ms each); with these settings the orchestrator's CPU
    per request fell by about 7 % (docs/performance.md, session 6). Objects are still freed by
    reference counting at once; only cycles wait longer for a collection."""
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)
    gc.freeze()


def _import_listen() -> Any:
    from ritornello.cli import _listen

    return _listen


def _admin_app(engine: Engine, settings: Settings) -> Any:
    from ritornello.admin import create_app

    return create_app(
        engine,
        admin_token=settings.admin_token,
        max_body_bytes=settings.max_body_bytes,
        header_limits=HeaderLimits(settings.max_header_bytes, settings.max_headers),
    )
