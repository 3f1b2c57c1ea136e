"""Waiting in engine tests for what a driver commits in the background."""

from __future__ import annotations

import asyncio

from ritornello.store import InvocationRecord, Store


async def until_status(store: Store, inv_id: str, status: str) -> InvocationRecord:
    """The record of ``inv_id`` once it has ``status`` (polled for about 2.5 s)."""
    for _ in range(500):
        rec = await store.get_invocation(inv_id)
        assert rec is not None
        if rec.status == status:
            return rec
        await asyncio.sleep(0.005)
    raise AssertionError(f"{inv_id} never became {status}: {rec}")
