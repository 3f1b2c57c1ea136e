"""Model-based: random commit units give the same outcomes and the same observable store in
MemoryStore (applied one by one) and SqliteStore (applied in concurrent bursts, so group commit
and savepoints are exercised)."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from ritornello.store import (
    STATUSES,
    CommitUnit,
    ConflictError,
    DeploymentRecord,
    FencedError,
    InvocationRecord,
    InvocationWrite,
    PermitRecord,
    Store,
    TimerRecord,
)
from ritornello.store.memory import MemoryStore
from ritornello.store.sqlite import SqliteStore

IDS = ["inv_a", "inv_b", "inv_c"]
SERVICES = ["Counter", "Greeter"]
HANDLERS = ["add", "get"]
KEYS: list[str | None] = [None, "", "alice"]
STATE_KEYS = ["", "alice"]
IDEMPOTENCY = [None, "ik1", "ik2"]
PARTITIONS = [0, 1, 2]  # _check leaves 0 at epoch 1, 1 at epoch 2 and 2 never claimed
texts = st.sampled_from(['"x"', "{}", '{"é": 1}', "null"])


@st.composite
def invocation_writes(draw: st.DrawFn) -> InvocationWrite:
    expect = draw(st.none() | st.integers(0, 3))
    record = InvocationRecord(
        id=draw(st.sampled_from(IDS)),
        service=draw(st.sampled_from(SERVICES)),
        handler=draw(st.sampled_from(HANDLERS)),
        key=draw(st.sampled_from(KEYS)),
        handler_kind="exclusive",
        status=draw(st.sampled_from(STATUSES)),
        deployment_id="dp",
        seq=draw(st.integers(0, 6)),
        created_at=1,
        modified_at=draw(st.integers(0, 9)),
        attempt=draw(st.integers(1, 3)),
        waiting=tuple(draw(st.lists(st.integers(0, 12), max_size=3))),
        idempotency_key=draw(st.sampled_from(IDEMPOTENCY)),
        result=draw(st.none() | texts),
        next_at=draw(st.none() | st.integers(0, 10**13)),
        version=1 if expect is None else expect + 1,
        partition=draw(st.sampled_from(PARTITIONS)),
        expires_at=draw(st.none() | st.integers(0, 9)),
    )
    return InvocationWrite(record, expect)


@st.composite
def state_changes(draw: st.DrawFn) -> tuple[str, str, str | None, str | None]:
    name = draw(st.sampled_from([None, "count", "name"]))
    value = None if name is None else draw(st.none() | texts)
    return (draw(st.sampled_from(SERVICES)), draw(st.sampled_from(STATE_KEYS)), name, value)


timers = st.builds(
    TimerRecord,
    fire_at=st.integers(0, 4),
    invocation_id=st.sampled_from(IDS),
    kind=st.sampled_from(["sleep", "retry"]),
    index=st.integers(0, 2),
    partition=st.sampled_from(PARTITIONS),
)
positions = st.tuples(st.sampled_from(IDS), st.integers(0, 3), texts)
LIMITS = ["emails", "ü"]


def permits(granted: bool) -> st.SearchStrategy[PermitRecord]:
    return st.builds(
        PermitRecord,
        limit=st.sampled_from(LIMITS),
        invocation_id=st.sampled_from(IDS),
        index=st.integers(-1, 1),
        partition=st.sampled_from(PARTITIONS),
        priority=st.integers(-1, 1),
        asked_at=st.integers(0, 3),
        granted_at=st.integers(0, 3) if granted else st.none(),
    )


permit_names = st.tuples(st.sampled_from(LIMITS), st.sampled_from(IDS), st.integers(-1, 1))
units = st.builds(
    CommitUnit,
    invocations=st.lists(invocation_writes(), max_size=2),
    entries=st.lists(positions, max_size=3),
    completions=st.lists(positions, max_size=2),
    state=st.lists(state_changes(), max_size=3),
    timers_add=st.lists(timers, max_size=2),
    timers_remove=st.lists(timers, max_size=2),
    purge=st.lists(st.sampled_from(IDS), max_size=1),
    fences=st.lists(st.tuples(st.sampled_from(PARTITIONS), st.integers(0, 2)), max_size=1),
    notify=st.lists(st.tuples(st.sampled_from(PARTITIONS), st.sampled_from(IDS)), max_size=2),
    completions_remove=st.lists(st.tuples(st.sampled_from(IDS), st.integers(0, 3)), max_size=1),
    permits_ask=st.lists(permits(granted=False), max_size=2),
    permits_grant=st.lists(permits(granted=True), max_size=1),
    permits_release=st.lists(permit_names, max_size=1),
)
deployment_ops = st.tuples(
    st.sampled_from(["put", "delete"]), st.sampled_from(["dp_1", "dp_2"]), st.integers(0, 3)
)
bursts = st.lists(
    st.tuples(st.lists(units, min_size=1, max_size=6), st.lists(deployment_ops, max_size=2)),
    min_size=1,
    max_size=5,
)


async def _commit(store: Store, unit: CommitUnit) -> str:
    try:
        await store.commit(unit)
    except FencedError as e:
        return f"fenced {e.partition}"
    except ConflictError:
        return "conflict"
    return "ok"


async def _snapshot(store: Store) -> dict[str, Any]:
    snap: dict[str, Any] = {
        "all": await store.list_invocations(),
        "timers": await store.list_timers(),
        "max_seq": await store.max_seq(),
        "deployments": await store.list_deployments(),
        "page": await store.list_invocations(after_seq=2, limit=2),
        "active": await store.list_invocations(statuses=["running", "suspended", "pending"]),
        "leases": await store.list_leases(),
        "permits": await store.list_permits(),
    }
    for limit in LIMITS:
        snap["permits", limit] = await store.list_permits(limit=limit)
    for partition in PARTITIONS:
        snap["partition", partition] = await store.list_invocations(partition=partition)
        snap["timers", partition] = await store.list_timers(partition=partition)
        # message ids are the backend's own: compare what the messages say, in order
        snap["inbox", partition] = [m[1] for m in await store.read_inbox(partition)]
        snap["permits", partition] = await store.list_permits(partition=partition)
    for id in IDS:
        snap[id] = (await store.get_invocation(id), await store.get_journal(id))
    for service in SERVICES:
        snap[service] = await store.list_invocations(service=service)
        snap[service, "alice"] = await store.list_invocations(service=service, key="alice")
        for key in STATE_KEYS:
            snap[service, key, "state"] = await store.get_state(service, key)
        for handler in HANDLERS:
            for key in KEYS:
                for ik in IDEMPOTENCY[1:]:
                    assert ik is not None
                    snap[service, handler, key, ik] = await store.find_idempotent(
                        service, handler, key, ik
                    )
    return snap


async def _check(plan: list[tuple[list[CommitUnit], list[tuple[str, str, int]]]]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        model = MemoryStore()
        real = SqliteStore(Path(directory) / "r.db")
        await model.open()
        await real.open()
        try:
            for store in (model, real):
                await store.claim_lease(0, "node-a", None, 1)
                lease = await store.claim_lease(1, "node-a", None, 1)
                await store.claim_lease(1, "node-b", lease, 2)
            for burst, deployment_ops in plan:
                expected = [await _commit(model, unit) for unit in burst]
                got = await asyncio.gather(*(_commit(real, unit) for unit in burst))
                assert got == expected
                for op, id, created in deployment_ops:
                    for store in (model, real):
                        if op == "put":
                            await store.put_deployment(DeploymentRecord(id, "u", "[]", created))
                        else:
                            await store.delete_deployment(id)
                assert await _snapshot(real) == await _snapshot(model)
        finally:
            await real.close()
            await model.close()


# No shrinking phase: one example costs ~20 ms (a SQLite file each), and shrinking a failure
# runs thousands of them, past the per-test timeout. A failure prints the whole plan instead.
@settings(
    max_examples=30,
    deadline=None,
    database=None,
    phases=(Phase.explicit, Phase.reuse, Phase.generate),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(bursts)
def test_sqlite_behaves_like_memory(
    plan: list[tuple[list[CommitUnit], list[tuple[str, str, int]]]],
) -> None:
    asyncio.run(_check(plan))
