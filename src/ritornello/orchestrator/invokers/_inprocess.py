"""``InProcessInvoker``: an ``Endpoint`` living in this process (``inproc://NAME``).

Same bytes as over HTTP, no HTTP, and nothing signed: the endpoint lives in this very process.
Its answers are held to the same limits as any other invoker's (``max_answer_bytes``,
``max_discovery_bytes``), checked once they exist: the memory is this process's either way, but
an answer that would fail over HTTP fails here too.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from ._base import MAX_ANSWER_BYTES, MAX_DISCOVERY_BYTES, Invoker, InvokerError, too_large


class InProcessTarget(Protocol):
    """What ``Endpoint(...).inprocess()`` returns."""

    async def discover(self) -> bytes: ...

    async def invoke(self, body: bytes) -> bytes: ...


class InProcessInvoker(Invoker):
    """An ``Endpoint`` living in this process (``ritornello dev``, tests): same bytes, no HTTP.

    The endpoint's handlers run as tasks on this event loop; their sync ``run`` steps go to
    threads, so the orchestrator is not blocked by them.
    """

    def __init__(
        self,
        target: InProcessTarget,
        *,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
        max_discovery_bytes: int = MAX_DISCOVERY_BYTES,
    ) -> None:
        self._target = target
        self.max_answer_bytes = max_answer_bytes
        self.max_discovery_bytes = max_discovery_bytes

    async def discover(self) -> bytes:
        answer = await self._target.discover()
        if len(answer) > self.max_discovery_bytes:
            limit = self.max_discovery_bytes
            raise InvokerError(too_large("discovery answer", limit, "max_discovery_bytes"))
        return answer

    async def invoke(self, service: str, handler: str, body: bytes) -> bytes:
        # A task of its own, so cancelling the caller (timeout, shutdown) cancels the handler.
        answer = await asyncio.ensure_future(self._target.invoke(body))
        if len(answer) > self.max_answer_bytes:
            raise InvokerError(too_large("answer", self.max_answer_bytes, "max_answer_bytes"))
        return answer
