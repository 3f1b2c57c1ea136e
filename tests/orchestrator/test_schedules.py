"""The scheduler (orchestrator/schedules) on the in-memory store with an in-process
endpoint and a manual clock: each pass is driven by hand with ``tick()``, so fire times,
catch-up, overlap and pausing are checked exactly, without waiting on real time."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest

from ritornello import Context, Endpoint, Service, VirtualObject
from ritornello.orchestrator import Engine, ManualClock, OrchestratorError, http_status
from ritornello.orchestrator.schedules import Cron, idempotency_key
from ritornello.protocol import RetryPolicy
from ritornello.store import InvocationRecord, ScheduleRecord
from ritornello.store.memory import MemoryStore

T0 = 1_700_000_000_000  # 22:13:20 UTC: a multiple of ten seconds
M0 = 1_700_000_100_000  # 22:15:00 UTC: a multiple of five minutes
FAST = RetryPolicy(initial_interval_ms=5, factor=2.0, max_interval_ms=20)

ticker = Service("Ticker")
counter = VirtualObject("Counter")
failures: dict[str, int] = {}


@ticker.handler()
async def beat(ctx: Context, label: str) -> str:
    return label


@ticker.handler()
async def slow(ctx: Context, label: str) -> str:
    await ctx.sleep(timedelta(hours=1))  # the manual clock never gets there
    return label


@ticker.handler()
async def flaky(ctx: Context, name: str) -> str:
    n = failures.get(name, 0)
    if n < 2:
        failures[name] = n + 1
        raise RuntimeError(f"boom {n}")
    return "ok"


@counter.handler()
async def add(ctx: Context, n: int) -> int:
    total = (await ctx.get("total") or 0) + n
    ctx.set("total", total)
    return int(total)


Body = Callable[[Engine, MemoryStore, ManualClock], Awaitable[None]]


def with_engine(body: Body, **kw: Any) -> None:
    async def main() -> None:
        store = MemoryStore()
        await store.open()
        clock = ManualClock(T0)
        endpoint = Endpoint([ticker, counter])
        engine = Engine(
            store,
            clock=clock,
            retry=FAST,
            inprocess={"app": endpoint.inprocess()},
            schedule_interval_s=0,  # no background loop: the test calls tick()
            **kw,
        )
        await engine.start()
        await engine.register_deployment("inproc://app")
        try:
            await body(engine, store, clock)
        finally:
            await engine.stop()

    asyncio.run(main())


async def fired(store: MemoryStore, schedule_id: str) -> list[InvocationRecord]:
    """The invocations created for the schedule, by fire time."""
    prefix = f"schedule:{schedule_id}:"
    found = [
        r
        for r in await store.list_invocations()
        if r.idempotency_key is not None and r.idempotency_key.startswith(prefix)
    ]
    return sorted(found, key=lambda r: int(str(r.idempotency_key)[len(prefix) :]))


def fire_times(records: list[InvocationRecord], schedule_id: str) -> list[int]:
    return [int(str(r.idempotency_key).rsplit(":", 1)[1]) - T0 for r in records]


async def current(store: MemoryStore, schedule_id: str) -> ScheduleRecord:
    found = await store.get_schedule(schedule_id)
    assert found is not None
    return found


# --- cron expressions --------------------------------------------------------------------


def test_cron_five_and_six_fields() -> None:
    every5min = Cron("*/5 * * * *")
    assert every5min.next_after(M0) == M0 + 300_000
    assert every5min.next_after(M0 - 1) == M0
    assert every5min.latest_at_or_before(M0) == M0
    assert every5min.latest_at_or_before(M0 + 299_999) == M0
    assert every5min.count_between(M0, M0 + 3_600_000) == 11
    every2s = Cron("*/2 * * * * *")  # the seconds field leads
    assert every2s.next_after(T0) == T0 + 2000
    assert every2s.next_after(T0 + 1500) == T0 + 2000
    assert every2s.latest_at_or_before(T0 + 3999) == T0 + 2000
    assert Cron("@hourly").next_after(T0 - 1) is not None
    paris = Cron("0 9 * * *", "Europe/Paris")  # 09:00 in Paris is 08:00 UTC in November
    assert (paris.next_after(T0) or 0) % 86_400_000 == 8 * 3_600_000


@pytest.mark.parametrize(
    ("expr", "zone", "message"),
    [
        ("61 * * * *", "UTC", "not valid"),
        ("* * * *", "UTC", "5 fields"),
        ("* * * * * * *", "UTC", "5 fields"),
        ("", "UTC", "5 fields"),
        ("*/0 * * * *", "UTC", "not valid"),
        ("* * 31 2 *", "UTC", "never fires"),
        ("* * * * *", "Mars/Olympus", "time zone"),
    ],
)
def test_bad_cron_is_refused_clearly(expr: str, zone: str, message: str) -> None:
    with pytest.raises(OrchestratorError, match=message) as info:
        Cron(expr, zone)
    assert http_status(info.value) == 400


# --- firing ------------------------------------------------------------------------------


def test_fires_on_time_once_per_fire_time() -> None:
    async def body(engine: Engine, store: MemoryStore, clock: ManualClock) -> None:
        s = await engine.schedules.create(
            cron="*/10 * * * * *", target="Ticker/beat", key=None, input_text='"tick"'
        )
        assert s.id.startswith("sch_") and s.checked_until == T0
        assert engine.schedules.next_fire_at(s) == T0 + 10_000
        assert await engine.schedules.tick() == T0 + 10_000  # nothing due yet
        clock.advance(9_999)
        await engine.schedules.tick()
        assert await fired(store, s.id) == []
        clock.advance(1)
        assert await engine.schedules.tick() == T0 + 20_000
        assert await engine.schedules.tick() == T0 + 20_000  # again: nothing more
        first = (await fired(store, s.id))[0]
        result = await asyncio.wait_for(engine.wait_result(first.id), 10)
        assert json.loads(result) == {"value": "tick"}  # an ordinary invocation
        clock.advance(10_000)
        await engine.schedules.tick()
        records = await fired(store, s.id)
        assert fire_times(records, s.id) == [10_000, 20_000]
        assert {(r.service, r.handler, r.key) for r in records} == {("Ticker", "beat", None)}
        now = await current(store, s.id)
        assert (now.fires, now.missed, now.skipped) == (2, 0, 0)
        assert (now.last_fire_at, now.last_invocation_id) == (T0 + 20_000, records[-1].id)
        assert now.checked_until == T0 + 20_000 and now.version == 3

    with_engine(body)


def test_a_fire_that_crashed_before_its_record_moved_is_not_fired_again() -> None:
    async def body(engine: Engine, store: MemoryStore, clock: ManualClock) -> None:
        s = await engine.schedules.create(
            cron="*/10 * * * * *", target="Counter/add", key="c1", input_text="1"
        )
        clock.advance(10_000)
        # What a process that died after submit (crash point after-fire) left behind:
        target = engine.registry.resolve("Counter", "add")
        assert target is not None
        earlier, created = await engine.submit(
            target, "c1", "1", idempotency_key=idempotency_key(s.id, T0 + 10_000)
        )
        assert created
        await engine.schedules.tick()  # the restarted scheduler finds the time still due
        records = await fired(store, s.id)
        assert [r.id for r in records] == [earlier.id]
        now = await current(store, s.id)
        assert (now.fires, now.last_invocation_id, now.checked_until) == (
            1,
            earlier.id,
            T0 + 10_000,
        )

    with_engine(body)


def test_catch_up_fires_the_latest_missed_time_once_and_counts_the_rest() -> None:
    async def body(engine: Engine, store: MemoryStore, clock: ManualClock) -> None:
        s = await engine.schedules.create(
            cron="*/10 * * * * *", target="Ticker/beat", key=None, input_text='"x"'
        )
        clock.advance(65_000)  # fire times +10 .. +60 passed with nobody firing
        assert await engine.schedules.tick() == T0 + 70_000
        assert fire_times(await fired(store, s.id), s.id) == [60_000]
        now = await current(store, s.id)
        assert (now.fires, now.missed, now.checked_until) == (1, 5, T0 + 60_000)
        assert engine.counters["schedule_missed"] == 5

    with_engine(body)


@pytest.mark.parametrize("overlap", ["skip", "allow"])
def test_overlap(overlap: str) -> None:
    async def body(engine: Engine, store: MemoryStore, clock: ManualClock) -> None:
        s = await engine.schedules.create(
            cron="*/10 * * * * *",
            target="Ticker/slow",
            key=None,
            input_text='"x"',
            overlap=overlap,
        )
        clock.advance(10_000)
        await engine.schedules.tick()
        first = (await fired(store, s.id))[0]
        for _ in range(200):  # let the first invocation reach its (hour-long) sleep
            rec = await store.get_invocation(first.id)
            if rec is not None and rec.status == "suspended":
                break
            await asyncio.sleep(0.01)
        clock.advance(10_000)
        await engine.schedules.tick()
        now = await current(store, s.id)
        times = fire_times(await fired(store, s.id), s.id)
        if overlap == "skip":
            assert times == [10_000]
            assert (now.fires, now.skipped, now.checked_until) == (1, 1, T0 + 20_000)
        else:
            assert times == [10_000, 20_000]
            assert (now.fires, now.skipped) == (2, 0)

    with_engine(body)


def test_paused_schedules_do_not_fire_and_resume_from_now() -> None:
    async def body(engine: Engine, store: MemoryStore, clock: ManualClock) -> None:
        s = await engine.schedules.create(
            cron="*/10 * * * * *", target="Ticker/beat", key=None, input_text='"x"'
        )
        paused = await engine.schedules.pause(s.id)
        assert paused.paused and engine.schedules.next_fire_at(paused) is None
        with pytest.raises(OrchestratorError, match="already paused"):
            await engine.schedules.pause(s.id)
        clock.advance(35_000)
        await engine.schedules.tick()
        assert await fired(store, s.id) == []
        resumed = await engine.schedules.resume(s.id)
        assert resumed.checked_until == T0 + 35_000  # the paused times are not due
        with pytest.raises(OrchestratorError, match="not paused"):
            await engine.schedules.resume(s.id)
        await engine.schedules.tick()
        assert await fired(store, s.id) == []
        clock.advance(5_000)
        await engine.schedules.tick()
        assert fire_times(await fired(store, s.id), s.id) == [40_000]
        assert (await current(store, s.id)).missed == 0
        await engine.schedules.delete(s.id)
        with pytest.raises(OrchestratorError, match="not found") as info:
            await engine.schedules.delete(s.id)
        assert http_status(info.value) == 404
        clock.advance(10_000)
        await engine.schedules.tick()
        assert len(await fired(store, s.id)) == 1

    with_engine(body)


def test_only_a_leader_fires() -> None:
    async def body(engine: Engine, store: MemoryStore, clock: ManualClock) -> None:
        follower = Engine(store, clock=clock, lead=False, schedule_interval_s=0)
        await follower.start()
        try:
            s = await engine.schedules.create(
                cron="*/10 * * * * *", target="Ticker/beat", key=None, input_text='"x"'
            )
            clock.advance(10_000)
            assert await follower.schedules.tick() is None
            assert await fired(store, s.id) == []
            await engine.schedules.tick()
            assert len(await fired(store, s.id)) == 1
        finally:
            await follower.stop()

    with_engine(body)


@pytest.mark.parametrize(
    ("target", "key", "status", "message"),
    [
        ("Nope/beat", None, 404, "service Nope not found"),
        ("Ticker/nope", None, 404, "handler Ticker/nope not found"),
        ("Ticker", None, 400, "Service/handler"),
        ("Ticker/beat", "k", 400, "takes no key"),
        ("Counter/add", None, 400, "give a key"),
    ],
)
def test_create_refuses_bad_targets(
    target: str, key: str | None, status: int, message: str
) -> None:
    async def body(engine: Engine, store: MemoryStore, clock: ManualClock) -> None:
        with pytest.raises(OrchestratorError, match=message) as info:
            await engine.schedules.create(
                cron="* * * * *", target=target, key=key, input_text="null"
            )
        assert http_status(info.value) == status
        assert await store.list_schedules() == []

    with_engine(body)


@pytest.mark.parametrize(
    ("target", "key", "input_text", "message"),
    [
        ("Ticker/beat", None, "1e999", "invalid JSON schedule input"),
        ("Ticker/beat", None, "[Infinity]", "invalid JSON schedule input"),
        ("Ticker/beat", None, '{"a": NaN}', "invalid JSON schedule input"),
        ("Ticker/beat", None, "[" * 300 + "]" * 300, "deeper than 128"),
        ("Ticker/beat", None, str(-(2**63) - 1), "64 bits"),
        ("Ticker/beat", None, "", "invalid JSON"),
        ("Counter/add", "a\x00b", "1", "control characters"),
        ("Counter/add", "\udc80", "1", "UTF-8"),
    ],
)
def test_create_takes_input_and_keys_as_the_ingress_does(
    target: str, key: str | None, input_text: str, message: str
) -> None:
    """Every caller of the scheduler (the admin API, its Lambda, code) gets the ingress's
    checks: each fire submits the input and key as they are, so a bad one is refused (400)
    before it is stored, never written into journals."""

    async def body(engine: Engine, store: MemoryStore, clock: ManualClock) -> None:
        with pytest.raises(OrchestratorError, match=message) as info:
            await engine.schedules.create(
                cron="* * * * *", target=target, key=key, input_text=input_text
            )
        assert http_status(info.value) == 400
        assert await store.list_schedules() == []

    with_engine(body)


# --- retry history -----------------------------------------------------------------------


def test_failed_attempts_are_kept_in_the_history() -> None:
    async def body(engine: Engine, store: MemoryStore, clock: ManualClock) -> None:
        target = engine.registry.resolve("Ticker", "flaky")
        assert target is not None
        rec, _ = await engine.submit(target, None, '"h1"')
        for _ in range(400):  # backoff timers run on the manual clock: move it along
            done = await store.get_invocation(rec.id)
            if done is not None and done.status == "completed":
                break
            clock.advance(50)
            engine.timers.poke()
            await asyncio.sleep(0.005)
        final = await store.get_invocation(rec.id)
        assert final is not None and final.status == "completed"
        history = json.loads(final.history or "[]")
        assert [h["attempt"] for h in history] == [1, 2]
        assert all("boom" in h["error"] and h["at"] >= T0 for h in history)
        assert history[0]["at"] <= history[1]["at"]

    with_engine(body)


def test_a_fire_racing_with_a_pause_is_still_recorded() -> None:
    async def body(engine: Engine, store: MemoryStore, clock: ManualClock) -> None:
        s = await engine.schedules.create(
            cron="*/10 * * * * *", target="Ticker/beat", key=None, input_text='"x"'
        )
        await engine.schedules.pause(s.id)  # lands between the fire's read and its write
        await engine.schedules._record_fire(s, T0 + 10_000, "inv_fired", 0)
        now = await current(store, s.id)
        assert (now.paused, now.fires, now.last_invocation_id) == (True, 1, "inv_fired")
        assert now.checked_until == T0 + 10_000 and now.version == 3
        await engine.schedules._record_fire(s, T0 + 10_000, "inv_fired", 0)  # recorded: no-op
        assert (await current(store, s.id)).fires == 1
        await engine.schedules.delete(s.id)
        await engine.schedules._record_fire(s, T0 + 20_000, "inv_2", 0)  # gone: nothing to do
        assert await store.get_schedule(s.id) is None

    with_engine(body)


def test_a_schedule_whose_handler_is_gone_waits_for_it() -> None:
    async def body(engine: Engine, store: MemoryStore, clock: ManualClock) -> None:
        s = await engine.schedules.create(
            cron="*/10 * * * * *", target="Ticker/beat", key=None, input_text='"x"'
        )
        (dep_id,) = list(engine.registry.deployments)
        assert await engine.delete_deployment(dep_id)
        clock.advance(25_000)
        assert await engine.schedules.tick() is None
        assert await fired(store, s.id) == []
        assert (await current(store, s.id)).checked_until == T0  # not skipped: still due
        await engine.register_deployment("inproc://app")
        await engine.schedules.tick()
        assert fire_times(await fired(store, s.id), s.id) == [20_000]
        assert (await current(store, s.id)).missed == 1

    with_engine(body)
