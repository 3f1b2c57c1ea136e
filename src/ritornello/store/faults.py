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
from collections.abc import Awaitable, Callable, Iterable
from typing import TypedDict, TypeVar

from ritornello.store._base import Store
from ritornello.store._wrapper import StoreWrapper
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


class FaultyStore(StoreWrapper):
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
        super().__init__(inner)
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
