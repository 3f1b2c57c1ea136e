"""An object key's queue across a partition's recovery (found by the simulation, seed 8444).

A callee created in a partition whose recovery has not built its key queues yet (its caller's
partition recovered sooner) must not take a key the recovery has yet to read a holder of: it is
created 'pending', goes behind that holder, and runs after it, so neither add is lost.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

from ritornello import Context, Endpoint, VirtualObject
from ritornello.orchestrator import Engine
from ritornello.orchestrator.core._answer import new_invocation
from ritornello.protocol import new_id
from ritornello.store import CommitUnit, InvocationWrite, with_changes
from ritornello.store.sqlite import SqliteStore
from tests.orchestrator._wait import until_status

acc = VirtualObject("Acc")


@acc.handler()
async def add(ctx: Context, delta: int) -> int:
    value = (await ctx.get("count") or 0) + delta
    await ctx.sleep(timedelta(milliseconds=300))  # holds the key, its read journaled
    ctx.set("count", value)
    return value


def test_a_callee_admitted_before_its_partitions_recovery_waits_for_the_holder_it_reads(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        store = SqliteStore(tmp_path / "r.db")
        await store.open()
        engine = Engine(store, inprocess={"app": Endpoint([acc]).inprocess()})
        await engine.start()
        try:
            await engine.register_deployment("inproc://app")
            target = engine.registry.resolve("Acc", "add")
            assert target is not None
            holder, _ = await engine.submit(target, "k", "1")

            # it read count 0 and sleeps, holding the key
            await until_status(store, holder.id, "suspended")
            partition = holder.partition
            # its partition is claimed again and not yet recovered
            engine.recovery.lost(partition)
            engine.recovery.claimed(partition)
            assert engine.leadership.holds(partition) and not engine.core.is_ready(partition)

            # what a caller's answer does for a callee of Acc/add on "k" (``_answer._outbox``)
            inv_id = new_id()
            now = engine.clock.now_ms()
            callee = new_invocation(
                id=inv_id,
                partition=engine.partition_of("Acc", "k", inv_id),
                service="Acc",
                handler="add",
                key="k",
                handler_kind=target.handler.kind,
                deployment_id=target.deployment_id,
                seq=engine.core.next_seq(now),
                now_ms=now,
                status="running",
            )
            assert callee.partition == partition
            status = engine.core.admit(callee)
            callee = with_changes(callee, status=status)
            await store.commit(
                CommitUnit(
                    invocations=[InvocationWrite(callee)],
                    entries=[(callee.id, 0, '{"kind":"input","value":10}')],
                )
            )
            # as the caller's ``Committed`` does (``_drive``)
            if status == "running" or engine.core.may_run(callee):
                engine.perform(engine.core.drive(callee.id))
            await asyncio.sleep(0.05)
            await engine.recovery.recover(partition)
            first = json.loads(await asyncio.wait_for(engine.wait_result(holder.id), 10))
            second = json.loads(await asyncio.wait_for(engine.wait_result(callee.id), 10))
            assert await store.get_state("Acc", "k") == {"count": "11"}  # no add lost
            assert (first["value"], second["value"]) == (1, 11)  # the holder first
            assert status == "pending"  # created waiting: the recovery had not read the holder
        finally:
            await engine.stop()
            await store.close()

    asyncio.run(main())
