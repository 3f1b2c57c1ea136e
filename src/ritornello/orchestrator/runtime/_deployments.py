"""Deployments: discovered, registered, refreshed from the store, forgotten.

Each deployment has an invoker (the transport: HTTP, Lambda, in-process) and a protocol
adapter (the wire). The registry (``core.Registry``) holds what they serve, as data; this
module holds how to reach them. Deployments are read from the store at start and every few
seconds, so one registered through another orchestrator reaches this one.

Registering runs discovery against the URI the request names, so what it may reach is the
``HostPolicy``'s to say (``invokers._hosts``): a host it refuses is a 400 before any
connection (``InvalidRequestError``), checked again at every later connection. A failed
discovery (502) names what went wrong, never the text the endpoint answered.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from ritornello.protocol import DiscoveryResponse, ProtocolError, new_deployment_id
from ritornello.store import DeploymentRecord, Store, StoreClosedError

from .._clock import Clock
from ..core import Registry
from ..errors import EndpointError, InvalidRequestError, StateConflictError
from ..invokers import (
    MAX_ANSWER_BYTES,
    MAX_DISCOVERY_BYTES,
    Channels,
    HostDeniedError,
    HostPolicy,
    Invoker,
    InvokerError,
    RefusedStatus,
    check_uri_text,
    make_invoker,
)
from ..protocols import (
    AwsDurableProtocol,
    ProtocolAdapter,
    RestateProtocol,
    RitornelloProtocol,
    decode_discovery,
    read_discovery,
)
from ..protocols.aws_durable import WIRE as AWS_DURABLE
from ..protocols.aws_durable import Runs, check_timeout, execution_timeout_of
from ..protocols.aws_durable import discovery as aws_durable_discovery
from ._service_settings import load_overrides

log = logging.getLogger("ritornello.engine")

#: What an AWS durable function's service may be called (a URL path segment as it is).
_SERVICE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,127}")
#: Seconds a discovery may take.
DISCOVERY_TIMEOUT_S = 30.0
#: A deployment registered this recently (ms) may be registering here right now: a refresh
#: that does not find it in the store yet leaves it alone.
REGISTERING_MS = 10_000


class Deployments:
    """The endpoints this process can reach, by deployment id."""

    def __init__(
        self,
        store: Store,
        registry: Registry,
        *,
        clock: Clock,
        inprocess: dict[str, Any],
        attempt_timeout_s: float,
        signing_secret: str,
        hosts: HostPolicy,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
        max_discovery_bytes: int = MAX_DISCOVERY_BYTES,
        check: Callable[[DiscoveryResponse], Awaitable[None]] | None = None,
        counters: Counter[str] | None = None,
    ) -> None:
        self.store = store
        #: checks what an endpoint declares beyond its services (its limits) before it is kept
        self._check = check
        self.registry = registry
        self.clock = clock
        self.inprocess = inprocess
        self.attempt_timeout_s = attempt_timeout_s
        self.signing_secret = signing_secret
        #: Where HTTP deployments may be reached (settings deployment_hosts_allow / _deny).
        self.hosts = hosts
        self.max_answer_bytes = max_answer_bytes
        self.max_discovery_bytes = max_discovery_bytes
        self.protocol: ProtocolAdapter = RitornelloProtocol()
        #: the live runs of AWS durable functions, which the ingress's durable API reaches
        self.aws_durable = Runs(
            signing_secret.encode() if signing_secret else None, store.get_journal
        )
        #: the live checkpoint channels of Lambda runs, which the ingress's channel route
        #: reaches (offered once ``advertise``d a URL: ``ritornello serve``)
        self.lambda_channels = Channels(counters=counters)
        #: the refresh running now, and the one that will start when it ends (for misses that
        #: came after the running one had read the store)
        self._refreshing: asyncio.Future[None] | None = None
        self._queued: asyncio.Future[None] | None = None
        self._refresher: asyncio.Task[None] | None = None
        self.invokers: dict[str, Invoker] = {}
        self._endpoints: dict[str, tuple[ProtocolAdapter, Invoker]] = {}
        #: Deployments in the store that this process cannot reach, and why (an in-process
        #: app another process serves, a host this process's policy denies, ...).
        self._unreachable: dict[str, str] = {}

    def endpoint(self, deployment_id: str) -> tuple[ProtocolAdapter, Invoker] | None:
        """The protocol adapter and invoker of a deployment (None: not registered here)."""
        return self._endpoints.get(deployment_id)

    def missing(self, deployment_id: str) -> str:
        """Why ``deployment_id`` has no endpoint here (an attempt's error): not registered, or
        registered but not reachable from this process (with the reason)."""
        reason = self._unreachable.get(deployment_id)
        if reason is None:
            return f"deployment {deployment_id} is not registered"
        return (
            f"deployment {deployment_id} is registered but not reachable from this "
            f"orchestrator: {reason}"
        )

    def _invoker(self, uri: str) -> Invoker:
        return make_invoker(
            uri,
            self.inprocess,
            timeout_s=self.attempt_timeout_s,
            signing_secret=self.signing_secret,
            hosts=self.hosts,
            max_answer_bytes=self.max_answer_bytes,
            max_discovery_bytes=self.max_discovery_bytes,
        )

    def _add(self, record: DeploymentRecord, invoker: Invoker) -> None:
        """Serve ``record`` through ``invoker`` (InvokerError: its transport cannot carry the
        protocol the endpoint speaks)."""
        discovery = decode_discovery(record.services.encode())
        protocol: ProtocolAdapter = self.protocol
        if discovery.wire == AWS_DURABLE:
            arn = getattr(invoker, "arn", None)
            if not isinstance(arn, str):
                raise InvokerError("an aws-durable deployment is a Lambda function ARN")
            timeout_s = execution_timeout_of(discovery)
            protocol = AwsDurableProtocol(self.aws_durable, arn, timeout_s)
            self.aws_durable.functions[arn] = discovery.services[0].name
        elif discovery.wire == "restate":
            restate = RestateProtocol.of(discovery)
            invoker.speak(restate.headers(), http2=restate.http2)
            protocol = restate
        else:
            invoker.offer_stream(discovery.stream)
            if discovery.channel:
                invoker.offer_channel(self.lambda_channels)
        self.invokers[record.id] = invoker
        self._endpoints[record.id] = (protocol, invoker)
        self._unreachable.pop(record.id, None)
        self.registry.add(record, discovery)

    async def _drop(self, deployment_id: str) -> None:
        self._unreachable.pop(deployment_id, None)
        self.registry.remove(deployment_id)
        found = self._endpoints.pop(deployment_id, None)
        if found is not None and isinstance(found[0], AwsDurableProtocol):
            self.aws_durable.functions.pop(found[0].function_arn, None)
        invoker = self.invokers.pop(deployment_id, None)
        if invoker is not None:
            await invoker.close()

    async def refresh_after_now(self) -> None:
        """Wait for a refresh that starts after this call: one shared by every caller waiting
        at the same time (a miss on an unknown service: the deployment may have been
        registered through another orchestrator a moment ago).

        Timeline (A registers through another orchestrator; B and C miss here)::

            refresh 1 reads ─── A's registration lands ─── B misses ── C misses
            refresh 1 ends ──▶ refresh 2 starts (B's and C's), reads, sees A ──▶ B, C found

        A refresh already running when a miss arrives may have read the store before the
        registration, so the miss waits for the next one; misses arriving meanwhile share it.
        At most one refresh runs at a time, whatever the rate of misses."""
        loop = asyncio.get_running_loop()
        if self._refreshing is None:
            self._refreshing = loop.create_future()
            self._refresher = loop.create_task(self._run_refresh())
            await asyncio.shield(self._refreshing)
            return
        if self._queued is None:
            self._queued = loop.create_future()
        await asyncio.shield(self._queued)

    async def _run_refresh(self) -> None:
        """Run refreshes back to back while misses queue behind the running one."""
        while self._refreshing is not None:
            done = self._refreshing
            try:
                await self.refresh()
            except BaseException as exc:  # every waiter sees the store's failure
                if not done.done():
                    done.set_exception(exc)
                    done.exception()  # retrieved: waiters may all have given up
            else:
                if not done.done():
                    done.set_result(None)
            self._refreshing, self._queued = self._queued, None

    async def refresh(self) -> None:
        """Load deployments registered (or removed) through any orchestrator sharing the
        store, and the operators' service settings (``_service_settings``)."""
        self.registry.set_overrides(await load_overrides(self.store))
        stored = {dep.id: dep for dep in await self.store.list_deployments()}
        for gone in set(self._unreachable) - set(stored):
            del self._unreachable[gone]
        recent = self.clock.now_ms() - REGISTERING_MS
        for dep_id in [
            d.id
            for d in self.registry.deployments.values()
            if d.id not in stored and d.created_at < recent
        ]:
            await self._drop(dep_id)
        for dep in stored.values():
            known = self.registry.deployments.get(dep.id)
            if known is not None and known.services == dep.services and known.uri == dep.uri:
                continue
            try:
                invoker = self._invoker(dep.uri)
            except InvokerError as exc:
                if self._unreachable.get(dep.id) != str(exc):  # once, not at every refresh
                    log.warning("deployment %s (%s) not reachable here: %s", dep.id, dep.uri, exc)
                self._unreachable[dep.id] = str(exc)
                continue
            if known is not None:
                await self._drop(dep.id)
            try:
                self._add(dep, invoker)
            except InvokerError as exc:
                log.warning("deployment %s (%s) not reachable here: %s", dep.id, dep.uri, exc)
                self._unreachable[dep.id] = str(exc)
                await invoker.close()

    async def register(
        self,
        uri: str,
        *,
        assume_role_arn: str | None = None,
        use_http_11: bool = False,
        limit: str | None = None,
    ) -> DeploymentRecord:
        """Discover what ``uri`` serves and register it (re-registering a URI refreshes it).

        ``uri`` may be a qualified Lambda function ARN; ``assume_role_arn`` (Lambda only) is
        then kept in the stored URI (``ARN?assume_role_arn=...``) so it survives restarts.
        A URI with whitespace or control characters is refused, never stripped.
        A Restate SDK endpoint is reached over HTTP/2 in BIDI_STREAM mode when it serves that,
        else over HTTP/1.1 (``use_http_11``: always; ``_discover``). ``limit``: kept as the
        limit of each of its services that names none (the stored discovery carries it).
        """
        try:
            check_uri_text(uri)
        except InvokerError as exc:
            raise InvalidRequestError(str(exc)) from None
        if uri.startswith("arn:"):
            from ..invokers import parse_function_arn  # boto3 only for Lambda deployments

            try:
                uri = parse_function_arn(uri, assume_role_arn).uri
            except InvokerError as exc:
                raise InvalidRequestError(str(exc)) from None
        elif assume_role_arn is not None:
            raise InvalidRequestError("assume_role_arn applies to Lambda ARNs only")
        try:
            invoker = self._invoker(uri)
        except InvokerError as exc:
            raise InvalidRequestError(str(exc)) from None
        try:
            async with asyncio.timeout(DISCOVERY_TIMEOUT_S):
                discovery = await self._discover(invoker, use_http_11)
        except HostDeniedError as exc:  # refused before connecting: the request's fault
            await invoker.close()
            raise InvalidRequestError(str(exc)) from None
        except (InvokerError, ProtocolError, TimeoutError, ValueError) as exc:
            await invoker.close()
            raise EndpointError(f"discovery at {uri} failed: {exc}") from None
        for svc in discovery.services:
            known = self.registry.service(svc.name)
            if known is not None and known[0].kind != svc.kind:
                await invoker.close()
                raise StateConflictError(
                    f"service {svc.name} is a {known[0].kind} in deployment {known[1]}; "
                    f"{uri} declares it a {svc.kind}"
                )
        if limit is not None:
            discovery = discovery.replace(
                services=tuple(
                    s if s.limit is not None else s.replace(limit=limit) for s in discovery.services
                ),
            )
        if self._check is not None:
            try:
                await self._check(discovery)
            except BaseException:
                await invoker.close()
                raise
        existing = next((d for d in self.registry.deployments.values() if d.uri == uri), None)
        record = DeploymentRecord(
            id=existing.id if existing else new_deployment_id(),
            uri=uri,
            services=discovery.encode().decode(),
            created_at=existing.created_at if existing else self.clock.now_ms(),
        )
        if discovery.wire != "ritornello" and not invoker.carries_others:
            await invoker.close()
            raise InvalidRequestError(
                f"{uri} speaks {discovery.wire}, which this transport cannot carry"
            )
        await self.store.put_deployment(record)
        if existing is not None:
            await self._drop(existing.id)
        self._add(record, invoker)
        return record

    async def register_durable_function(
        self, arn: str, service: str, execution_timeout_s: Any = None
    ) -> DeploymentRecord:
        """Register the AWS durable function ``arn`` (qualified) as service ``service`` with one
        handler, ``run`` (docs/aws-durable.md). Nothing is invoked: such a function answers
        only durable invocation events. Re-registering the ARN refreshes it in place.
        ``execution_timeout_s``: AWS's ``ExecutionTimeout`` (an integer from 1 to 31,622,400,
        else InvalidRequestError), kept in the stored discovery; each execution started from
        then on ends TIMED_OUT past it (``protocols.aws_durable._deadline``)."""
        try:
            timeout_s = check_timeout(execution_timeout_s)
        except ValueError as exc:
            raise InvalidRequestError(str(exc)) from None
        try:
            check_uri_text(arn)
            from ..invokers import parse_function_arn  # boto3 only for Lambda deployments

            uri = parse_function_arn(arn).uri
        except InvokerError as exc:
            raise InvalidRequestError(str(exc)) from None
        if not _SERVICE_NAME.fullmatch(service):
            raise InvalidRequestError(
                f"service {service!r}: a name of 1 to 128 letters, digits, '_', '-' or '.', "
                "starting with a letter or '_'"
            )
        known = self.registry.service(service)
        existing = next((d for d in self.registry.deployments.values() if d.uri == uri), None)
        if known is not None and (existing is None or known[1] != existing.id):
            raise StateConflictError(
                f"service {service} is already served by deployment {known[1]}"
            )
        try:
            invoker = self._invoker(uri)
        except InvokerError as exc:
            raise InvalidRequestError(str(exc)) from None
        record = DeploymentRecord(
            id=existing.id if existing else new_deployment_id(),
            uri=uri,
            services=aws_durable_discovery(service, timeout_s).encode().decode(),
            created_at=existing.created_at if existing else self.clock.now_ms(),
        )
        await self.store.put_deployment(record)
        if existing is not None:
            await self._drop(existing.id)
        self._add(record, invoker)
        return record

    @staticmethod
    async def _discover(invoker: Invoker, use_http_11: bool) -> DiscoveryResponse:
        """What the endpoint serves, and over which HTTP.

        HTTP/1.1 first (Ritornello's endpoints serve nothing else). A Restate SDK endpoint is
        then asked again over HTTP/2, and reached that way if it serves BIDI_STREAM there (a
        handler's steps then share one exchange); an endpoint that refuses HTTP/1.1 (an
        HTTP/2-only server: TypeScript's ``serve()``) is asked over HTTP/2 alone. The first
        failure is reported if both fail. ``use_http_11``: never HTTP/2."""
        try:
            discovery = read_discovery(await invoker.discover())  # Ritornello's, or a manifest
        except HostDeniedError:
            raise
        except InvokerError as first:
            answered = isinstance(first, RefusedStatus) and first.status != 505
            if use_http_11 or not invoker.speaks_h2 or answered:
                raise  # an HTTP/1.1 answer (but "version not supported"): it speaks HTTP/1.1
            try:
                discovery = read_discovery(await invoker.discover_h2())
            except InvokerError:
                raise first from None
            if discovery.wire == "ritornello":
                raise ProtocolError("a Ritornello endpoint must serve HTTP/1.1") from None
            return discovery.replace(wire_info={**(discovery.wire_info or {}), "http2": True})
        if discovery.wire != "restate" or use_http_11 or not invoker.speaks_h2:
            return discovery
        try:
            over_h2 = read_discovery(await invoker.discover_h2())
        except (InvokerError, ProtocolError) as exc:
            log.info("staying on HTTP/1.1 (HTTP/2 discovery: %s)", exc)
            return discovery
        info = over_h2.wire_info or {}
        if over_h2.wire != "restate" or info.get("mode") != "BIDI_STREAM":
            return discovery
        return over_h2.replace(wire_info={**info, "http2": True})

    async def delete(self, deployment_id: str) -> bool:
        """Forget a deployment (invocations pinned to it fail their attempts until re-added)."""
        found = await self.store.delete_deployment(deployment_id)
        await self._drop(deployment_id)
        return found

    async def close(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            await asyncio.gather(self._refresher, return_exceptions=True)
        for waiting in (self._refreshing, self._queued):
            if waiting is not None and not waiting.done():
                waiting.set_exception(StoreClosedError("the orchestrator is shutting down"))
                waiting.exception()  # retrieved: nobody may be waiting any more
        self._refreshing = self._queued = None
        for invoker in self.invokers.values():
            await invoker.close()
