"""Each service setting has its effect, against the real engine (in-process endpoint, memory
and SQLite stores), its ingress and its admin API in process: retention purges one service's
finished invocations and keeps another's; an inactivity timeout aborts a hanging attempt;
an ingress-private service is refused at every ingress path and served to handlers; PATCH
overrides outlive a restart and a re-registration and reach a second orchestrator."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from ritornello import Context, Endpoint, Service, Workflow
from ritornello.admin import create_app
from ritornello.orchestrator import Engine, ManualClock
from ritornello.orchestrator.ingress import IngressApp
from ritornello.protocol import RetryPolicy
from ritornello.store import Store
from ritornello.store.memory import MemoryStore
from ritornello.store.sqlite import SqliteStore
from tests.asgi_call import asgi_call

FAST = RetryPolicy(initial_interval_ms=5, factor=2.0, max_interval_ms=50)

short = Service(
    "Short", journal_retention="10s", description="kept briefly", metadata={"team": "a"}
)
plain = Service("Plain")
secret = Service("Secret", ingress_private=True)
front = Service("Front")
slow = Service("Slow", inactivity_timeout=0.2, abort_timeout="100ms")
signup = Workflow("Signup", workflow_retention="2days")


@short.handler()
async def brief(ctx: Context, n: int) -> int:
    return n


@plain.handler(description="an echo")
async def echo(ctx: Context, n: int) -> int:
    return n


@secret.handler()
async def whisper(ctx: Context, text: str) -> str:
    return text.upper()


@front.handler()
async def ask(ctx: Context, text: str) -> dict[str, Any]:
    loud = await ctx.call(whisper, text)
    sent = ctx.send(whisper, text + "!")
    return {"loud": loud, "sent": sent.invocation_id}


@slow.handler()
async def hang(ctx: Context) -> str:
    await asyncio.Event().wait()  # no journal progress, ever
    return "never"


@signup.main()
async def run(ctx: Context) -> str:
    return "done"


ENDPOINT = Endpoint([short, plain, secret, front, slow, signup])


@asynccontextmanager
async def _engine(store: Store, **kwargs: Any) -> AsyncIterator[Engine]:
    engine = Engine(store, retry=FAST, inprocess={"e": ENDPOINT.inprocess()}, **kwargs)
    await engine.start()
    try:
        await engine.register_deployment("inproc://e")
        yield engine
    finally:
        await engine.stop()


async def _submit(engine: Engine, service: str, handler: str, value: Any, **kw: Any) -> str:
    target = engine.registry.resolve(service, handler)
    assert target is not None
    rec, _ = await engine.submit(target, kw.pop("key", None), json.dumps(value), **kw)
    await asyncio.wait_for(engine.wait_result(rec.id), 10)
    return rec.id


def _admin(engine: Engine) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(engine, admin_token=""))
    return httpx.AsyncClient(transport=transport, base_url="http://admin")


def test_retention_purges_one_services_invocations_and_keeps_anothers() -> None:
    async def main() -> None:
        async with MemoryStore() as store:
            clock = ManualClock()
            async with _engine(store, clock=clock, retention_s=3600) as engine:
                kept = await _submit(engine, "Plain", "echo", 1)
                purged = await _submit(engine, "Short", "brief", 2)
                rec = await store.get_invocation(purged)
                assert rec is not None and rec.expires_at == rec.modified_at + 10_000
                run_id = await _submit(engine, "Signup", "run", None, key="w1")
                clock.advance(10_001)
                assert await engine.purge_expired() == 1
                assert await store.get_invocation(purged) is None
                assert await store.get_invocation(kept) is not None
                # an override beats the code: Plain now keeps its finished invocations 5 s
                async with _admin(engine) as admin:
                    r = await admin.patch("/services/Plain", json={"journal_retention": "5s"})
                    assert r.status_code == 200, r.text
                later = await _submit(engine, "Plain", "echo", 3)
                clock.advance(5_001)
                assert await engine.purge_expired() == 1
                assert await store.get_invocation(later) is None
                assert await store.get_invocation(kept) is not None  # stamped before: 1 h
                # a workflow's run is kept for its workflow retention: 2 days, not 1 h
                clock.advance(3_600_000)
                assert await engine.purge_expired() == 1  # the one stamped with 1 h
                assert await store.get_invocation(run_id) is not None
                clock.advance(2 * 86_400_000)
                assert await engine.purge_expired() == 1
                assert await store.get_invocation(run_id) is None

    asyncio.run(main())


def test_inactivity_timeout_aborts_a_hanging_attempt_and_retries_it() -> None:
    async def main() -> None:
        async with MemoryStore() as store, _engine(store, attempt_timeout_s=300) as engine:
            target = engine.registry.resolve("Slow", "hang")
            assert target is not None
            rec, _ = await engine.submit(target, None, "null")

            async def failed_twice() -> None:
                while True:
                    now = await store.get_invocation(rec.id)
                    if now is not None and now.attempt >= 3:
                        return
                    await asyncio.sleep(0.02)

            await asyncio.wait_for(failed_twice(), 10)  # 0.3 s an attempt, not 300 s
            now = await store.get_invocation(rec.id)
            assert now is not None
            assert "timed out after 0.3 s" in (now.last_error or "")
            await engine.kill(rec.id)

    asyncio.run(main())


def test_a_private_service_is_refused_at_the_ingress_and_served_to_handlers() -> None:
    async def main() -> None:
        async with MemoryStore() as store, _engine(store) as engine:
            ingress = IngressApp(engine)
            json_type = {"content-type": "application/json"}

            async def post(path: str) -> tuple[int, dict[str, Any]]:
                status, _, body = await asgi_call(ingress, "POST", path, b'"hi"', json_type)
                return status, json.loads(body)

            for path in ("/restate/call/Secret/whisper", "/restate/send/Secret/whisper",
                         "/Secret/whisper", "/Secret/whisper/send"):  # fmt: skip
                status, body = await post(path)
                assert status == 400, (path, body)
                assert "private" in body["message"]
            status, body = await post("/restate/call/Front/ask")
            assert status == 200 and body["loud"] == "HI"
            sent = body["sent"]
            await asyncio.wait_for(engine.wait_result(sent), 10)
            for path in (f"/restate/attach/{sent}", f"/restate/output/{sent}",
                         f"/restate/invocation/{sent}/output"):  # fmt: skip
                status, _, raw = await asgi_call(ingress, "GET", path)
                assert status == 400 and b"private" in raw, path
            assert await store.get_invocation(sent) is not None  # refused, not changed
            async with _admin(engine) as admin:
                r = await admin.patch("/services/Secret", json={"public": True})
                assert r.status_code == 200 and r.json()["public"] is True
                status, body = await post("/restate/call/Secret/whisper")
                assert (status, body) == (200, "HI")
                r = await admin.patch("/services/Front", json={"public": False})
                assert r.json()["public"] is False and r.json()["overrides"] == ["public"]
            assert (await post("/restate/call/Front/ask"))[0] == 400

    asyncio.run(main())


def test_get_shows_settings_and_patch_refuses_bad_bodies() -> None:
    async def main() -> None:
        async with (
            MemoryStore() as store,
            _engine(store, retention_s=86_400) as engine,
            _admin(engine) as admin,
        ):
            r = await admin.get("/services/Short")
            body = r.json()
            assert body["journal_retention"] == "10s"
            assert body["idempotency_retention"] == "1day"
            assert body["workflow_completion_retention"] is None  # a service
            assert body["documentation"] == "kept briefly"
            assert body["metadata"] == {"team": "a"}
            assert body["public"] is True and body["overrides"] == []
            assert body["handlers"][0]["journal_retention"] == "10s"
            (handler,) = (await admin.get("/services/Plain")).json()["handlers"]
            assert handler["documentation"] == "an echo"
            slow_view = (await admin.get("/services/Slow")).json()
            assert (slow_view["inactivity_timeout"], slow_view["abort_timeout"]) == (
                "200ms",
                "100ms",
            )
            wf = (await admin.get("/services/Signup")).json()
            assert wf["workflow_completion_retention"] == "2days"
            listed = {s["name"]: s for s in (await admin.get("/services")).json()["services"]}
            assert listed["Short"] == body

            r = await admin.patch(
                "/services/Short",
                json={"journal_retention": "30d", "inactivity_timeout": 90_000,
                      "abort_timeout": "PT1M", "idempotency_retention": "1h 30m",
                      "workflow_completion_retention": "0s"},
            )  # fmt: skip
            assert r.status_code == 200, r.text
            body = r.json()
            assert (body["journal_retention"], body["inactivity_timeout"]) == (
                "30days",
                "1m 30s",
            )
            assert (body["abort_timeout"], body["idempotency_retention"]) == ("1m", "1h 30m")
            assert body["overrides"] == [
                "abort_timeout",
                "idempotency_retention",
                "inactivity_timeout",
                "journal_retention",
                "workflow_completion_retention",
            ]
            assert (await admin.get("/services/Short")).json() == body
            for bad, status in [
                ({"journal_retention": "soon"}, 400),
                ({"journal_retention": "-5s"}, 400),
                ({"journal_retention": -5}, 400),
                ({"abort_timeout": "100000y"}, 400),
                ({}, 400),
                ({"retention": "1d"}, 422),
                ({"public": "no"}, 422),
                ({"journal_retention": 1.5}, 422),
                ([1], 422),
            ]:
                r = await admin.patch("/services/Short", json=bad)
                assert r.status_code == status, (bad, r.text)
                assert r.json()["detail"]
            r = await admin.patch("/services/Nope", json={"public": False})
            assert r.status_code == 404 and "Nope" in r.json()["detail"]
            assert (await admin.get("/services/Short")).json() == body  # nothing changed

    asyncio.run(main())


def test_overrides_outlive_a_restart_and_a_reregistration(tmp_path: Path) -> None:
    async def main() -> None:
        path = str(tmp_path / "r.db")
        async with SqliteStore(path) as store, _engine(store) as engine:
            async with _admin(engine) as admin:
                r = await admin.patch("/services/Short", json={"journal_retention": "7d"})
                assert r.status_code == 200
            await engine.register_deployment("inproc://e")  # the code says 10s again
            async with _admin(engine) as admin:
                assert (await admin.get("/services/Short")).json()["journal_retention"] == "7days"
        async with SqliteStore(path) as store, _engine(store) as engine, _admin(engine) as admin:
            body = (await admin.get("/services/Short")).json()
            assert body["journal_retention"] == "7days"
            assert body["overrides"] == ["journal_retention"]
            r = await admin.patch("/services/Short", json={"public": False})
            body = r.json()  # merged with what was overridden before
            assert body["journal_retention"] == "7days" and body["public"] is False

    asyncio.run(main())


def test_an_override_reaches_another_orchestrator_at_its_refresh() -> None:
    async def main() -> None:
        async with MemoryStore(exclusive=False) as store, _engine(store) as a, _engine(store) as b:
            async with _admin(a) as admin:
                r = await admin.patch("/services/Plain", json={"public": False})
                assert r.status_code == 200
            await b.refresh_deployments()  # what b does every 2 s
            async with _admin(b) as admin:
                assert (await admin.get("/services/Plain")).json()["public"] is False
            status, _, _ = await asgi_call(
                IngressApp(b), "POST", "/restate/call/Plain/echo", b"1",
                {"content-type": "application/json"},
            )  # fmt: skip
            assert status == 400

    asyncio.run(main())
