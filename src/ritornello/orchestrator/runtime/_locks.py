"""Workflow key locks: one holder at a time per workflow key.

A workflow's promises and their waiters are read and written under its key's lock (read the
rows, settle the answer, commit), so a resolution and the registration of a waiter can never
miss each other::

    waiter:   lock ── read rows (unresolved) ── commit waiter row ── unlock
    resolver:                                                          lock ── read rows (a
              waiter) ── commit the promise and a completion for each waiter ── unlock
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class KeyLocks:
    """``asyncio.Lock`` per key, dropped only when nobody holds or awaits it (a lock released
    with a waiter still queued must stay the key's lock, or a newcomer would make a second one
    and both would run)."""

    def __init__(self) -> None:
        self._locks: dict[tuple[str, str], tuple[asyncio.Lock, list[int]]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: tuple[str, str]) -> AsyncIterator[None]:
        entry = self._locks.get(key)
        if entry is None:
            entry = self._locks[key] = (asyncio.Lock(), [0])
        lock, users = entry
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if users[0] == 0:
                del self._locks[key]
