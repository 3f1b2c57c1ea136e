"""The invariant checker's ``schedule`` kind (orchestrator/check/_schedules.py), beside
test_check.py and with its helpers: what the real scheduler leaves behind after several fires,
skips, a catch-up, a pause and a crash at ``after-fire`` is clean; each rule broken by writing
a bad schedule or invocation straight into a store (memory and SQLite) is reported, alone,
with kind ``schedule`` and a message saying what is wrong; the states the engine allows are
not."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ritornello import Context, Endpoint, Service, VirtualObject
from ritornello.cli import app
from ritornello.orchestrator import Engine, ManualClock
from ritornello.orchestrator.check import check_store
from ritornello.orchestrator.schedules import idempotency_key
from ritornello.protocol import RetryPolicy
from ritornello.store import ScheduleRecord, Store
from ritornello.store.memory import MemoryStore
from ritornello.store.sqlite import SqliteStore
from tests.orchestrator.test_check import BACKENDS, NOW, Scenario, _check, _rec, _store, _write

T0 = 1_700_000_000_000  # a multiple of twenty seconds

cron_svc = Service("CheckCron")
cron_obj = VirtualObject("CheckCronObj")


@cron_svc.handler()
async def beat(ctx: Context, label: str) -> str:
    return label


@cron_svc.handler()
async def slow(ctx: Context, label: str) -> str:
    await ctx.sleep(timedelta(hours=1))  # the manual clock never gets there
    return label


@cron_obj.handler()
async def bump(ctx: Context, n: int) -> int:
    total = int(await ctx.get("total") or 0) + n
    ctx.set("total", total)
    return total


# ------------------------------------------------------------------- the real scheduler


@pytest.mark.parametrize("backend", BACKENDS)
def test_what_the_scheduler_leaves_is_clean(backend: str, tmp_path: Path) -> None:
    async def main() -> None:
        async with _store(backend, tmp_path) as store:
            clock = ManualClock(T0)
            engine = Engine(
                store,
                clock=clock,
                retry=RetryPolicy(initial_interval_ms=5, factor=2.0, max_interval_ms=20),
                inprocess={"app": Endpoint([cron_svc, cron_obj]).inprocess()},
                schedule_interval_s=0,  # no background loop: the test calls tick()
            )
            await engine.start()
            try:
                await engine.register_deployment("inproc://app")
                sch = engine.schedules
                every = await sch.create(
                    cron="*/10 * * * * *",
                    target="CheckCron/beat",
                    key=None,
                    input_text='"b"',
                    overlap="allow",
                )
                keyed = await sch.create(
                    cron="*/10 * * * * *", target="CheckCronObj/bump", key="k", input_text="1"
                )
                skipping = await sch.create(
                    cron="*/10 * * * * *", target="CheckCron/slow", key=None, input_text='"s"'
                )
                paris = await sch.create(
                    cron="*/20 * * * * *",
                    target="CheckCron/beat",
                    key=None,
                    input_text='"p"',
                    timezone="Europe/Paris",
                )
                for _ in range(3):
                    clock.advance(10_000)
                    await sch.tick()
                clock.advance(35_000)  # +40 and +50 pass unfired: catch-up fires +60
                await sch.tick()
                await sch.pause(paris.id)
                # A crash at after-fire: keyed's next fire time has its invocation, and
                # the schedule has not moved on.
                clock.advance(10_000)
                target = engine.registry.resolve("CheckCronObj", "bump")
                assert target is not None
                crashed, created = await engine.submit(
                    target, "k", "1", idempotency_key=idempotency_key(keyed.id, T0 + 70_000)
                )
                assert created
                for rec in await store.list_invocations():
                    if rec.handler != "slow":
                        await asyncio.wait_for(engine.wait_result(rec.id), 10)
                live = await check_store(store)
                assert live.violations == [], live.violations
            finally:
                await engine.stop()
            by_id = {s.id: s for s in await store.list_schedules()}
            # the scenario did what it says: fires, misses, skips, a pause, the crash
            assert (by_id[every.id].fires, by_id[every.id].missed) == (4, 2)
            assert (by_id[skipping.id].fires, by_id[skipping.id].skipped) == (1, 3)
            assert by_id[paris.id].paused and by_id[paris.id].fires == 2
            assert by_id[keyed.id].checked_until == T0 + 60_000
            assert by_id[keyed.id].last_invocation_id != crashed.id
            report = await check_store(store)
            assert report.violations == [], report.violations
            assert report.schedules == 4
            assert report.invocations == 4 + 4 + 1 + 2 + 1

    asyncio.run(main())


# ------------------------------------------------------------------------------ by hand

FIRE = NOW + 10_000  # NOW is 1,000 s: a fire time of every ten seconds


def _sched(**kw: Any) -> ScheduleRecord:
    """A schedule every ten seconds that fired once, at FIRE, invocation inv_f."""
    fields: dict[str, Any] = {
        "id": "sch_1",
        "cron": "*/10 * * * * *",
        "service": "Svc",
        "handler": "h",
        "key": None,
        "input": '"x"',
        "overlap": "skip",
        "timezone": "UTC",
        "paused": False,
        "created_at": NOW,
        "checked_until": FIRE,
        "last_fire_at": FIRE,
        "last_invocation_id": "inv_f",
        "fires": 1,
    }
    fields.update(kw)
    return ScheduleRecord(**fields)


def _with(schedule: ScheduleRecord, *invocations: Any) -> Scenario:
    async def scenario(store: Store) -> None:
        for n, rec in enumerate(invocations):
            await _write(store, replace(rec, seq=n + 1))
        await store.put_schedule(schedule)

    return scenario


FIRED = _rec("inv_f", idempotency_key=idempotency_key("sch_1", FIRE))


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_schedule_that_fired_is_clean(backend: str, tmp_path: Path) -> None:
    report = _check(backend, tmp_path, _with(_sched(), FIRED))
    assert report.violations == [] and report.schedules == 1


BROKEN: dict[str, tuple[ScheduleRecord, list[Any], str]] = {
    "cron": (_sched(cron="61 * * * *"), [FIRED], "is not valid"),
    "timezone": (_sched(timezone="Mars/Olympus"), [FIRED], "unknown time zone"),
    "target": (_sched(handler=""), [replace(FIRED, handler="")], "is not Service/handler"),
    "input": (_sched(input="{"), [FIRED], "input is not JSON"),
    # the standard library reads these; the scheduler (and every ingress body) refuses them
    "input infinity": (_sched(input="[Infinity]"), [FIRED], "input is not JSON"),
    "input 1e999": (_sched(input="1e999"), [FIRED], "input is not JSON"),
    "input too deep": (_sched(input="[" * 300 + "]" * 300), [FIRED], "deeper than 128"),
    "input past 64 bits": (_sched(input=str(2**64)), [FIRED], "64 bits"),
    "partition": (_sched(partition=1), [FIRED], "in partition 1, but its id hashes to 0"),
    "counter": (_sched(missed=-1), [FIRED], "missed -1"),
    "created": (
        _sched(fires=0, last_fire_at=None, last_invocation_id=None, checked_until=NOW - 1),
        [],
        f"checked_until {NOW - 1} is before created_at {NOW}",
    ),
    "id without time": (_sched(last_fire_at=None), [FIRED], "disagree"),
    "time without id": (_sched(last_invocation_id=None), [FIRED], "disagree"),
    "no fires": (_sched(fires=0), [FIRED], "disagree"),
    "skipped unfired": (
        _sched(fires=0, last_fire_at=None, last_invocation_id=None, skipped=2),
        [],
        "never fired, yet 2 skipped",
    ),
    "skipped allowed": (_sched(overlap="allow", skipped=1), [FIRED], "skipped with overlap"),
    "fired after checked": (_sched(checked_until=FIRE - 1), [FIRED], "at or before checked_until"),
    "not a fire time": (
        _sched(last_fire_at=FIRE + 5_000, checked_until=FIRE + 5_000),
        [replace(FIRED, idempotency_key=idempotency_key("sch_1", FIRE + 5_000))],
        "is not a fire time",
    ),
    "last of another handler": (_sched(), [replace(FIRED, handler="other")], "last invocation"),
    "last of another key": (_sched(), [replace(FIRED, key="k")], "last invocation"),
    "last of another fire": (
        _sched(),
        [replace(FIRED, idempotency_key=idempotency_key("sch_1", FIRE - 10_000))],
        f"not Svc/h with idempotency key 'schedule:sch_1:{FIRE}'",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
@pytest.mark.parametrize("backend", BACKENDS)
def test_each_broken_schedule_rule_is_reported(backend: str, case: str, tmp_path: Path) -> None:
    schedule, invocations, message = BROKEN[case]
    report = _check(backend, tmp_path, _with(schedule, *invocations))
    assert [(v.kind, v.invocation_id) for v in report.violations] == [("schedule", "sch_1")], (
        report.violations
    )
    assert message in report.violations[0].message, report.violations[0].message


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_unknown_overlap_is_reported(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every store refuses to write one (check_schedule): let it, as an old or foreign writer
    might have."""
    monkeypatch.setattr("ritornello.store.memory.check_schedule", lambda *a: None)
    monkeypatch.setattr("ritornello.store.sqlite.check_schedule", lambda *a: None)
    report = _check(backend, tmp_path, _with(_sched(overlap="sometimes"), FIRED))
    assert [(v.kind, v.invocation_id) for v in report.violations] == [("schedule", "sch_1")]
    assert "overlap 'sometimes' is not one of skip, allow" in report.violations[0].message


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_partitioned_schedule_hashes_by_id(backend: str, tmp_path: Path) -> None:
    async def main() -> list[tuple[str, str | None, str]]:
        store: Store
        if backend == "memory":
            store = MemoryStore(4)
        else:
            store = SqliteStore(tmp_path / "check.db", partitions=4)
        async with store:
            unfired = {"fires": 0, "last_fire_at": None, "last_invocation_id": None}
            await store.put_schedule(_sched(id="sch_a", partition=2, **unfired))
            await store.put_schedule(_sched(id="sch_b", partition=2, **unfired))
            report = await check_store(store, now_ms=NOW)
            return [(v.kind, v.invocation_id, v.message) for v in report.violations]

    # crc32("sch_a") % 4 == 2, crc32("sch_b") % 4 == 0
    assert asyncio.run(main()) == [
        ("schedule", "sch_b", "in partition 2, but its id hashes to 0 of 4")
    ]


@pytest.mark.parametrize("backend", BACKENDS)
def test_two_invocations_for_one_fire_time(backend: str, tmp_path: Path) -> None:
    """The stores' unique index makes it impossible; drop it and write the second anyway."""

    async def scenario(store: Store) -> None:
        await _with(_sched(), FIRED)(store)
        if isinstance(store, MemoryStore):
            store._idempotency.clear()
        else:
            with sqlite3.connect(tmp_path / "check.db") as raw:
                raw.execute("DROP INDEX invocations_idempotency")
            raw.close()
        await _write(store, replace(FIRED, id="inv_g", seq=2))

    report = _check(backend, tmp_path, scenario)
    assert [(v.kind, v.invocation_id) for v in report.violations] == [("schedule", "sch_1")]
    assert "2 invocations of Svc/h with idempotency key" in report.violations[0].message
    assert "inv_f, inv_g" in report.violations[0].message


def test_a_fire_its_idempotency_key_does_not_find() -> None:
    """MemoryStore's idempotency index loses the last fire's invocation, and one after
    checked_until (a crash at after-fire): the scheduler would create a second for either.
    (SQLite's index is on the row itself: it cannot lose one.)"""

    async def main() -> list[tuple[str, str | None, str]]:
        async with MemoryStore() as store:
            after = _rec(
                "inv_n", "running", idempotency_key=idempotency_key("sch_1", FIRE + 10_000)
            )
            earlier = _rec("inv_e", idempotency_key=idempotency_key("sch_1", FIRE - 10_000))
            await _with(_sched(created_at=NOW - 20_000), FIRED, after, earlier)(store)
            store._idempotency.clear()  # the scheduler never submits inv_e's time again
            report = await check_store(store, now_ms=NOW)
            return [(v.kind, v.invocation_id, v.message) for v in report.violations]

    found = asyncio.run(main())
    assert [(kind, sid) for kind, sid, _ in found] == [("schedule", "sch_1")] * 2
    assert "invocation inv_f is not found by its idempotency key" in found[0][2]
    assert "invocation inv_n is not found by its idempotency key" in found[1][2]


@pytest.mark.parametrize("backend", BACKENDS)
def test_what_the_engine_allows_is_not_reported(backend: str, tmp_path: Path) -> None:
    """A crash at after-fire (before the first fire is recorded, and after a later one), the
    earlier time's invocation of a fire that was counted as missed, a purged last
    invocation, and a client's own ``schedule:`` idempotency key on another target."""
    crash_first = _sched(
        id="sch_2", fires=0, last_fire_at=None, last_invocation_id=None, checked_until=NOW
    )
    purged = _sched(id="sch_3", last_invocation_id="inv_gone")
    invocations = [
        FIRED,
        _rec("inv_crash", "running", idempotency_key=idempotency_key("sch_1", FIRE + 10_000)),
        _rec("inv_crash_2", "pending", idempotency_key=idempotency_key("sch_2", FIRE)),
        _rec("inv_missed", idempotency_key=idempotency_key("sch_1", FIRE - 10_000)),
        _rec("inv_client", service="Other", idempotency_key=idempotency_key("sch_1", FIRE)),
    ]

    async def scenario(store: Store) -> None:
        await _with(_sched(missed=1, created_at=NOW - 20_000), *invocations)(store)
        await store.put_schedule(crash_first)
        await store.put_schedule(purged)

    report = _check(backend, tmp_path, scenario)
    assert report.violations == [] and report.schedules == 3


def test_schedule_violations_recur_under_recheck() -> None:
    async def main() -> None:
        async with MemoryStore() as store:
            await _with(_sched(fires=0), FIRED)(store)
            report = await check_store(store, now_ms=NOW, recheck_s=0.05)
            assert [v.kind for v in report.violations] == ["schedule"]

    asyncio.run(main())


def test_the_check_report_counts_schedules_in_json(tmp_path: Path) -> None:
    db = tmp_path / "cli.db"

    async def build() -> None:
        async with SqliteStore(db) as store:
            await _with(_sched(fires=0), FIRED)(store)

    asyncio.run(build())
    result = CliRunner().invoke(app, ["check", "--store", f"sqlite:///{db}", "--json"])
    assert result.exit_code == 1, result.output
    payload = json.loads(result.output)
    assert payload["schedules"] == 1
    assert [(v["kind"], v["invocation_id"]) for v in payload["violations"]] == [
        ("schedule", "sch_1")
    ]
