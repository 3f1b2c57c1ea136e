"""``FakeInvoker``: the invoker tests and the simulation use, shipped beside the real ones (what
httpx's ``MockTransport`` is to its transports).

It answers from an in-process target (``Endpoint(...).inprocess()``, or anything with
``async discover() -> bytes`` and ``async invoke(body) -> bytes``) or from a script of answers,
and injects the faults a network causes, drawn from a seeded ``random.Random`` (``Faults``).
Register it as an in-process endpoint: ``Engine(store, inprocess={"fake": fake})``, then
``register_deployment("inproc://fake")``; ``make_invoker`` hands the instance itself to the
engine.

Invariants:

* Every request that reached it is recorded, faulted or not, in order: ``requests`` holds the
  InvokeRequest bodies, ``calls`` counts them.
* A script is taken in order and its last answer repeats forever. An exception in it
  (``InvokerError("refused")``, say) is raised instead of answered.
* Faults apply to ``invoke`` only, never to ``discover``. With ``faults`` set, every invoke draws
  exactly one ``rng.random()``, which picks at most one fault by cumulative rate in the order
  refuse, lose, garbage, slow; a slow one draws one ``rng.choice(faults.delays_s)`` more. Nothing
  else draws from ``rng``: the same seed and the same calls give the same faults.
* ``refuse`` fails before the target runs; ``garbage`` answers ``faults.garbage_answer`` without
  running it; ``slow`` sleeps, then runs it; ``lose`` runs it, then fails (the handler ran and
  its side effects happened, the answer is gone). Failures are ``InvokerError``, as from a real
  invoker.
* Each invoke runs as a task of its own, as ``InProcessInvoker``'s does: cancelling the caller
  (an attempt timeout, a crash) cancels the handler and any injected sleep.
* It never streams, and ``close()`` does nothing: one instance outlives re-registrations and
  engine restarts (the simulation keeps one across its crashes).
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from ._base import Invoker, InvokerError
from ._inprocess import InProcessTarget

_KINDS = ("refuse", "lose", "garbage", "slow")  # the order a draw is matched in


@dataclass(frozen=True, slots=True)
class Faults:
    """How often each fault is injected (a probability per invoke; together at most 1), how
    long a slow answer waits (one of ``delays_s``, seconds) and what garbage looks like."""

    refuse: float = 0.0
    lose: float = 0.0
    garbage: float = 0.0
    slow: float = 0.0
    delays_s: tuple[float, ...] = (0.2, 1.0, 4.0)
    garbage_answer: bytes = b'{"version":1,"type":"nonsense"'

    def __post_init__(self) -> None:
        rates = [getattr(self, kind) for kind in _KINDS]
        if not all(0.0 <= r <= 1.0 for r in rates) or math.fsum(rates) > 1.0 + 1e-9:
            raise ValueError(f"fault rates must be in [0, 1] and sum to at most 1: {self}")
        if self.slow > 0 and not self.delays_s:
            raise ValueError("slow answers need at least one delay")

    def pick(self, x: float) -> str | None:
        """The fault a draw ``x`` in [0, 1) picks (``None``: no fault)."""
        for kind in _KINDS:
            x -= getattr(self, kind)
            if x < 0:
                return kind
        return None


class FakeInvoker(Invoker):
    """An endpoint that answers from an in-process ``target`` or a script of ``answers``
    (exactly one of the two), with ``discovery`` (bytes) answered instead of the target's, and
    ``faults`` drawn from ``rng`` (default: ``random.Random(0)``). See the module docstring."""

    def __init__(
        self,
        target: InProcessTarget | None = None,
        *,
        answers: Sequence[bytes | Exception] | None = None,
        discovery: bytes | None = None,
        faults: Faults | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if (target is None) == (answers is None):
            raise ValueError("FakeInvoker answers from a target or from a script: give one")
        if answers is not None and not answers:
            raise ValueError("FakeInvoker's script needs at least one answer")
        self._target = target
        self._answers = list(answers or ())
        self._played = 0  # script answers used so far
        self._discovery = discovery
        self.faults = faults
        self._rng = rng if rng is not None else random.Random(0)
        self.requests: list[bytes] = []

    @property
    def calls(self) -> int:
        """How many invokes reached this invoker."""
        return len(self.requests)

    async def discover(self) -> bytes:
        if self._discovery is not None:
            return self._discovery
        if self._target is None:
            raise InvokerError("FakeInvoker: no discovery answer given")
        return await self._target.discover()

    async def invoke(self, service: str, handler: str, body: bytes) -> bytes:
        self.requests.append(body)
        # A task of its own, so cancelling the caller cancels the handler (as in-process).
        return await asyncio.ensure_future(self._answer(body))

    async def _answer(self, body: bytes) -> bytes:
        faults = self.faults
        if faults is None:
            return await self._run(body)
        fault = faults.pick(self._rng.random())
        if fault == "refuse":
            raise InvokerError("injected: connection refused")
        if fault == "garbage":
            return faults.garbage_answer
        if fault == "slow":
            await asyncio.sleep(self._rng.choice(faults.delays_s))
        answer = await self._run(body)
        if fault == "lose":
            raise InvokerError("injected: connection reset after the request")
        return answer

    async def _run(self, body: bytes) -> bytes:
        if self._target is not None:
            return await self._target.invoke(body)
        answer = self._answers[min(self._played, len(self._answers) - 1)]
        self._played += 1
        if isinstance(answer, Exception):
            raise answer
        return answer
