"""``Engine.idle()``: true exactly when nothing is left to do until the clock moves or something
arrives from outside. These tests try to catch it lying: while an attempt runs, while a timer is
due but not fired yet, while a failed driver waits to be driven again."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

import pytest

from ritornello import Context, Endpoint, Service
from ritornello.orchestrator import Engine, ManualClock
from ritornello.orchestrator.core import _drive
from ritornello.store import CommitUnit, StoreError
from ritornello.store._wrapper import StoreWrapper
from ritornello.store.memory import MemoryStore

T = TypeVar("T")

svc = Service("Idle")
gate: dict[str, asyncio.Event] = {}


@svc.handler()
async def hold(ctx: Context) -> str:
    async def wait() -> str:
        await gate["open"].wait()
        return "held"

    return await ctx.run("wait", wait)


@svc.handler()
async def nap(ctx: Context) -> str:
    await ctx.sleep(timedelta(seconds=10))
    return "woke"


class FailingStore(StoreWrapper):
    """Fails the next ``fail`` commits of units that complete an invocation."""

    def __init__(self, inner: MemoryStore) -> None:
        super().__init__(inner)
        self.fail = 0

    async def _call(self, method: str, call: Callable[[], Awaitable[T]]) -> T:
        return await call()

    async def commit(self, unit: CommitUnit) -> None:
        if self.fail and any(w.record.status == "completed" for w in unit.invocations):
            self.fail -= 1
            raise StoreError("injected: the disk is gone for a moment")
        await self.inner.commit(unit)


async def _engine(clock: ManualClock, store: FailingStore) -> Engine:
    await store.open()
    engine = Engine(
        store, clock=clock, inprocess={"app": Endpoint([svc]).inprocess()}, watchdog_interval_s=0
    )
    await engine.start()
    await engine.register_deployment("inproc://app")
    return engine


async def _until_idle(engine: Engine) -> None:
    for _ in range(2000):
        if engine.idle():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("never idle")


async def _submit(engine: Engine, handler: str) -> str:
    target = engine.registry.resolve("Idle", handler)
    assert target is not None
    rec, _ = await engine.submit(target, None, "null")
    return rec.id


def test_not_idle_while_an_attempt_runs() -> None:
    async def main() -> None:
        gate["open"] = asyncio.Event()
        clock, store = ManualClock(), FailingStore(MemoryStore())
        engine = await _engine(clock, store)
        try:
            assert engine.idle()
            inv = await _submit(engine, "hold")
            for _ in range(50):  # the step waits: however long, the engine is not idle
                assert not engine.idle()
                await asyncio.sleep(0.001)
            gate["open"].set()
            await _until_idle(engine)
            rec = await store.get_invocation(inv)
            assert rec is not None and rec.status == "completed"
        finally:
            await engine.stop()

    asyncio.run(main())


def test_a_due_timer_is_work_until_it_has_fired_and_its_wake_up_settled() -> None:
    async def main() -> None:
        clock, store = ManualClock(), FailingStore(MemoryStore())
        engine = await _engine(clock, store)
        try:
            inv = await _submit(engine, "nap")
            await _until_idle(engine)
            rec = await store.get_invocation(inv)
            assert rec is not None and rec.status == "suspended"
            clock.advance(9_999)
            assert engine.idle()  # not due yet
            clock.advance(1)
            assert not engine.idle()  # due, not fired: no poke yet, and still not idle
            for _ in range(20):
                await asyncio.sleep(0)
                assert not engine.idle() or (await _status(store, inv)) == "completed"
            engine.timers.poke()
            await _until_idle(engine)
            assert await _status(store, inv) == "completed"
        finally:
            await engine.stop()

    asyncio.run(main())


def test_not_idle_while_a_failed_driver_waits_to_be_driven_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_drive, "REDRIVE_AFTER_FAILURE_S", 0.05)

    async def main() -> None:
        gate["open"] = asyncio.Event()
        gate["open"].set()
        clock, store = ManualClock(), FailingStore(MemoryStore())
        engine = await _engine(clock, store)
        try:
            store.fail = 1
            inv = await _submit(engine, "hold")
            for _ in range(2000):  # the answer's commit fails; the driver ends
                if not store.fail and not engine.drivers.tasks:
                    break
                await asyncio.sleep(0.001)
            assert not store.fail and not engine.drivers.tasks
            assert not engine.idle()  # driven again in 50 ms: not idle meanwhile
            await _until_idle(engine)
            assert await _status(store, inv) == "completed"
        finally:
            await engine.stop()

    asyncio.run(main())


async def _status(store: FailingStore, inv: str) -> str | None:
    rec = await store.get_invocation(inv)
    return None if rec is None else rec.status
