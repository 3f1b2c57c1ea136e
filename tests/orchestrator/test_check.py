"""The invariant checker (orchestrator/check/): each invariant broken on purpose, over the
memory and SQLite stores, is reported with its kind; what a real engine leaves behind (calls,
sends, sleeps, object state, an awakeable, retries; mid-flight and finished) is clean; and the
``ritornello check`` command."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ritornello import Context, Endpoint, Service, VirtualObject
from ritornello.cli import app
from ritornello.orchestrator import Engine
from ritornello.orchestrator.check import KINDS, CheckReport, check_store
from ritornello.orchestrator.check._store import _list_all
from ritornello.protocol import RetryPolicy, derive_id
from ritornello.store import (
    FINAL_STATUSES,
    CommitUnit,
    InvocationRecord,
    InvocationWrite,
    Store,
    TimerRecord,
)
from ritornello.store.memory import MemoryStore
from ritornello.store.sqlite import SqliteStore

BACKENDS = ["memory", "sqlite"]
NOW = 1_000_000

Scenario = Callable[[Store], Awaitable[None]]


def _store(backend: str, tmp_path: Path) -> Store:
    return MemoryStore() if backend == "memory" else SqliteStore(tmp_path / "check.db")


def _check(backend: str, tmp_path: Path, scenario: Scenario, **kw: Any) -> CheckReport:
    async def main() -> CheckReport:
        async with _store(backend, tmp_path) as store:
            await scenario(store)
            return await check_store(store, now_ms=NOW, **kw)

    return asyncio.run(main())


def _kinds(report: CheckReport) -> set[str]:
    assert all(v.kind in KINDS for v in report.violations), report.violations
    return {v.kind for v in report.violations}


def _rec(inv_id: str, status: str = "completed", **kw: Any) -> InvocationRecord:
    fields: dict[str, Any] = {
        "service": "Svc",
        "handler": "h",
        "key": None,
        "handler_kind": "exclusive",
        "deployment_id": "dp_1",
        "seq": 1,
        "created_at": NOW,
        "modified_at": NOW,
    }
    if status in FINAL_STATUSES:
        fields["result"] = '{"value":1}'
    fields.update(kw)
    return InvocationRecord(id=inv_id, status=status, **fields)


def _e(kind: str, **kw: Any) -> str:
    return json.dumps({"kind": kind, **kw})


def _c(index: int) -> str:
    return json.dumps({"index": index, "value": None})


async def _write(
    store: Store,
    rec: InvocationRecord,
    entries: list[str] | None = None,
    completions: dict[int, str] | None = None,
    timers: list[TimerRecord] | None = None,
) -> None:
    """One invocation with its journal (entry 0 the input if not given) and completions."""
    entries = entries if entries is not None else [_e("input", value=1)]
    await store.commit(
        CommitUnit(
            invocations=[InvocationWrite(rec)],
            entries=[(rec.id, i, text) for i, text in enumerate(entries)],
            completions=[(rec.id, i, text) for i, text in (completions or {}).items()],
            timers_add=timers or [],
        )
    )


def _caller_and_callee(
    *, caller_status: str, callee_status: str, delivered: bool, callee: bool = True
) -> Scenario:
    """inv_a called inv_a's derived callee at entry 1 and suspended on it."""

    async def scenario(store: Store) -> None:
        callee_id = derive_id("inv_a", 1)
        caller_kw: dict[str, Any] = {"journal_len": 2}
        if caller_status == "suspended":
            caller_kw["waiting"] = (1,)
        entries = [_e("input", value=0), _e("call", name="Svc/h", id=callee_id, input=1)]
        await _write(
            store,
            _rec("inv_a", caller_status, **caller_kw),
            entries,
            {1: _c(1)} if delivered else None,
        )
        if callee:
            await _write(
                store, _rec(callee_id, callee_status, seq=2, caller_id="inv_a", caller_index=1)
            )

    return scenario


# ------------------------------------------------------------------------------ violations


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_hand_built_clean_store_is_clean(backend: str, tmp_path: Path) -> None:
    async def scenario(store: Store) -> None:
        await _caller_and_callee(
            caller_status="suspended", callee_status="running", delivered=False
        )(store)
        sleeper = _rec("inv_s", "suspended", journal_len=2, waiting=(1,), seq=3)
        await _write(
            store,
            sleeper,
            [_e("input"), _e("sleep", duration_ms=5, wake_at=NOW + 5)],
            timers=[TimerRecord(NOW + 5, "inv_s", "sleep", 1)],
        )
        await _write(
            store,
            _rec("inv_r", "backing-off", seq=4, next_at=NOW + 50, attempt=2),
            timers=[TimerRecord(NOW + 50, "inv_r", "retry")],
        )
        await _write(
            store,
            _rec("inv_d", "scheduled", seq=5, next_at=NOW + 9),
            timers=[TimerRecord(NOW + 9, "inv_d", "start")],
        )

    report = _check(backend, tmp_path, scenario, expect_ids=["inv_a", "inv_s"])
    assert report.violations == []
    assert (report.invocations, report.entries, report.timers) == (5, 7, 3)
    assert report.overdue_timers == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_journal_holes_and_stray_completions(backend: str, tmp_path: Path) -> None:
    async def hole(store: Store) -> None:
        await _write(store, _rec("inv_a", "running", journal_len=3), [_e("input"), _e("run")])

    report = _check(backend, tmp_path / "1", hole)
    assert _kinds(report) == {"journal"}
    assert "journal_len is 3" in report.violations[0].message

    async def stray(store: Store) -> None:
        entries = [_e("input"), _e("run", name="x", value=1)]
        await _write(store, _rec("inv_a", "running", journal_len=2), entries, {1: _c(1), 7: _c(7)})

    report = _check(backend, tmp_path / "2", stray)
    assert _kinds(report) == {"journal"}
    assert len(report.violations) == 2

    async def no_input(store: Store) -> None:
        await _write(store, _rec("inv_a", "running"), [_e("run")])

    assert _kinds(_check(backend, tmp_path / "3", no_input)) == {"journal"}


@pytest.mark.parametrize("backend", BACKENDS)
def test_illegal_record_states(backend: str, tmp_path: Path) -> None:
    async def scenario(store: Store) -> None:
        await _write(store, _rec("inv_a", "completed", result=None))
        await _write(store, _rec("inv_b", "running", seq=2, waiting=(0,)))
        await _write(store, _rec("inv_c", "backing-off", seq=3))
        await _write(store, _rec("inv_d", "killed", seq=4, result='{"value":1,"failure":2}'))
        await _write(store, _rec("inv_e", "weird", seq=5))

    report = _check(backend, tmp_path, scenario)
    assert {(v.kind, v.invocation_id) for v in report.violations} >= {
        ("state", "inv_a"),
        ("state", "inv_b"),
        ("state", "inv_c"),
        ("state", "inv_d"),
        ("state", "inv_e"),
    }
    # backing-off without next_at has no retry timer either: that is liveness's to say
    assert _kinds(report) == {"state", "liveness"}


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_suspension_on_a_non_waiting_entry_is_illegal(backend: str, tmp_path: Path) -> None:
    async def scenario(store: Store) -> None:
        entries = [_e("input"), _e("run", name="x", value=1)]
        await _write(store, _rec("inv_a", "suspended", journal_len=2, waiting=(1,)), entries)

    assert _kinds(_check(backend, tmp_path, scenario)) == {"state"}


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_call_entry_naming_no_callee(backend: str, tmp_path: Path) -> None:
    scenario = _caller_and_callee(
        caller_status="running", callee_status="running", delivered=False, callee=False
    )
    assert _kinds(_check(backend, tmp_path, scenario)) == {"call"}


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_purged_callee_that_delivered_is_fine(backend: str, tmp_path: Path) -> None:
    scenario = _caller_and_callee(
        caller_status="completed", callee_status="completed", delivered=True, callee=False
    )
    assert _check(backend, tmp_path, scenario).violations == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_finished_callee_that_never_delivered(backend: str, tmp_path: Path) -> None:
    scenario = _caller_and_callee(
        caller_status="running", callee_status="completed", delivered=False
    )
    report = _check(backend, tmp_path, scenario)
    assert _kinds(report) == {"call"}
    assert report.violations[0].invocation_id == derive_id("inv_a", 1)


@pytest.mark.parametrize("backend", BACKENDS)
def test_suspended_on_a_finished_callee_is_not_live(backend: str, tmp_path: Path) -> None:
    scenario = _caller_and_callee(
        caller_status="suspended", callee_status="completed", delivered=False
    )
    assert _kinds(_check(backend, tmp_path, scenario)) == {"call", "liveness"}


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_lost_wakeup_is_stuck(backend: str, tmp_path: Path) -> None:
    scenario = _caller_and_callee(
        caller_status="suspended", callee_status="completed", delivered=True
    )
    report = _check(backend, tmp_path, scenario)
    assert _kinds(report) == {"stuck"}
    assert report.violations[0].invocation_id == "inv_a"

    async def cancelled(store: Store) -> None:
        entries = [_e("input"), _e("awakeable", id="sign_x")]
        rec = _rec("inv_a", "suspended", journal_len=2, waiting=(1,))
        await _write(store, rec, entries, {-1: _c(-1)})

    assert _kinds(_check(backend, tmp_path / "2", cancelled)) == {"stuck"}


@pytest.mark.parametrize("backend", BACKENDS)
def test_waiting_on_nothing_real(backend: str, tmp_path: Path) -> None:
    async def scenario(store: Store) -> None:
        entries = [_e("input"), _e("sleep", duration_ms=5, wake_at=NOW + 5)]
        await _write(store, _rec("inv_a", "suspended", journal_len=2, waiting=(1,)), entries)
        await _write(store, _rec("inv_b", "scheduled", seq=2, next_at=NOW))
        wf = _rec(
            "inv_w",
            "suspended",
            seq=3,
            key="k1",
            handler_kind="workflow",
            waiting=(1,),
            journal_len=2,
        )
        await _write(store, wf, [_e("input"), _e("promise_get", name="p")])

    report = _check(backend, tmp_path, scenario)
    assert {(v.kind, v.invocation_id) for v in report.violations} == {
        ("liveness", "inv_a"),
        ("liveness", "inv_b"),
        ("liveness", "inv_w"),
    }


@pytest.mark.parametrize("backend", BACKENDS)
def test_timers_that_match_nothing(backend: str, tmp_path: Path) -> None:
    async def scenario(store: Store) -> None:
        await store.commit(CommitUnit(timers_add=[TimerRecord(NOW, "inv_gone", "sleep", 1)]))
        await _write(
            store, _rec("inv_a", "running"), timers=[TimerRecord(NOW - 1, "inv_a", "retry")]
        )
        entries = [_e("input"), _e("sleep", duration_ms=5, wake_at=NOW + 5)]
        await _write(
            store,
            _rec("inv_b", "running", seq=2, journal_len=2),
            entries,
            {1: _c(1)},
            [TimerRecord(NOW + 5, "inv_b", "sleep", 1)],
        )
        # an uncompleted sleep of a running invocation without its timer
        await _write(store, _rec("inv_c", "running", seq=3, journal_len=2), entries)

    report = _check(backend, tmp_path, scenario)
    assert {(v.kind, v.invocation_id) for v in report.violations} == {
        ("timer", "inv_gone"),
        ("timer", "inv_a"),
        ("timer", "inv_b"),
        ("timer", "inv_c"),
    }
    assert report.overdue_timers == 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_two_active_exclusive_handlers_on_one_key(backend: str, tmp_path: Path) -> None:
    async def scenario(store: Store) -> None:
        await _write(store, _rec("inv_a", "running", key="k"))
        await _write(store, _rec("inv_b", "paused", key="k", seq=2))
        await _write(store, _rec("inv_c", "pending", key="k", seq=3))  # waits its turn: fine
        await _write(store, _rec("inv_d", "running", key="k", seq=4, handler_kind="shared"))
        await _write(store, _rec("inv_e", "running", key="other", seq=5))

    report = _check(backend, tmp_path, scenario)
    assert [(v.kind, v.invocation_id) for v in report.violations] == [("exclusive", "inv_b")]


@pytest.mark.parametrize("backend", BACKENDS)
def test_acknowledged_invocations_exist_and_finish(backend: str, tmp_path: Path) -> None:
    async def scenario(store: Store) -> None:
        await _write(store, _rec("inv_a", "completed"))
        await _write(store, _rec("inv_b", "running", seq=2))

    report = _check(backend, tmp_path / "1", scenario, expect_ids=["inv_a", "inv_b", "inv_x"])
    assert [(v.kind, v.invocation_id) for v in report.violations] == [("acknowledged", "inv_x")]
    report = _check(
        backend, tmp_path / "2", scenario, expect_ids=["inv_a", "inv_b"], expect_terminal=True
    )
    assert [(v.kind, v.invocation_id) for v in report.violations] == [("acknowledged", "inv_b")]
    report = _check(backend, tmp_path / "3", scenario, expect_terminal=True)
    assert [(v.kind, v.invocation_id) for v in report.violations] == [("acknowledged", "inv_b")]


@pytest.mark.parametrize("backend", BACKENDS)
def test_values_that_are_not_json_are_reported(backend: str, tmp_path: Path) -> None:
    """The standard library reads ``Infinity``, ``NaN`` and ``1e999``; replay and other SDKs
    would not, and integers past 64 bits come back as floats: each is a ``json`` violation,
    where it is stored (an entry, a completion, a result, a state row)."""

    async def scenario(store: Store) -> None:
        entries = ['{"kind":"input","value":Infinity}', '{"kind":"run","name":"x","value":1}']
        await _write(store, _rec("inv_a", "completed", journal_len=2), entries)
        entries = [_e("input"), _e("awakeable", id="sign_x")]
        completion = '{"index":1,"value":[1,NaN]}'
        await _write(
            store, _rec("inv_b", "running", seq=2, journal_len=2), entries, {1: completion}
        )
        await _write(store, _rec("inv_c", seq=3, result='{"value":1e999}'))
        await _write(store, _rec("inv_d", seq=4, key="k"))
        big = str(2**64)
        await store.commit(CommitUnit(state=[("Svc", "k", "n", big), ("Svc", "k", "ok", "1")]))

    report = _check(backend, tmp_path, scenario)
    found = sorted((v.kind, v.invocation_id or "", v.message) for v in report.violations)
    assert [(kind, about) for kind, about, _ in found] == [
        ("json", ""),
        ("json", "inv_a"),
        ("json", "inv_b"),
        ("json", "inv_c"),
    ], found
    said = {about: message for _, about, message in found}
    assert "entry 0" in said["inv_a"] and "Infinity" in said["inv_a"]
    assert "completion" in said["inv_b"] and "NaN" in said["inv_b"]
    assert "result" in said["inv_c"] and "infinity" in said["inv_c"]
    assert "state 'n' of Svc/k" in said[""] and "64 bits" in said[""], said


@pytest.mark.parametrize("backend", BACKENDS)
def test_paging_reads_invocations_that_share_a_seq(backend: str, tmp_path: Path) -> None:
    """Two orchestrators may give out the same seq: paging by seq must not skip any."""

    async def main() -> None:
        async with _store(backend, tmp_path) as store:
            seqs = [1, 2, 2, 2, 2, 2, 3, 3, 4]
            for n, seq in enumerate(seqs):
                await _write(store, _rec(f"inv_{n}", seq=seq))
            listed = await _list_all(store, page_size=2)
            assert sorted(r.id for r in listed) == sorted(f"inv_{n}" for n in range(len(seqs)))

    asyncio.run(main())


def test_recheck_keeps_only_what_recurs(tmp_path: Path) -> None:
    async def main() -> None:
        async with MemoryStore() as store:
            await _write(store, _rec("inv_a", "backing-off", next_at=NOW))  # no retry timer
            task = asyncio.create_task(check_store(store, now_ms=NOW, recheck_s=0.2))
            await asyncio.sleep(0.05)  # the retry timer turns up meanwhile: not reported
            await store.commit(CommitUnit(timers_add=[TimerRecord(NOW, "inv_a", "retry")]))
            assert (await task).violations == []

    asyncio.run(main())


# --------------------------------------------------------------------- a real engine: clean

svc = Service("CheckSvc")
obj = VirtualObject("CheckObj")
awakeables: dict[str, str] = {}
failures: dict[str, int] = {}


@svc.handler()
async def double(ctx: Context, n: int) -> int:
    return n * 2


@svc.handler()
async def flaky(ctx: Context, name: str) -> str:
    failures[name] = failures.get(name, 0) + 1
    if failures[name] <= 2:
        raise RuntimeError("not yet")
    return "ok"


@svc.handler()
async def waiter(ctx: Context, name: str) -> Any:
    aid, fut = ctx.awakeable()
    await ctx.run("publish", awakeables.__setitem__, name, aid)
    return await fut


@obj.handler()
async def add(ctx: Context, n: int) -> int:
    total: int = await ctx.get("total") or 0
    total += await ctx.call(double, n)
    await ctx.sleep(timedelta(milliseconds=5))
    ctx.set("total", total)
    ctx.send(double, total)
    return total


@svc.handler()
async def flow(ctx: Context, n: int) -> list[Any]:
    out = [await ctx.call(add, i, key="k") for i in range(n)]
    out.append(await ctx.call(flaky, ctx.invocation_id))
    return out


@pytest.mark.parametrize("backend", BACKENDS)
def test_what_a_real_engine_leaves_is_clean(backend: str, tmp_path: Path) -> None:
    async def main() -> None:
        async with _store(backend, tmp_path) as store:
            endpoint = Endpoint([svc, obj])
            engine = Engine(
                store,
                retry=RetryPolicy(initial_interval_ms=5, factor=2.0, max_interval_ms=20),
                inprocess={"app": endpoint.inprocess()},
            )
            await engine.start()
            try:
                await engine.register_deployment("inproc://app")

                async def submit(target: str, value: Any, key: str | None = None) -> str:
                    resolved = engine.registry.resolve(*target.split("/"))
                    assert resolved is not None
                    rec, _ = await engine.submit(resolved, key, json.dumps(value))
                    return rec.id

                name = f"{backend}-{tmp_path.name}"
                waiting = await submit("CheckSvc/waiter", name)
                flows = [await submit("CheckSvc/flow", 3) for _ in range(2)]
                for inv_id in flows:
                    assert json.loads(await asyncio.wait_for(engine.wait_result(inv_id), 20))
                for _ in range(1000):
                    if name in awakeables:
                        break
                    await asyncio.sleep(0.01)
                # mid-flight: one invocation suspended on its awakeable
                mid = await check_store(store)
                assert mid.violations == [], mid.violations
                assert mid.invocations == 1 + 2 * (1 + 3 * 3 + 1)  # flow, add+double+send, flaky
                await engine.complete_awakeable(awakeables[name], '{"value":"woken"}')
                result = await asyncio.wait_for(engine.wait_result(waiting), 10)
                assert json.loads(result) == {"value": "woken"}
                ids = [waiting, *flows]
                for _ in range(500):  # the sends finish on their own
                    report = await check_store(store, expect_ids=ids, expect_terminal=True)
                    if report.ok:
                        break
                    await asyncio.sleep(0.01)
                assert report.violations == [], report.violations
            finally:
                await engine.stop()
            after = await check_store(store, expect_terminal=True)
            assert after.violations == [] and after.entries > after.invocations

    asyncio.run(main())


# ------------------------------------------------------------------------------------ CLI


def test_cli_check_clean_violated_and_json(tmp_path: Path) -> None:
    db = tmp_path / "cli.db"
    url = f"sqlite:///{db}"

    async def build(violate: bool) -> None:
        async with SqliteStore(db) as store:
            await _write(store, _rec(f"inv_{violate}", "running" if violate else "completed"))

    asyncio.run(build(False))
    runner = CliRunner()
    clean = runner.invoke(app, ["check", "--store", url, "--expect-terminal"])
    assert clean.exit_code == 0, clean.output
    assert "clean: 1 invocations, 1 entries, 0 timers, 0 schedules checked" in clean.output

    asyncio.run(build(True))
    bad = runner.invoke(app, ["check", "--store", url, "--expect-terminal"])
    assert bad.exit_code == 1, bad.output
    assert "acknowledged" in bad.output and "inv_True" in bad.output
    assert runner.invoke(app, ["check", "--store", url]).exit_code == 0

    as_json = runner.invoke(app, ["check", "--store", url, "--json", "--expect-terminal"])
    assert as_json.exit_code == 1, as_json.output
    payload = json.loads(as_json.output)
    assert payload["ok"] is False and payload["invocations"] == 2
    assert payload["violations"] == [
        {
            "kind": "acknowledged",
            "invocation_id": "inv_True",
            "message": payload["violations"][0]["message"],
        }
    ]

    missing = runner.invoke(app, ["check", "--store", f"sqlite:///{tmp_path / 'none.db'}"])
    assert missing.exit_code == 2

    async def infinity() -> None:
        async with SqliteStore(db) as store:
            entries = ['{"kind":"input","value":Infinity}']
            await _write(store, _rec("inv_inf", "completed", seq=3), entries)

    asyncio.run(infinity())
    bad = runner.invoke(app, ["check", "--store", url, "--json"])
    assert bad.exit_code == 1, bad.output
    assert [v["kind"] for v in json.loads(bad.output)["violations"]] == ["json"]


def test_cli_check_reads_beside_a_locked_store(tmp_path: Path) -> None:
    """A SQLite store held by a live orchestrator (its file lock) is still checked: read-only."""
    db = tmp_path / "live.db"

    async def main() -> None:
        async with SqliteStore(db) as store:
            await _write(store, _rec("inv_a", "completed"))
            result = await asyncio.to_thread(
                CliRunner().invoke, app, ["check", "--store", f"sqlite:///{db}"]
            )
            assert result.exit_code == 0, result.output

    asyncio.run(main())
