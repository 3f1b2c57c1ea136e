"""The stuck-invocation watchdog: an invocation nothing would move — its wake-up lost, or
written to the store behind the engine's back — is found, counted and re-driven to the end;
a healthy one (suspended on an open awakeable, or sleeping) is never reported."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

from ritornello import Context, Endpoint, Service
from ritornello.orchestrator import Engine
from ritornello.orchestrator.core import completion_text
from ritornello.orchestrator.core._answer import new_invocation
from ritornello.store import CommitUnit, InvocationWrite
from ritornello.store.memory import MemoryStore

svc = Service("Dog")


@svc.handler()
async def wait(ctx: Context) -> str:
    _, decision = ctx.awakeable()
    return str(await decision)


@svc.handler()
async def nap(ctx: Context) -> str:
    await ctx.sleep(timedelta(seconds=30))
    return "rested"


@svc.handler()
async def echo(ctx: Context, value: Any) -> Any:
    return value


async def _engine(store: MemoryStore, **kw: Any) -> Engine:
    endpoint = Endpoint([svc])
    engine = Engine(store, inprocess={"app": endpoint.inprocess()}, **kw)
    await engine.start()
    await engine.register_deployment("inproc://app")
    return engine


async def _until(predicate: Any, within_s: float = 10.0) -> None:
    for _ in range(int(within_s / 0.01)):
        if await predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("not reached in time")


def test_a_lost_wakeup_and_an_orphan_are_found_and_re_driven() -> None:
    async def main() -> None:
        store = MemoryStore()
        await store.open()
        engine = await _engine(store, watchdog_interval_s=0)  # rounds run by hand first
        try:
            target = engine.registry.resolve("Dog", "wait")
            napper = engine.registry.resolve("Dog", "nap")
            assert target is not None and napper is not None
            waiting, _ = await engine.submit(target, None, "null")
            sleeping, _ = await engine.submit(napper, None, "null")

            async def suspended() -> bool:
                a = await store.get_invocation(waiting.id)
                b = await store.get_invocation(sleeping.id)
                return a is not None and b is not None and {a.status, b.status} == {"suspended"}

            await _until(suspended)
            assert await engine.watchdog.find_stuck() == []  # open awakeable, armed timer: healthy

            # A completion lands in the store behind the engine's back: its wake-up is lost.
            entries, _ = await store.get_journal(waiting.id)
            index = next(i for i, e in enumerate(entries) if json.loads(e)["kind"] == "awakeable")
            text = completion_text(index, '{"value":"approved"}')
            await store.commit(CommitUnit(completions=[(waiting.id, index, text)]))
            # And an invocation is written straight into the store: nothing drives it.
            echo = engine.registry.resolve("Dog", "echo")
            assert echo is not None
            orphan = new_invocation(
                id="inv_orphan0000000000000000000",
                service="Dog",
                handler="echo",
                key=None,
                handler_kind="shared",
                deployment_id=echo.deployment_id,
                seq=engine.core.next_seq(engine.clock.now_ms()),
                now_ms=engine.clock.now_ms(),
                status="running",
            )
            await store.commit(
                CommitUnit(
                    invocations=[InvocationWrite(orphan)],
                    entries=[(orphan.id, 0, '{"kind":"input","value":"hello"}')],
                )
            )
            assert sorted(await engine.watchdog.find_stuck()) == sorted([waiting.id, orphan.id])
        finally:
            await engine.stop()

        # A restart (recovery reads the store) finishes both as well.
        engine = await _engine(store, watchdog_interval_s=0.05)
        try:
            assert json.loads(await asyncio.wait_for(engine.wait_result(orphan.id), 10)) == {
                "value": "hello"
            }
            assert json.loads(await asyncio.wait_for(engine.wait_result(waiting.id), 10)) == {
                "value": "approved"
            }
            nap_rec = await store.get_invocation(sleeping.id)
            assert nap_rec is not None and nap_rec.status == "suspended"  # still sleeping
        finally:
            await engine.stop()
            await store.close()

    asyncio.run(main())


def test_a_stuck_invocation_is_counted_and_re_driven_by_the_running_watchdog() -> None:
    async def main() -> None:
        store = MemoryStore()
        await store.open()
        engine = await _engine(store, watchdog_interval_s=0.05)
        try:
            target = engine.registry.resolve("Dog", "wait")
            assert target is not None
            rec, _ = await engine.submit(target, None, "null")

            async def suspended() -> bool:
                found = await store.get_invocation(rec.id)
                return found is not None and found.status == "suspended"

            await _until(suspended)
            entries, _ = await store.get_journal(rec.id)
            index = next(i for i, e in enumerate(entries) if json.loads(e)["kind"] == "awakeable")
            await store.commit(
                CommitUnit(completions=[(rec.id, index, completion_text(index, '{"value":7}'))])
            )
            assert json.loads(await asyncio.wait_for(engine.wait_result(rec.id), 10)) == {
                "value": "7"
            }
            assert engine.counters["stuck"] == 1
        finally:
            await engine.stop()
            await store.close()

    asyncio.run(main())


@svc.handler()
async def race(ctx: Context) -> str:
    from ritornello import select

    _, decision = ctx.awakeable()
    winner = await select(decision=decision, timeout=ctx.sleep(timedelta(seconds=30)))
    return str(winner)


def test_a_sleep_that_lost_a_select_leaves_no_timer_behind() -> None:
    async def main() -> None:
        store = MemoryStore()
        await store.open()
        engine = await _engine(store, watchdog_interval_s=0)
        try:
            target = engine.registry.resolve("Dog", "race")
            assert target is not None
            rec, _ = await engine.submit(target, None, "null")

            async def armed() -> bool:
                return bool(await store.list_timers())

            await _until(armed)
            entries, _ = await store.get_journal(rec.id)
            index = next(i for i, e in enumerate(entries) if json.loads(e)["kind"] == "awakeable")
            aid = json.loads(entries[index])["id"]
            await engine.complete_awakeable(aid, '{"value":"now"}')
            await asyncio.wait_for(engine.wait_result(rec.id), 10)
            assert await store.list_timers() == []
            assert not engine.timers.pending(rec.id, "sleep", index + 1)
        finally:
            await engine.stop()
            await store.close()

    asyncio.run(main())
