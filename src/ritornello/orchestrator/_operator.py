"""Operator actions beside the invocation lifecycle: purge, object state read/write, and the
invocations pinned to a deployment. Used by the admin API.

Invariants:

* Every write commits through ``Engine._commit``: fenced by the partition's epoch when this
  process leads it, else (purge only) unfenced with an inbox message to its leader, as
  ``Engine.kill`` does. A purge needs no fence to be safe: it removes only a *terminal*
  invocation, which no driver writes any more.
* A state write is made only by the leader of the key's partition, while it holds the key: a
  placeholder takes the head of the key's exclusive queue for the duration of the
  read-compare-write, so no exclusive handler of the key starts meanwhile (new arrivals queue
  behind it, as behind an invocation, and start when it leaves). While an exclusive invocation
  holds the key (running, suspended, backing off or paused) the write is refused with 409:
  its handler would otherwise see the state change under it, mid-invocation.
* The state version is a digest of the user state rows (name and stored JSON text), so it
  changes exactly when the state does, whoever wrote it; the engine's own rows of a workflow
  (promises, waiters: names starting with NUL) are neither shown, versioned, nor written.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections import deque
from typing import Any

from ritornello.store import TERMINAL_STATUSES, CommitUnit, InvocationRecord

from ._engine import Engine, EngineError
from ._json import dumps, loads

#: Statuses of invocations that are not finished.
LIVE_STATUSES = ("pending", "scheduled", "running", "suspended", "backing-off", "paused")
#: The id that holds a key's queue while an operator writes the key's state.
_STATE_WRITER = "\x00state-write"


def _error(message: str, status: int) -> EngineError:
    return EngineError(message, status)


async def purge(engine: Engine, invocation_id: str) -> InvocationRecord:
    """Delete a finished invocation with its journal, completions and timers, freeing its
    idempotency key (and, for a workflow's run, the workflow id with its state and promises,
    as retention does). 404 unknown; 409 not finished (completed or killed)."""
    rec = await engine.store.get_invocation(invocation_id)
    if rec is None:
        raise _error(f"invocation {invocation_id} not found", 404)
    if rec.status not in TERMINAL_STATUSES:
        raise _error(
            f"invocation {invocation_id} is {rec.status}: only a completed or killed "
            "invocation can be purged (cancel or kill it first)",
            409,
        )
    unit = CommitUnit(purge=[rec.id])
    if rec.handler_kind == "workflow" and rec.key is not None:
        unit.state.append((rec.service, rec.key, None, None))
    here = engine._owns(rec.partition)
    if not here:
        unit.notify.append((rec.partition, rec.id))  # its leader forgets it (reconcile)
    await engine._commit(unit, rec.partition if here else None)
    return rec


def state_version(rows: dict[str, str]) -> str:
    """The version of an object's user state: a digest of its rows (names and JSON texts)."""
    digest = hashlib.sha256()
    for name in sorted(rows):
        if name.startswith("\x00"):
            continue
        digest.update(name.encode("utf-8", "surrogatepass") + b"\x00")
        digest.update(rows[name].encode("utf-8", "surrogatepass") + b"\x00")
    return digest.hexdigest()[:32]


async def read_state(engine: Engine, service: str, key: str) -> tuple[str, dict[str, Any]]:
    """(version, user state name -> JSON value) of one object or workflow key."""
    rows = await engine.store.get_state(service, key)
    state = {n: loads(v) for n, v in sorted(rows.items()) if not n.startswith("\x00")}
    return state_version(rows), state


async def write_state(
    engine: Engine,
    service: str,
    key: str,
    new_state: dict[str, Any],
    expect_version: str | None,
) -> str:
    """Replace the user state of ``(service, key)`` with ``new_state``; the new version.

    ``expect_version`` (from ``read_state``) makes it conditional: 409 when the state changed
    since. 409 while an exclusive invocation holds the key; 503 when another orchestrator
    leads the key's partition (the write must be sent to its admin API)."""
    for name in new_state:
        if name.startswith("\x00"):
            raise _error("state names starting with NUL are reserved", 400)
    texts = {name: dumps(value) for name, value in new_state.items()}
    partition = engine._partition(service, key, "")
    if not engine._owns(partition):
        leases = {lease.partition: lease.owner for lease in await engine.store.list_leases()}
        raise _error(
            f"partition {partition} of {service}/{key} is led by "
            f"{leases.get(partition) or 'no orchestrator right now'}, not {engine.node}: "
            "send the state write to its admin API",
            503,
        )
    k = (service, key)
    held = engine._queues.get(k)
    if held:
        holder = "another state write" if held[0] == _STATE_WRITER else f"invocation {held[0]}"
        raise _error(
            f"{service}/{key} is held by {holder}; write its state when the key is free", 409
        )
    engine._queues[k] = deque([_STATE_WRITER])
    try:
        rows = await engine.store.get_state(service, key)
        current = state_version(rows)
        if expect_version is not None and expect_version != current:
            raise _error(
                f"state of {service}/{key} is at version {current}, not {expect_version}", 409
            )
        unit = CommitUnit()
        for name in sorted(rows):
            if not name.startswith("\x00") and name not in texts:
                unit.state.append((service, key, name, None))
        for name in sorted(texts):
            if rows.get(name) != texts[name]:
                unit.state.append((service, key, name, texts[name]))
        if unit.state:
            await engine._commit(unit, partition)
        after = {n: v for n, v in rows.items() if n.startswith("\x00")} | texts
        return state_version(after)
    finally:
        _release(engine, k)


def _release(engine: Engine, k: tuple[str, str]) -> None:
    """Leave the key's queue; start the invocation that queued behind the write, if any."""
    queue = engine._queues.get(k)
    if queue is None:
        return  # the partition was lost meanwhile: its queues went with it
    with contextlib.suppress(ValueError):
        queue.remove(_STATE_WRITER)
    if not queue:
        del engine._queues[k]
    else:
        engine._spawn(queue[0])


async def pinned(engine: Engine, deployment_id: str, limit: int = 10) -> list[InvocationRecord]:
    """Up to ``limit`` unfinished invocations pinned to ``deployment_id`` (they would fail
    their attempts if it went away)."""
    found: list[InvocationRecord] = []
    async for rec in engine.store.scan_invocations(LIVE_STATUSES):
        if rec.deployment_id == deployment_id:
            found.append(rec)
            if len(found) >= limit:
                break
    return found
