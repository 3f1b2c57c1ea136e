"""Operator actions sent to an orchestrator that does not lead the invocation's (or the key's)
partition: a purge travels through the partition's inbox to its leader, which forgets the
invocation; a state write is refused with 503 naming the leader (it must go to its admin API).
Two engines share one in-memory store, as two processes share a DynamoDB table."""

from __future__ import annotations

import asyncio

import pytest

from ritornello.orchestrator import Engine, OrchestratorError, http_status
from tests.orchestrator.test_partitions import (
    _engine,
    _result,
    _store,
    _submit,
    _wait_for,
)


def _leader_and_other(a: Engine, b: Engine, partition: int) -> tuple[Engine, Engine]:
    return (a, b) if partition in a.leadership.owned() else (b, a)


def test_purge_and_state_write_from_an_orchestrator_that_does_not_lead() -> None:
    async def main() -> None:
        store = _store(8)
        await store.open()
        a = await _engine(store, "a")
        b = await _engine(store, "b")
        try:
            await _wait_for(lambda: len(b.leadership.owned()) == 4)
            await b.refresh_deployments()
            inv = await _submit(a, "PSvc/double", 21)
            assert await _result(a, inv) == {"value": 42}
            rec = await store.get_invocation(inv)
            assert rec is not None
            _, other = _leader_and_other(a, b, rec.partition)

            # purge through the engine that does not lead: the leader gets an inbox message
            await other.purge(inv)
            assert await store.get_invocation(inv) is None
            assert await store.get_journal(inv) == ([], [])
            for _ in range(500):  # the leader read the message and acknowledged it
                if not await store.read_inbox(rec.partition):
                    break
                await asyncio.sleep(0.01)
            else:
                raise AssertionError("the purge's inbox message was never acknowledged")

            # a state write must be made by the key's leader: 503 elsewhere, naming it
            key = next(
                k
                for k in (f"k{i}" for i in range(64))
                if other.partition_of("PObj", k, "") not in other.leadership.owned()
            )
            items = await _result(other, await _submit(other, "PObj/add", "x", key))
            assert items == {"value": ["x"]}
            version, state = await other.read_state("PObj", key)
            assert state == {"items": ["x"]}
            with pytest.raises(OrchestratorError) as refused:
                await other.write_state("PObj", key, {"items": []}, version)
            assert http_status(refused.value) == 503
            owner = _leader_and_other(a, b, other.partition_of("PObj", key, ""))[0].node
            assert owner in str(refused.value)
            owner_engine = a if owner == "a" else b
            new_version = await owner_engine.write_state("PObj", key, {"items": ["y"]}, version)
            assert new_version != version
            assert (await other.read_state("PObj", key)) == (new_version, {"items": ["y"]})
            # and the next handler of the key sees the written state
            again = await _result(other, await _submit(other, "PObj/add", "z", key))
            assert again == {"value": ["y", "z"]}
        finally:
            await asyncio.gather(a.stop(), b.stop())
            await store.close()

    asyncio.run(main())
