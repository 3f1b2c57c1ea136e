"""``InProcessInvoker``: an ``Endpoint`` living in this process (``inproc://NAME``).

Same bytes as over HTTP, no HTTP, and nothing signed: the endpoint lives in this very process.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from ._base import Invoker


class InProcessTarget(Protocol):
    """What ``Endpoint(...).inprocess()`` returns."""

    async def discover(self) -> bytes: ...

    async def invoke(self, body: bytes) -> bytes: ...


class InProcessInvoker(Invoker):
    """An ``Endpoint`` living in this process (``ritornello dev``, tests): same bytes, no HTTP.

    The endpoint's handlers run as tasks on this event loop; their sync ``run`` steps go to
    threads, so the orchestrator is not blocked by them.
    """

    def __init__(self, target: InProcessTarget) -> None:
        self._target = target

    async def discover(self) -> bytes:
        return await self._target.discover()

    async def invoke(self, service: str, handler: str, body: bytes) -> bytes:
        # A task of its own, so cancelling the caller (timeout, shutdown) cancels the handler.
        return await asyncio.ensure_future(self._target.invoke(body))
