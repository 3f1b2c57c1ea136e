"""``FaultyStore``: a store that fails on purpose, for tests of everything above the store.

It wraps another store and, with the given probabilities, turns a call into one of the failures
a real backend (DynamoDB above all) produces under load. Each is an ``UnavailableError``, as the
backend would raise it:

- ``throttle``: the request was refused (ProvisionedThroughputExceeded); nothing happened.
- ``conflict``: a DynamoDB TransactionConflict (another transaction held an item); nothing
  happened. Retryable, so *not* a ``ConflictError``, which means a condition failed.
- ``internal``: an internal server error before the request was applied; nothing happened.
- ``ambiguous``: the request *was* applied, then the answer was lost (a timeout, a dropped
  connection): the caller cannot tell this from the three above.

Faults apply to ``commit`` unless ``ops`` names other methods (reads, lease operations). Each
faulted call draws once from the store's own ``random.Random(seed)``, so a sequence of calls
fails the same way for the same seed. ``injected`` counts the faults raised, by kind.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TypedDict, TypeVar

from ritornello.store._base import Store
from ritornello.store._records import (
    CommitUnit,
    DeploymentRecord,
    InvocationRecord,
    LeaseRecord,
    MemberRecord,
    TimerRecord,
)
from ritornello.store.errors import UnavailableError

T = TypeVar("T")

#: Fault kinds, in the order a draw is mapped onto them.
KINDS = ("throttle", "conflict", "internal", "ambiguous")

_MESSAGES = {
    "throttle": "injected: throttled",
    "conflict": "injected: transaction conflict",
    "internal": "injected: internal error",
    "ambiguous": "injected: ambiguous failure (the request was applied)",
}

#: The methods faults can be injected into (``ops``): every method but ``open`` and ``close``.
OPS = frozenset(Store.__abstractmethods__) - {"open", "close"}


class FaultSpec(TypedDict, total=False):
    """Keyword arguments of ``FaultyStore`` (what ``FaultyStore.spec_from_text`` returns)."""

    seed: int
    throttle: float
    conflict: float
    internal: float
    ambiguous: float
    ops: tuple[str, ...]


class FaultyStore(Store):
    """Delegates every method to ``inner``, injecting faults (see the module docstring)."""

    def __init__(
        self,
        inner: Store,
        *,
        seed: int = 0,
        throttle: float = 0.0,
        conflict: float = 0.0,
        internal: float = 0.0,
        ambiguous: float = 0.0,
        ops: Iterable[str] = ("commit",),
    ) -> None:
        rates = {
            "throttle": throttle,
            "conflict": conflict,
            "internal": internal,
            "ambiguous": ambiguous,
        }
        for kind, rate in rates.items():
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"fault rate {kind}={rate} is not between 0 and 1")
        if sum(rates.values()) > 1.0 + 1e-9:
            raise ValueError(f"fault rates add up to more than 1: {rates}")
        self.ops = frozenset(ops)
        unknown = self.ops - OPS
        if unknown:
            raise ValueError(f"unknown store methods in ops: {sorted(unknown)}")
        self.inner = inner
        self.exclusive = inner.exclusive
        self.rates = rates
        self.injected: Counter[str] = Counter()
        self._rng = random.Random(seed)

    @staticmethod
    def spec_from_text(text: str) -> FaultSpec:
        """Parse ``"ambiguous=0.05,throttle=0.01,seed=3"`` (``ops=commit+renew_lease`` names
        the methods) into keyword arguments. Raises ValueError for anything else."""
        spec: FaultSpec = {}
        for item in text.split(","):
            item = item.strip()
            if not item:
                continue
            name, sep, value = (part.strip() for part in item.partition("="))
            if not sep or not value:
                raise ValueError(f"bad fault spec item {item!r} (expected name=value)")
            try:
                if name == "seed":
                    spec["seed"] = int(value)
                elif name == "ops":
                    spec["ops"] = tuple(op.strip() for op in value.split("+") if op.strip())
                elif name == "throttle":
                    spec["throttle"] = float(value)
                elif name == "conflict":
                    spec["conflict"] = float(value)
                elif name == "internal":
                    spec["internal"] = float(value)
                elif name == "ambiguous":
                    spec["ambiguous"] = float(value)
                else:
                    raise ValueError(f"unknown fault {name!r} (expected one of {KINDS})")
            except ValueError as error:
                raise ValueError(f"bad fault spec item {item!r}: {error}") from None
        return spec

    def _draw(self, op: str) -> str | None:
        """The fault to inject into this call of ``op``, if any (one draw per faulted call)."""
        if op not in self.ops:
            return None
        x = self._rng.random()
        for kind in KINDS:
            x -= self.rates[kind]
            if x < 0.0:
                return kind
        return None

    async def _call(self, op: str, call: Callable[[], Awaitable[T]]) -> T:
        kind = self._draw(op)
        if kind is None:
            return await call()
        if kind != "ambiguous":
            self.injected[kind] += 1
            raise UnavailableError(f"{_MESSAGES[kind]} ({op})")
        await call()  # an error here is the honest answer: nothing was applied
        self.injected[kind] += 1
        raise UnavailableError(f"{_MESSAGES[kind]} ({op})")

    # ------------------------------------------------------------------ lifecycle

    async def open(self) -> None:
        await self.inner.open()
        self.partitions = self.inner.partitions
        self.exclusive = self.inner.exclusive

    async def close(self) -> None:
        await self.inner.close()

    # ------------------------------------------------------------------ delegation

    async def commit(self, unit: CommitUnit) -> None:
        await self._call("commit", lambda: self.inner.commit(unit))

    async def get_invocation(self, invocation_id: str) -> InvocationRecord | None:
        return await self._call("get_invocation", lambda: self.inner.get_invocation(invocation_id))

    async def get_journal(self, invocation_id: str) -> tuple[list[str], list[str]]:
        return await self._call("get_journal", lambda: self.inner.get_journal(invocation_id))

    async def get_state(self, service: str, key: str) -> dict[str, str]:
        return await self._call("get_state", lambda: self.inner.get_state(service, key))

    async def list_invocations(
        self,
        *,
        statuses: Sequence[str] | None = None,
        service: str | None = None,
        key: str | None = None,
        after_seq: int = -1,
        limit: int = 1000,
        partition: int | None = None,
    ) -> list[InvocationRecord]:
        return await self._call(
            "list_invocations",
            lambda: self.inner.list_invocations(
                statuses=statuses,
                service=service,
                key=key,
                after_seq=after_seq,
                limit=limit,
                partition=partition,
            ),
        )

    async def find_idempotent(
        self, service: str, handler: str, key: str | None, idempotency_key: str
    ) -> InvocationRecord | None:
        return await self._call(
            "find_idempotent",
            lambda: self.inner.find_idempotent(service, handler, key, idempotency_key),
        )

    async def list_expired(
        self, before_ms: int, limit: int = 500, partition: int | None = None
    ) -> list[InvocationRecord]:
        return await self._call(
            "list_expired", lambda: self.inner.list_expired(before_ms, limit, partition)
        )

    async def list_timers(self, partition: int | None = None) -> list[TimerRecord]:
        return await self._call("list_timers", lambda: self.inner.list_timers(partition))

    async def max_seq(self) -> int:
        return await self._call("max_seq", self.inner.max_seq)

    async def put_deployment(self, deployment: DeploymentRecord) -> None:
        await self._call("put_deployment", lambda: self.inner.put_deployment(deployment))

    async def list_deployments(self) -> list[DeploymentRecord]:
        return await self._call("list_deployments", self.inner.list_deployments)

    async def delete_deployment(self, deployment_id: str) -> bool:
        return await self._call(
            "delete_deployment", lambda: self.inner.delete_deployment(deployment_id)
        )

    async def list_leases(self) -> list[LeaseRecord]:
        return await self._call("list_leases", self.inner.list_leases)

    async def claim_lease(
        self, partition: int, owner: str, expect: LeaseRecord | None, now_ms: int
    ) -> LeaseRecord:
        return await self._call(
            "claim_lease", lambda: self.inner.claim_lease(partition, owner, expect, now_ms)
        )

    async def renew_lease(self, lease: LeaseRecord, now_ms: int) -> LeaseRecord:
        return await self._call("renew_lease", lambda: self.inner.renew_lease(lease, now_ms))

    async def release_lease(self, lease: LeaseRecord, now_ms: int) -> None:
        await self._call("release_lease", lambda: self.inner.release_lease(lease, now_ms))

    async def heartbeat(self, node: str, address: str, now_ms: int) -> None:
        await self._call("heartbeat", lambda: self.inner.heartbeat(node, address, now_ms))

    async def list_members(self) -> list[MemberRecord]:
        return await self._call("list_members", self.inner.list_members)

    async def remove_member(self, node: str) -> None:
        await self._call("remove_member", lambda: self.inner.remove_member(node))

    async def read_inbox(self, partition: int, limit: int = 1000) -> list[tuple[str, str]]:
        return await self._call("read_inbox", lambda: self.inner.read_inbox(partition, limit))

    async def ack_inbox(
        self, partition: int, message_ids: Sequence[str], epoch: int | None = None
    ) -> None:
        await self._call("ack_inbox", lambda: self.inner.ack_inbox(partition, message_ids, epoch))
