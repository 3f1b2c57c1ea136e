"""Back from a bad deploy, through the admin API over a real engine, on SQLite (a file) and
DynamoDB (moto over HTTP): restart-as-new keeps the steps before ``from`` (not run again) and
re-runs those after, on the chosen deployment; a dry run replays the kept prefix against a
deployment's code — a match for a compatible handler, the first mismatch for a changed one —
without starting anything or running any step; two live versions of a handler: in-flight
invocations stay on v1, new ones go to v2, a paused v1 invocation resumes on v2; malformed and
unknown parameters are 4xx."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from ritornello import Context, Endpoint, Service, TerminalError
from ritornello.admin import create_app
from ritornello.orchestrator import Engine
from ritornello.protocol import DiscoveryResponse, RetryPolicy
from ritornello.store import DeploymentRecord, Store
from ritornello.store.sqlite import SqliteStore
from tests.orchestrator._wait import until_status

from .conftest import make_dynamo_store

#: side effects of the steps, by version and step name
ran: Counter[str] = Counter()


def _shop(version: str, first_step: str, ships: bool) -> Service:
    """Version ``version`` of the service Shop: ``order`` charges (a step named
    ``first_step``), then ships (fails terminally unless ``ships``)."""
    shop = Service("Shop")

    @shop.handler()
    async def order(ctx: Context, item: str) -> str:
        def charge() -> str:
            ran[f"{version}:{first_step}"] += 1
            return f"charged {item}"

        def ship() -> str:
            ran[f"{version}:ship"] += 1
            if not ships:
                raise TerminalError("shipping is broken in " + version)
            return f"shipped {item}"

        charged = await ctx.run(first_step, charge)
        shipped = await ctx.run("ship", ship)
        return f"{charged}, {shipped} by {version}"

    return shop


V1 = _shop("v1", "charge", ships=False)  # the bad deploy
V2 = _shop("v2", "charge", ships=True)  # the fix: compatible with v1's journal
V3 = _shop("v3", "bill", ships=True)  # a changed handler: its first step has another name


def _store(backend: str, tmp: Path) -> Store:
    if backend == "dynamodb":
        store: Store = make_dynamo_store(tmp)
        return store
    return SqliteStore(tmp / "ritornello.db")


async def _stack(store: Store, apps: dict[str, Endpoint]) -> tuple[Engine, httpx.AsyncClient]:
    await store.open()
    engine = Engine(store, inprocess={k: v.inprocess() for k, v in apps.items()})
    await engine.start()
    transport = httpx.ASGITransport(app=create_app(engine, admin_token=""))
    return engine, httpx.AsyncClient(transport=transport, base_url="http://admin")


async def _register(client: httpx.AsyncClient, name: str) -> str:
    answer = await client.post("/deployments", json={"uri": f"inproc://{name}"})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


async def _submit(engine: Engine, target: str, value: Any) -> str:
    service, handler = target.split("/")
    resolved = engine.registry.resolve(service, handler)
    assert resolved is not None
    rec, _ = await engine.submit(resolved, None, json.dumps(value))
    return rec.id


async def _result(engine: Engine, inv_id: str) -> Any:
    return json.loads(await asyncio.wait_for(engine.wait_result(inv_id), 20))


@pytest.mark.parametrize("backend", ["sqlite", "dynamodb"])
def test_restart_as_new_and_dry_run(backend: str, tmp_path: Path) -> None:
    async def main() -> None:
        ran.clear()
        apps = {"v1": Endpoint([V1]), "v2": Endpoint([V2]), "v3": Endpoint([V3])}
        engine, client = await _stack(_store(backend, tmp_path), apps)
        try:
            v1 = await _register(client, "v1")
            bad = await _submit(engine, "Shop/order", "book")
            failed = await _result(engine, bad)
            assert failed == {"failure": {"code": 500, "message": "shipping is broken in v1"}}
            assert ran == {"v1:charge": 1, "v1:ship": 1}
            v2 = await _register(client, "v2")
            v3 = await _register(client, "v3")
            url = f"/invocations/{bad}/restart-as-new"

            # dry runs: nothing starts, no step runs
            answer = await client.patch(url, params={"from": 2, "deployment": v2, "dry_run": 1})
            assert answer.status_code == 200, answer.text
            assert answer.json() == {
                "dry_run": True,
                "deployment_id": v2,
                "kept": 2,
                "matches": True,
                "replayed": 2,
                "message": "replayed 2 entries, matches",
            }
            answer = await client.patch(
                url, params={"from": 2, "deployment": v3, "dry_run": "true"}
            )
            report = answer.json()
            assert answer.status_code == 200 and report["matches"] is False, report
            assert report["mismatch"]["index"] == 1
            assert report["mismatch"]["journal_has"] == "run 'charge'"
            assert report["mismatch"]["handler_did"] == "run 'bill'"
            params = {"from": 2, "deployment": "keep", "dry_run": "true"}
            keep = await client.patch(url, params=params)  # v1's code
            assert keep.json()["matches"] is True and keep.json()["deployment_id"] == v1
            latest = await client.patch(url, params={"from": 2, "dry_run": "true"})  # v3's
            assert latest.json()["matches"] is False and latest.json()["deployment_id"] == v3
            assert ran == {"v1:charge": 1, "v1:ship": 1}
            listed = (await client.get("/invocations")).json()["invocations"]
            assert [i["id"] for i in listed] == [bad]

            # restart from 2 on v2: the charge is kept (not run again), shipping runs on v2
            answer = await client.patch(url, params={"from": 2, "deployment": v2})
            assert answer.status_code == 200, answer.text
            new = answer.json()["new_invocation_id"]
            assert new != bad
            assert await _result(engine, new) == {"value": "charged book, shipped book by v2"}
            assert ran == {"v1:charge": 1, "v1:ship": 1, "v2:ship": 1}
            shown = (await client.get(f"/invocations/{new}")).json()
            assert shown["deployment_id"] == v2 and shown["status"] == "succeeded"
            assert [e["kind"] for e in shown["journal"]] == ["input", "run", "run", "output"]
            _, entries, completions = await engine.describe(new)
            for text in entries + completions:  # the kept ones stamped again, once
                assert text.count('"at":') == 1, text
            assert all(e["at"] >= shown["created_at"] for e in shown["journal"])

            # the defaults, from 0 (only the input) on the latest (v3): every step runs again
            answer = await client.patch(url)
            again = answer.json()["new_invocation_id"]
            assert await _result(engine, again) == {"value": "charged book, shipped book by v3"}
            assert ran["v3:bill"] == 1 and ran["v3:ship"] == 1

            # refusals: nothing created
            before = len((await client.get("/invocations")).json()["invocations"])
            for params, status, words in [
                ({"from": 4}, 400, "out of range"),  # the output entry is never kept
                ({"from": 99}, 400, "out of range"),
                ({"from": -1}, 400, "from"),
                ({"from": "two"}, 400, "from"),
                ({"deployment": "dp_nope"}, 400, "unknown deployment"),
                ({"deployment": ""}, 400, "deployment"),
                ({"dry_run": "maybe"}, 400, "dry_run"),
            ]:
                answer = await client.patch(url, params=params)
                assert answer.status_code == status, (params, answer.text)
                assert words in answer.json()["detail"], (params, answer.text)
            answer = await client.patch("/invocations/inv_nope/restart-as-new")
            assert answer.status_code == 404

            # a dry run needs an endpoint that can replay without running: another SDK's
            # (Restate's protocol) or an older one is refused before anything is sent
            for dep_id, found in [
                ("dp_restate", DiscoveryResponse((V2.info(),), wire="restate", wire_info={})),
                ("dp_older", DiscoveryResponse((V2.info(),))),
            ]:
                record = DeploymentRecord(dep_id, "http://x", found.encode().decode(), 0)
                engine.registry.add(record, found)
                params = {"from": 2, "deployment": dep_id, "dry_run": "true"}
                answer = await client.patch(url, params=params)
                assert answer.status_code == 400, answer.text
                assert "dry runs need a Ritornello SDK deployment" in answer.json()["detail"]
                engine.registry.remove(dep_id)
            assert len((await client.get("/invocations")).json()["invocations"]) == before
        finally:
            await client.aclose()
            await engine.stop()
            await engine.store.close()

    asyncio.run(main())


def _work(version: str) -> Service:
    """Version ``version`` of the service Work: ``hold`` waits on an awakeable; ``flaky``
    fails under v1 (paused after one attempt) and works under v2."""
    work = Service("Work")

    @work.handler()
    async def hold(ctx: Context) -> str:
        awakeable_id, promise = ctx.awakeable()
        await ctx.run("announce", lambda: awakeables.append(awakeable_id))
        return f"{await promise} by {version}"

    @work.handler(retry=RetryPolicy(max_attempts=1, on_max_attempts="pause"))
    async def flaky(ctx: Context) -> str:
        if version == "v1":
            raise RuntimeError("v1 is broken")
        return f"fixed by {version}"

    return work


awakeables: list[str] = []


def test_two_live_versions(tmp_path: Path) -> None:
    async def main() -> None:
        awakeables.clear()
        apps = {"v1": Endpoint([_work("v1")]), "v2": Endpoint([_work("v2")])}
        engine, client = await _stack(SqliteStore(tmp_path / "ritornello.db"), apps)
        try:
            v1 = await _register(client, "v1")
            held = await _submit(engine, "Work/hold", None)
            broken = await _submit(engine, "Work/flaky", None)
            await until_status(engine.store, broken, "paused")
            await until_status(engine.store, held, "suspended")  # its awakeable announced
            v2 = await _register(client, "v2")
            fresh = await _submit(engine, "Work/flaky", None)
            assert await _result(engine, fresh) == {"value": "fixed by v2"}

            # the in-flight one stays on v1
            done = await engine.operations.complete_awakeable(awakeables[0], '{"value":"go"}')
            assert done is None
            assert await _result(engine, held) == {"value": "go by v1"}
            assert (await client.get(f"/invocations/{held}")).json()["deployment_id"] == v1

            # the paused v1 invocation resumes on v2
            answer = await client.patch(
                f"/invocations/{broken}/resume", params={"deployment": "nope"}
            )
            assert answer.status_code == 400 and "unknown deployment" in answer.json()["detail"]
            answer = await client.patch(
                f"/invocations/{broken}/resume", params={"deployment": "latest"}
            )
            assert answer.status_code == 200, answer.text
            assert answer.json()["deployment_id"] == v2
            assert await _result(engine, broken) == {"value": "fixed by v2"}

            # a live invocation cannot restart as new
            live = await _submit(engine, "Work/hold", None)
            answer = await client.patch(f"/invocations/{live}/restart-as-new")
            assert answer.status_code == 409 and "kill or cancel it first" in answer.text
            await until_status(engine.store, live, "suspended")
            assert (await client.patch(f"/invocations/{live}/kill")).status_code == 200
            url = f"/invocations/{live}/restart-as-new"
            for params in ({"from": 2}, {"from": 2, "dry_run": "true"}):
                answer = await client.patch(url, params=params)  # its awakeable never completed
                assert answer.status_code == 400, answer.text
                assert "cuts inside entry 1 (awakeable)" in answer.json()["detail"]
            answer = await client.patch(url, params={"from": 1, "deployment": "keep"})
            assert answer.status_code == 200, answer.text
            again = answer.json()["new_invocation_id"]
            await until_status(engine.store, again, "suspended")  # waiting again, on its own
            assert (await client.get(f"/invocations/{again}")).json()["deployment_id"] == v2
        finally:
            await client.aclose()
            await engine.stop()
            await engine.store.close()

    asyncio.run(main())
