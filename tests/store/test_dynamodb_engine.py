"""The engine over the DynamoDB store (moto over HTTP on loopback): values past DynamoDB's
400 KB item limit — a 2 MB step result, a 2 MB state value, a 2 MB invocation result — go to
S3 and come back whole through the result a client waits for (attach), the journal the admin
API shows, and the state a later invocation reads; and the work survives a restart of the
engine (a new leader recovers the partition from the table)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from ritornello import Context, Endpoint, Service, VirtualObject
from ritornello.orchestrator import Engine
from ritornello.store.dynamodb import DynamoStore

from .conftest import make_dynamo_store

MB2 = 2 * 1024 * 1024

svc = Service("Big")
obj = VirtualObject("BigObj")


@svc.handler()
async def blob(ctx: Context, size: int) -> str:
    return await ctx.run("blob", lambda: "b" * size)


@obj.handler()
async def keep(ctx: Context, size: int) -> int:
    ctx.set("blob", "s" * size)
    return size


@obj.handler(kind="shared")
async def length(ctx: Context) -> int:
    return len(await ctx.get("blob") or "")


async def _engine(store: DynamoStore, node: str) -> Engine:
    endpoint = Endpoint([svc, obj])
    engine = Engine(store, inprocess={"app": endpoint.inprocess()}, node=node, lease_s=1.0)
    await engine.start()
    if not engine.registry.deployments:
        await engine.register_deployment("inproc://app")
    return engine


async def _call(engine: Engine, target: str, value: Any, key: str | None = None) -> Any:
    service, handler = target.split("/")
    resolved = engine.registry.resolve(service, handler)
    assert resolved is not None
    rec, _ = await engine.submit(resolved, key, json.dumps(value))
    return rec.id, json.loads(await asyncio.wait_for(engine.wait_result(rec.id), 60))


def test_two_megabyte_values_through_the_engine(tmp_path: Path) -> None:
    async def main() -> None:
        store = make_dynamo_store(tmp_path)
        await store.open()
        engine = await _engine(store, "n1")
        try:
            inv_id, result = await _call(engine, "Big/blob", MB2)
            assert result == {"value": "b" * MB2}
            _, entries, _ = await engine.describe(inv_id)
            (run,) = [json.loads(e) for e in entries if json.loads(e)["kind"] == "run"]
            assert run["value"] == "b" * MB2
            assert await _call(engine, "BigObj/keep", MB2, "k") == (
                (await store.list_invocations(service="BigObj"))[0].id,
                {"value": MB2},
            )
            assert (await _call(engine, "BigObj/length", None, "k"))[1] == {"value": MB2}
            assert store.stats.snapshot()["s3_requests"].get("PutObject", 0) >= 3
        finally:
            await engine.stop()
            await store.close()
        # another process (a new engine, a new store object) reads it all back
        store = make_dynamo_store(tmp_path)
        await store.open()
        engine = await _engine(store, "n2")
        try:
            assert json.loads(await engine.wait_result(inv_id)) == {"value": "b" * MB2}
            assert (await _call(engine, "BigObj/length", None, "k"))[1] == {"value": MB2}
        finally:
            await engine.stop()
            await store.close()

    asyncio.run(main())
