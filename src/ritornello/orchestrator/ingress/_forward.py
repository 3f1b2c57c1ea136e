"""Forwarding of a durable function's checkpoint and state requests to the orchestrator that
drives its execution (docs/aws-durable.md, "Several orchestrators").

A function reaches the durable API through one URL (its ``AWS_ENDPOINT_URL_LAMBDA``): in a
cluster, a load balancer in front of several orchestrators. Only the orchestrator driving an
attempt holds its live run (``protocols.aws_durable.Runs``, in memory) — the leader of the
execution's partition. So ``CheckpointDurableExecution`` and ``GetDurableExecutionState``
reaching another orchestrator are forwarded, once, to that leader; everything else of the API
(get, history, list, stop, callbacks) reads or writes the store and is served by any of them.

Invariants:

* **Routing is by partition lease, never by token.** An orchestrator holding the lease of the
  execution's partition serves the request itself (its token check refuses a zombie's token);
  one not holding it forwards the request untouched to the lease's owner (the ``member``
  record's ``address``: ``advertise_url``) and returns its answer unchanged. The token is
  checked by the owner alone (it holds the key and the live run): forwarding never answers a
  checkpoint itself, so a zombie's token is refused wherever it lands.
* **One hop.** A forwarded request carries ``x-ritornello-forwarded: NODE;MAC``, the MAC an
  HMAC-SHA256, under a key derived from the cluster's shared secret (``signing_secret``, else
  ``ingress_token``), of the method, the path and query as sent, the sender and the body. A
  request carrying the header is never forwarded again: the orchestrator it reaches serves it
  if it holds the partition, else answers 503 (the lease moved meanwhile; the SDK retries). A
  header whose MAC does not verify is refused (403 ``AccessDeniedException``) wherever it
  lands. So a request travels at most one hop, and a client gains nothing from the header:
  a genuine one only stops forwarding, and it carries no authority (the owner checks the token
  exactly as for a request sent to it directly).
* **Without a shared secret** (neither setting set) the header cannot be authenticated: it is
  then a hop marker only, honoured as "do not forward again" and nothing else — still at most
  one hop, still no authority; a client can only stop its own request from being forwarded.
* **Unknown or unreachable owner**: a 503 ``ServiceException`` in Lambda's error shape, which
  botocore and the JavaScript SDK retry (5xx are transient to both; the durable SDKs count a
  5xx from the API as a retryable invocation error), e.g. while a dead leader's lease expires.

Timeline (the function reaches B; A leads the execution's partition; A dies)::

    fn ──checkpoint──▶ B ──forward (signed)──▶ A: token ✓, committed ──▶ B ──▶ fn
    A killed -9:  fn ──checkpoint──▶ B ──forward──▶ A ✗ refused: 503, retried by the SDK
    B claims A's partition (two lease periods), re-drives the attempt (a new run, token b)
    zombie fn ──checkpoint(a)──▶ B (leader now: serves it) ✗ Invalid checkpoint token
    new fn ──checkpoint(b)──▶ B ✓
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import unquote

from ritornello.store import StoreError

from ..invokers import HttpClientError, HttpPool
from ..protocols.aws_durable import invocation_of
from ..runtime import Engine
from ._input import read_body

log = logging.getLogger("ritornello.ingress")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
#: An answer to pass on: (status, headers, body).
Answer = tuple[int, list[tuple[bytes, bytes]], bytes]

#: The header marking a request forwarded by another orchestrator (``NODE;MAC``).
FORWARDED = "x-ritornello-forwarded"
_FORWARDED_B = FORWARDED.encode()
#: The API's operations served only where the execution's live run is.
_ROUTED = {("POST", "checkpoint"), ("GET", "state")}
#: How long the owners read from the store are trusted (a failure forgets them at once).
VIEW_S = 1.0
#: How long a forwarded request may take (the owner waits up to 60 s for a commit).
FORWARD_TIMEOUT_S = 65.0
#: The answer headers passed back (with the status and the body).
_PASSED = ("content-type", "x-amzn-errortype")


class ForwardError(Exception):
    """An answer in Lambda's error shape, given instead of forwarding."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message


def forwarding_key(signing_secret: str, ingress_token: str) -> bytes | None:
    """The key forwarded requests are signed with: derived from the first secret set (every
    orchestrator of a cluster shares both), so it is never the secret itself; None when
    neither is set."""
    secret = signing_secret or ingress_token
    if not secret:
        return None
    return hmac.new(secret.encode(), b"ritornello forwarding v1", hashlib.sha256).digest()


def sign(key: bytes, node: str, method: str, target: bytes, body: bytes) -> str:
    """The header value of a request forwarded by ``node`` (``target``: path and query)."""
    mac = hmac.new(key, b"%s\n%s\n%s\n" % (method.encode(), target, node.encode()), "sha256")
    mac.update(body)
    return f"{node};{mac.hexdigest()}"


def genuine(key: bytes | None, value: str, method: str, target: bytes, body: bytes) -> bool:
    """Whether a forwarding header was made by an orchestrator of this cluster (without a key:
    any header is a hop marker)."""
    if key is None:
        return True
    node, sep, _ = value.rpartition(";")
    return bool(sep) and hmac.compare_digest(value, sign(key, node, method, target, body))


class Forwarder:
    """Decides where a durable-API request is served, and forwards it there."""

    def __init__(self, engine: Engine, *, ingress_token: str, max_body_bytes: int) -> None:
        self.engine = engine
        self.max_body_bytes = max_body_bytes
        self._ingress_token = ingress_token
        self._pools: dict[str, HttpPool] = {}
        # partition -> owner node, node -> address; trusted until ``_fresh_until``
        self._owners: dict[int, str | None] = {}
        self._addresses: dict[str, str] = {}
        self._fresh_until = 0.0
        self._reading = asyncio.Lock()

    async def route(self, scope: Scope, receive: Receive) -> tuple[Receive, Answer | None]:
        """Where the request goes: ``(receive, None)`` to serve it here (``receive`` replays
        the body if it had to be read), or ``(receive, answer)``: the owner's answer, to pass
        on unchanged. Raises ``ForwardError`` for a refusal (forged header, owner unknown or
        unreachable, lease moved)."""
        partition = self._partition(scope)
        if partition is None:
            return receive, None  # not an operation that needs the live run
        header = _header(scope)
        if header is None and self.engine.leadership.holds(partition):
            return receive, None  # the common case: nothing read, nothing added
        method: str = scope["method"]
        target = _target(scope)
        body = await self._body(receive)
        replay = _replay(body)
        if header is not None:
            if not genuine(self._key, header, method, target, body):
                self._count("refused_forged")
                raise ForwardError(
                    403,
                    "AccessDeniedException",
                    f"the {FORWARDED} header is not an orchestrator's (forwarded requests "
                    "are signed with the cluster's shared secret)",
                )
            if self.engine.leadership.holds(partition):
                self._count("served")
                return replay, None
            self._count("not_here")
            raise ForwardError(
                503,
                "ServiceException",
                f"this orchestrator does not lead the execution's partition {partition}; retry",
            )
        address = await self._owner(partition)
        if address is None:
            return replay, None  # led here after all (a lease claimed since the check)
        return replay, await self._forward(address, method, target, scope, body)

    @functools.cached_property
    def _key(self) -> bytes | None:
        """The key forwarded requests are signed with (``forwarding_key``; read on first use:
        nothing of the engine is touched before a request needs it)."""
        return forwarding_key(self.engine.deployments.signing_secret, self._ingress_token)

    def _partition(self, scope: Scope) -> int | None:
        """The partition of the execution a checkpoint or state request names (None: the
        request is not one, or names no execution of ours: the API answers it)."""
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        segs = raw_path.split(b"?", 1)[0].decode("latin-1").split("/")
        # "", "2025-12-01", "durable-executions", ARN, op
        if len(segs) != 5 or segs[2] != "durable-executions":
            return None
        if (scope["method"], segs[4]) not in _ROUTED:
            return None
        try:
            inv_id = invocation_of(unquote(segs[3], errors="strict"))
        except UnicodeDecodeError:
            return None
        if inv_id is None:
            return None
        # an execution is an invocation of a service (no key): its partition is by its id
        return self.engine.core.partition_of("", None, inv_id)

    async def _body(self, receive: Receive) -> bytes:
        return await read_body(
            receive,
            self.max_body_bytes,
            lambda: ForwardError(413, "RequestTooLargeException", "the request body is too large"),
        )

    async def _owner(self, partition: int) -> str | None:
        """The address of the orchestrator leading ``partition``; None when it is this one.
        ForwardError (503) when no live owner is known or the store cannot say."""
        if time.monotonic() >= self._fresh_until:
            async with self._reading:
                if time.monotonic() >= self._fresh_until:
                    await self._read_owners()
        node = self._owners.get(partition)
        if node == self.engine.node or self.engine.leadership.holds(partition):
            return None
        address = self._addresses.get(node) if node is not None else None
        if not address:
            self._count("no_owner")
            self._fresh_until = 0.0
            raise ForwardError(
                503,
                "ServiceException",
                f"no orchestrator leads the execution's partition {partition} now; retry",
            )
        return address

    async def _read_owners(self) -> None:
        try:
            leases = await self.engine.store.list_leases()
            members = await self.engine.store.list_members()
        except StoreError as exc:
            raise ForwardError(
                503, "ServiceException", f"the store cannot say who leads: {exc}; retry"
            ) from None
        self._owners = {lease.partition: lease.owner for lease in leases}
        self._addresses = {m.node: m.address for m in members}
        self._fresh_until = time.monotonic() + VIEW_S

    async def _forward(
        self, address: str, method: str, target: bytes, scope: Scope, body: bytes
    ) -> Answer:
        pool = self._pools.get(address)
        if pool is None:
            pool = self._pools[address] = HttpPool(
                address.rstrip("/"), limit=64, connect_timeout=2.0, idle_timeout=30.0
            )
        headers = {FORWARDED: self._mark(method, target, body)}
        for name, value in scope.get("headers", ()):
            if name in (b"content-type", b"authorization"):
                headers[name.decode("latin-1")] = value.decode("latin-1")
        try:
            async with asyncio.timeout(FORWARD_TIMEOUT_S):
                status, answer_headers, answer = await pool.request(
                    method, target.decode("latin-1"), body if method == "POST" else None, headers
                )
        except (HttpClientError, OSError, TimeoutError) as exc:
            self._count("unreachable")
            self._fresh_until = 0.0  # read the owners again: the lease may have moved
            log.warning("forwarding to %s failed: %s", address, exc)
            raise ForwardError(
                503,
                "ServiceException",
                "the orchestrator leading this execution cannot be reached; retry",
            ) from None
        if status == 503:
            self._fresh_until = 0.0
        self._count("forwarded")
        passed = [
            (name.encode("latin-1"), answer_headers[name].encode("latin-1"))
            for name in _PASSED
            if name in answer_headers
        ]
        return status, passed, answer

    def _mark(self, method: str, target: bytes, body: bytes) -> str:
        if self._key is None:
            return f"{self.engine.node};"
        return sign(self._key, self.engine.node, method, target, body)

    def _count(self, what: str) -> None:
        """One more ``durable_forward_WHAT`` in the engine's counters (GET /metrics:
        ``ritornello_engine_events``): ``forwarded`` (sent on, answered), ``served`` (a
        forwarded request served here), ``refused_forged``, ``not_here`` (a forwarded request
        reached a non-leader), ``no_owner``, ``unreachable``."""
        self.engine.counters["durable_forward_" + what] += 1


def _header(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == _FORWARDED_B:
            return str(value.decode("latin-1"))
    return None


def _target(scope: Scope) -> bytes:
    """The request's path and query as sent."""
    raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
    query: bytes = scope.get("query_string", b"")
    return raw_path + b"?" + query if query else raw_path


def _replay(body: bytes) -> Receive:
    """A ``receive`` that gives ``body`` again (it was read to sign or forward it)."""
    sent = False

    async def receive() -> MutableMapping[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive
