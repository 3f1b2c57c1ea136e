"""Clients waiting for an invocation's result (``/call``, ``/attach``).

A waiter registered here is answered by the core's ``Reply`` when this process finishes the
invocation; when another process leads its partition (or takes it over), the store is polled
instead (20 ms doubling to 500 ms), so any orchestrator can serve any client.
"""

from __future__ import annotations

import asyncio
import contextlib

from ..errors import TryAgainError


class Waiters:
    """Futures of the clients waiting for a result, by invocation id."""

    def __init__(self) -> None:
        self._waiters: dict[str, list[asyncio.Future[str]]] = {}
        self._emptied = asyncio.Event()  # set whenever nobody waits (checked by ``settle``)

    def add(self, invocation_id: str) -> asyncio.Future[str]:
        fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(invocation_id, []).append(fut)
        return fut

    def remove(self, invocation_id: str, fut: asyncio.Future[str]) -> None:
        waiters = self._waiters.get(invocation_id)
        if waiters is not None:
            with contextlib.suppress(ValueError):
                waiters.remove(fut)
            if not waiters:
                self._forget(invocation_id)

    def reply(self, invocation_id: str, result: str) -> None:
        for fut in self._waiters.get(invocation_id, ()):
            if not fut.done():
                fut.set_result(result)
        self._forget(invocation_id)

    def _forget(self, invocation_id: str) -> None:
        """Nobody waits for this invocation any more; ``settle`` hears when nobody waits."""
        self._waiters.pop(invocation_id, None)
        if not self._waiters:
            self._emptied.set()

    async def settle(self, within_s: float) -> int:
        """Wait until no client waits here any more, at most ``within_s``; how many still
        wait then. (A stopping orchestrator that handed its partitions over: the invocations
        its clients wait for go on at their next leaders, and ``wait_result`` reads their
        results from the store.)"""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_s
        while self._waiters:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            self._emptied.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._emptied.wait()
        return sum(len(w) for w in self._waiters.values())

    def shut_down(self) -> None:
        """The orchestrator stops: every waiter is told to attach again after the restart."""
        for invocation_id, waiters in self._waiters.items():
            for fut in waiters:
                if not fut.done():
                    fut.set_exception(
                        TryAgainError(
                            f"the orchestrator is shutting down; invocation {invocation_id} "
                            f"goes on after restart: GET /restate/attach/{invocation_id}",
                            invocation_id,
                        )
                    )
