"""A sleep's wake-up: the timer fires, the invocation is driven at once with the sleep's
completion held in memory, and the completion becomes durable in the same unit as the woken
attempt's answer (``core/_timers.py``, ``Invocation.deferred``). These tests try to break it: the
completion alone is never committed first, a sleep never completes early, a timer fired twice
completes its sleep once, and a driver that stops before any unit carried the completion (the
store failed, an operator paused it) leaves the timer armed, so the sleep still completes.
The kill -9 between the firing and the commit is ``tests/integration/test_timer_crash.py``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from ritornello import Context, Endpoint, Service
from ritornello.orchestrator import Engine, ManualClock
from ritornello.protocol import RetryPolicy
from ritornello.store import CommitUnit, InvocationRecord, StoreError
from ritornello.store._wrapper import StoreWrapper
from ritornello.store.memory import MemoryStore

T = TypeVar("T")
FAST = RetryPolicy(initial_interval_ms=5, factor=2.0, max_interval_ms=50)
SLEEP_MS = 1_000

svc = Service("Wake")
#: set while a woken ``nap`` waits in its step after the sleep; the test sets ``release``
gate: dict[str, asyncio.Event] = {}
after_runs: list[str] = []


@svc.handler()
async def nap(ctx: Context, ms: int) -> str:
    await ctx.sleep(timedelta(milliseconds=ms))

    async def after() -> str:
        after_runs.append(ctx.invocation_id)
        if "release" in gate:
            gate["reached"].set()
            await gate["release"].wait()
        return "after"

    return await ctx.run("after", after)


class RecordingStore(StoreWrapper):
    """Records every committed unit; ``fail_next`` makes commits of units that complete a
    sleep's entry (index 1 of ``nap``) raise StoreError, that many times."""

    def __init__(self, inner: MemoryStore) -> None:
        super().__init__(inner)
        self.units: list[CommitUnit] = []
        self.fail_next = 0

    async def _call(self, method: str, call: Callable[[], Awaitable[T]]) -> T:
        return await call()

    async def commit(self, unit: CommitUnit) -> None:
        if self.fail_next and any(i == 1 for _, i, _ in unit.completions):
            self.fail_next -= 1
            raise StoreError("injected: the disk is gone for a moment")
        await self.inner.commit(unit)
        self.units.append(unit)


async def _engine(store: RecordingStore, clock: ManualClock) -> Engine:
    await store.open()
    endpoint = Endpoint([svc])
    engine = Engine(store, clock=clock, retry=FAST, inprocess={"app": endpoint.inprocess()})
    await engine.start()
    await engine.register_deployment("inproc://app")
    return engine


async def _until(what: Callable[[], Awaitable[bool]], tries: int = 5000) -> None:
    for _ in range(tries):
        if await what():
            return
        await asyncio.sleep(0.002)
    raise AssertionError("never happened")


async def _status(store: RecordingStore, inv_id: str) -> str | None:
    rec = await store.get_invocation(inv_id)
    return None if rec is None else rec.status


async def _asleep(engine: Engine, store: RecordingStore) -> InvocationRecord:
    """Submit a ``nap`` and wait until it is suspended on its sleep (entry 1)."""
    resolved = engine.registry.resolve("Wake", "nap")
    assert resolved is not None
    rec, _ = await engine.submit(resolved, None, str(SLEEP_MS))
    await _until(lambda: _suspended_here(engine, store, rec.id))
    return rec


async def _suspended_here(engine: Engine, store: RecordingStore, inv_id: str) -> bool:
    return await _status(store, inv_id) == "suspended" and engine.core.is_suspended(inv_id)


async def _sleep_completions(store: RecordingStore, inv_id: str) -> list[dict[str, Any]]:
    _, completions = await store.get_journal(inv_id)
    return [c for c in map(json.loads, completions) if c["index"] == 1]


async def _woke_once(engine: Engine, store: RecordingStore, rec: InvocationRecord) -> None:
    """``rec`` finished after its sleep, which was completed once, its timer gone."""
    assert json.loads(await asyncio.wait_for(engine.wait_result(rec.id), 10)) == {"value": "after"}
    assert len(await _sleep_completions(store, rec.id)) == 1
    assert await store.list_timers() == []


async def _settle(engine: Engine) -> None:
    for _ in range(50):
        await asyncio.sleep(0.002)


def test_the_completion_is_committed_with_the_answer_never_alone_and_never_early() -> None:
    async def main() -> None:
        clock = ManualClock()
        store = RecordingStore(MemoryStore())
        engine = await _engine(store, clock)
        try:
            rec = await _asleep(engine, store)
            after_runs.clear()
            clock.advance(SLEEP_MS - 1)
            engine.timers.poke()
            await _settle(engine)
            assert after_runs == [] and await _status(store, rec.id) == "suspended"  # not early
            assert await _sleep_completions(store, rec.id) == []
            clock.advance(1)
            engine.timers.poke()
            await _woke_once(engine, store, rec)
            carrying = [u for u in store.units if any(i == 1 for _, i, _ in u.completions)]
            assert len(carrying) == 1  # the sleep's completion was committed once ...
            unit = carrying[0]
            # ... together with the answer it let the handler give, and the timer's removal
            assert [w.record.status for w in unit.invocations] == ["completed"]
            assert [(t.invocation_id, t.kind, t.index) for t in unit.timers_remove] == [
                (rec.id, "sleep", 1)
            ]
        finally:
            await engine.stop()

    asyncio.run(main())


def test_a_timer_fired_twice_completes_its_sleep_once() -> None:
    """The timer fires, its woken attempt is in flight, and the timer fires again (as when a
    recovery after a lease lapse loads it from the store once more): the second firing
    commits the completion itself, the first one's unit carries it again, harmlessly."""

    async def main() -> None:
        clock = ManualClock()
        store = RecordingStore(MemoryStore())
        engine = await _engine(store, clock)
        gate.update(reached=asyncio.Event(), release=asyncio.Event())
        try:
            rec = await _asleep(engine, store)
            (timer,) = await store.list_timers()
            clock.advance(SLEEP_MS)
            engine.timers.poke()
            await asyncio.wait_for(gate["reached"].wait(), 10)
            assert await _sleep_completions(store, rec.id) == []  # held by the driver only
            engine.timers.add(timer)  # fired again
            engine.timers.poke()

            async def committed() -> bool:
                return len(await _sleep_completions(store, rec.id)) == 1

            await _until(committed)
            gate["release"].set()
            await _woke_once(engine, store, rec)
            final = await store.get_invocation(rec.id)
            assert final is not None and final.status == "completed"
        finally:
            gate.clear()
            await engine.stop()

    asyncio.run(main())


def test_a_driver_that_fails_before_its_commit_leaves_the_timer_armed() -> None:
    """The unit that would carry the completion fails (the store is down for a moment): the
    completion was only in the failed driver's memory, so the timer goes back into the heap
    and the sleep still completes (the invocation would otherwise sleep until a restart)."""

    async def main() -> None:
        clock = ManualClock()
        store = RecordingStore(MemoryStore())
        engine = await _engine(store, clock)
        try:
            rec = await _asleep(engine, store)
            store.fail_next = 1
            clock.advance(SLEEP_MS)
            engine.timers.poke()
            await _woke_once(engine, store, rec)
            assert store.fail_next == 0  # the failure did happen
        finally:
            await engine.stop()

    asyncio.run(main())


def test_pausing_a_woken_invocation_keeps_its_sleep() -> None:
    """An operator pauses an invocation while its woken attempt runs: the attempt is abandoned
    before anything of it was committed, the timer is armed again and completes the sleep
    (a paused invocation keeps its timers), and the invocation finishes once resumed."""

    async def main() -> None:
        clock = ManualClock()
        store = RecordingStore(MemoryStore())
        engine = await _engine(store, clock)
        gate.update(reached=asyncio.Event(), release=asyncio.Event())
        try:
            rec = await _asleep(engine, store)
            clock.advance(SLEEP_MS)
            engine.timers.poke()
            await asyncio.wait_for(gate["reached"].wait(), 10)
            await engine.pause(rec.id)

            async def completed() -> bool:
                return len(await _sleep_completions(store, rec.id)) == 1

            await _until(completed)  # the re-armed timer completed the sleep by a commit
            assert await store.list_timers() == []
            assert await _status(store, rec.id) == "paused"
            gate.clear()
            await engine.resume(rec.id)
            assert json.loads(await asyncio.wait_for(engine.wait_result(rec.id), 10)) == {
                "value": "after"
            }
        finally:
            if "release" in gate:
                gate["release"].set()
            gate.clear()
            await engine.stop()

    asyncio.run(main())
