"""A state write holds its key like an exclusive invocation: an invocation arriving while the
write is in flight queues behind it (``pending``) and runs after it, seeing the written state.

In-process (engine + the adminapp endpoint, real SQLite file), because the write must be
caught mid-flight: the store's ``get_state`` is held at a gate the test opens.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from ritornello.orchestrator import Engine, OrchestratorError, http_status
from ritornello.store.sqlite import SqliteStore
from tests.admin import adminapp


class GatedStore(SqliteStore):
    """SQLite whose ``get_state`` waits at a gate while ``gated`` (to catch a write mid-way)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.gated = False
        self.reached = asyncio.Event()
        self.gate = asyncio.Event()

    async def get_state(self, service: str, key: str) -> dict[str, str]:
        if self.gated:
            self.reached.set()
            await self.gate.wait()
        return await super().get_state(service, key)


def test_an_invocation_arriving_during_a_state_write_waits_for_it(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = GatedStore(tmp_path / "r.db")
        await store.open()
        engine = Engine(store, inprocess={"app": adminapp.endpoint.inprocess()})
        await engine.start()
        try:
            await engine.register_deployment("inproc://app")
            put = engine.registry.resolve("Box", "put")
            assert put is not None
            store.gated = True
            writing = asyncio.create_task(engine.write_state("Box", "q", {"x": 1}, None))
            await asyncio.wait_for(store.reached.wait(), 10)
            store.gated = False
            rec, _ = await engine.submit(put, "q", json.dumps(5))
            assert rec.status == "pending"  # queued behind the write
            second = asyncio.create_task(engine.write_state("Box", "q", {"y": 2}, None))
            try:
                await second
                raise AssertionError("a second write got through while the first held the key")
            except OrchestratorError as exc:
                assert http_status(exc) == 409, exc
            store.gate.set()
            version = await asyncio.wait_for(writing, 10)
            result = await asyncio.wait_for(engine.wait_result(rec.id), 10)
            assert json.loads(result) == {"value": None}  # "v" was not set before it ran
            now, state = await engine.read_state("Box", "q")
            assert state == {"x": 1, "v": 5}  # it ran on the written state
            assert now != version
        finally:
            store.gate.set()
            await engine.stop()
            await store.close()

    asyncio.run(scenario())
