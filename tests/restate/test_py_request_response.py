"""The Restate Python SDK (``restate-sdk`` 1.2, ``apps/py_app.py``) under hypercorn over
HTTP/1.1 — the protocol's REQUEST_RESPONSE mode, service protocol V6 — registered with a real
``ritornello serve`` and driven through the ingress and admin API, beside a Ritornello-SDK
endpoint (``apps/rit_app.py``) that calls it and is called by it."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate

from tests.procs import Endpoint, Orchestrator, check_store, http, wait_until
from tests.restate.conftest import APPS, PyApp


class World:
    """The orchestrator with both endpoints registered."""

    def __init__(self, orch: Orchestrator, app: PyApp, rit: Endpoint) -> None:
        self.orch, self.app, self.rit = orch, app, rit

    def call(self, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
        status, payload, _ = http("POST", f"{self.orch.ingress}/{path}", body, **kw)
        return status, payload

    def send(self, path: str, body: Any = None) -> str:
        status, payload = self.call(f"{path}/send", body)
        assert status == 202, payload
        return str(payload["invocationId"])

    def invocation(self, inv_id: str) -> dict[str, Any]:
        status, payload, _ = http("GET", f"{self.orch.admin}/invocations/{inv_id}")
        assert status == 200, payload
        return dict(payload)

    def output(self, inv_id: str, within_s: float = 20) -> tuple[int, Any]:
        """The invocation's output once it is done (``attach``)."""
        url = f"{self.orch.ingress}/restate/invocation/{inv_id}/attach"
        status, payload, _ = http("GET", url, timeout=within_s)
        return status, payload

    def box(self, previous: str | None = None) -> str:
        """The awakeable id ``Awaiter/wait_awakeable`` published (a new one)."""
        found: list[str] = []

        def published() -> bool:
            status, aid = self.call("AwakeableBox/box/get")
            if status == 200 and aid and aid != previous:
                found.append(aid)
                return True
            return False

        wait_until(published, 20, "an awakeable id published")
        return found[0]


@contextlib.contextmanager
def world_of(app: PyApp, tmp: Path) -> Iterator[World]:
    """An orchestrator with ``app`` and the Ritornello-SDK endpoint registered, in ``tmp``."""
    rit = Endpoint(tmp, APPS, "rit_app").start()
    orch = Orchestrator(tmp).start()
    try:
        for uri in (app.url, rit.uri):
            status, body, _ = http("POST", f"{orch.admin}/deployments", {"uri": uri})
            assert status == 201, body
        yield World(orch, app, rit)
        orch.terminate()  # then the store's invariants hold after every scenario
        check_store(orch.store)
    finally:
        orch.terminate()
        rit.terminate()


@pytest.fixture(scope="module")
def world(restate_py_app: PyApp, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with world_of(restate_py_app, tmp_path_factory.mktemp("restate-rr")) as w:
        yield w


def test_discovery_keeps_kinds_and_the_manifest(world: World) -> None:
    status, deps, _ = http("GET", f"{world.orch.admin}/deployments")
    assert status == 200
    (restate,) = [d for d in deps["deployments"] if d["uri"] == world.app.url]
    kinds = {s["name"]: s["kind"] for s in restate["services"]}
    assert kinds["Greeter"] == "service"
    assert kinds["Counter"] == "object"
    assert kinds["Signup"] == "workflow"
    handlers = {
        (s["name"], h["name"]): h["kind"] for s in restate["services"] for h in s["handlers"]
    }
    assert handlers["Counter", "get"] == "shared"
    assert handlers["Counter", "add"] == "exclusive"
    assert handlers["Signup", "run"] == "workflow"
    assert handlers["Signup", "confirm"] == "shared"


def test_the_manifests_json_schemas_are_shown_and_documented(world: World) -> None:
    """The Python SDK's ``input.jsonSchema``/``output.jsonSchema`` reach ``GET /services``
    and the service's OpenAPI document (valid OpenAPI 3.1); its ``true`` for ``-> object``
    is any JSON."""
    status, counter, _ = http("GET", f"{world.orch.admin}/services/Counter")
    assert status == 200
    shown = {h["name"]: h for h in counter["handlers"]}
    assert shown["add"]["input_json_schema"] == {"type": "integer"}
    assert shown["add"]["output_json_schema"] == {"type": "integer"}
    assert shown["get"]["input_description"] == "none"  # "input": {}
    status, doc, _ = http("GET", f"{world.orch.admin}/services/Counter/openapi")
    assert status == 200
    validate(doc)
    add = doc["paths"]["/restate/call/Counter/{key}/add"]["post"]
    assert add["requestBody"]["content"]["application/json"]["schema"] == {"type": "integer"}
    assert "requestBody" not in doc["paths"]["/restate/call/Counter/{key}/get"]["post"]
    status, attacher, _ = http("GET", f"{world.orch.admin}/services/Attacher")
    assert status == 200
    (attach,) = [h for h in attacher["handlers"] if h["name"] == "attach"]
    assert attach["output_json_schema"] == {}


def test_steps_run_once_each(world: World) -> None:
    assert world.call("Greeter/greet", "Ann") == (200, "Hello Ann!")
    inv = world.send("Greeter/ten", "x")
    assert world.output(inv) == (200, 10)
    assert world.app.step_counts(inv) == {f"step-{i}": 1 for i in range(10)}
    journal = world.invocation(inv)["journal"]
    runs = [e for e in journal if e["kind"] == "run"]
    assert [e["name"] for e in runs] == [f"step-{i}" for i in range(10)]
    assert [e["value"] for e in runs] == list(range(10))
    assert journal[-1]["kind"] == "output" and journal[-1]["value"] == 10


def test_a_terminal_error_is_the_callers_status(world: World) -> None:
    status, body = world.call("Greeter/fail_terminal")
    assert status == 400 and body["message"] == "nope"


def test_a_failing_step_is_retried_with_backoff(world: World) -> None:
    inv = world.send("Greeter/flaky", "Flo")
    assert world.output(inv) == (200, "Hello Flo!")
    assert world.app.step_counts(inv) == {"flaky": 3}  # two failures, then the result
    history = world.invocation(inv)
    assert history["status"] == "completed"


def test_state_eager_reads_writes_clears_and_keys(world: World) -> None:
    assert world.call("Counter/c1/add", 5) == (200, 5)
    assert world.call("Counter/c1/add", 2) == (200, 7)
    assert world.call("Counter/c1/get") == (200, 7)
    assert world.call("Counter/c1/set_many", {"a": 1, "b": [2]})[0] == 200
    assert world.call("Counter/c1/keys") == (200, ["a", "b", "count"])
    status, state, _ = http("GET", f"{world.orch.admin}/services/Counter/state/c1")
    assert status == 200 and state["state"] == {"a": 1, "b": [2], "count": 7}, state
    assert world.call("Counter/c1/reset")[0] == 200
    assert world.call("Counter/c1/get") == (200, 0)
    assert world.call("Counter/c1/clear_all")[0] == 200
    assert world.call("Counter/c1/keys") == (200, [])
    assert world.call("Counter/c2/get") == (200, 0)  # keys are apart


def test_a_sleep_suspends_and_wakes(world: World) -> None:
    started = time.monotonic()
    assert world.call("Sleeper/sleep", 300) == (200, "before 300 ms after")
    assert time.monotonic() - started >= 0.3


def test_calls_and_sends_both_ways(world: World) -> None:
    assert world.call("Caller/call_greet", "Bob") == (200, "Hello Bob!")
    assert world.call("Caller/call_counter", {"key": "c9", "delta": 4}) == (200, 4)
    assert world.call("Caller/call_ritornello", "Ann") == (200, "Hi Ann from Ritornello")
    assert world.call("RGreeter/call_restate", "Bo") == (200, "Hello Bo!")
    status, callee = world.call("Caller/send_ritornello", "Di")
    assert status == 200 and callee.startswith("inv_")
    assert world.output(callee) == (200, "Hi Di from Ritornello")


def test_a_delayed_send_starts_when_due(world: World) -> None:
    sent_at = time.monotonic()
    status, callee = world.call("Caller/send_greet", "Cy")
    assert status == 200 and callee.startswith("inv_")
    assert world.invocation(callee)["status"] == "scheduled"
    assert world.output(callee) == (200, "Hello Cy!")
    assert time.monotonic() - sent_at >= 0.5


def test_awakeables_from_outside_and_from_both_sdks(world: World) -> None:
    inv = world.send("Awaiter/wait_awakeable")
    aid = world.box()
    assert aid.startswith("sign_1")
    url = f"{world.orch.ingress}/restate/awakeables"
    forged = aid[:-2] + ("AB" if not aid.endswith("AB") else "AC")
    assert http("POST", f"{url}/{forged}/resolve", "no")[0] == 404
    assert http("POST", f"{url}/{aid}/resolve", "yes!")[0] == 202
    assert http("POST", f"{url}/{aid}/resolve", "twice")[0] == 409
    assert world.output(inv) == (200, "yes!")

    for how in ("Awaiter/resolve", "RGreeter/resolve_restate"):
        inv = world.send("Awaiter/wait_awakeable")
        aid = world.box(previous=aid)
        assert world.call(how, {"id": aid, "value": how})[0] == 200
        assert world.output(inv) == (200, how)

    inv = world.send("Awaiter/wait_awakeable")
    aid = world.box(previous=aid)
    assert world.call("Awaiter/reject", {"id": aid, "reason": "over budget"})[0] == 200
    status, body = world.output(inv)
    assert status == 500 and "over budget" in body["message"]


def test_workflow_promises_get_peek_complete(world: World) -> None:
    world.send("Signup/u1/run", "a@b")
    assert world.call("Signup/u1/peek") == (200, None)
    assert world.call("Signup/u1/confirm", "ok")[0] == 200
    assert world.call("Signup/u1/peek") == (200, "ok")
    status, out, _ = http("GET", f"{world.orch.ingress}/restate/workflow/Signup/u1/attach")
    assert (status, out) == (200, "confirmed:ok")


def test_combinators(world: World) -> None:
    assert world.call("Racer/race") == (200, "timeout")
    assert world.call("Racer/first_of", "E") == (200, "Hello E!")
    assert world.call("Racer/both", "F") == (200, ["Hello F!", "Hello F!!"])


def test_cancel_from_the_admin_api_reaches_the_handler(world: World) -> None:
    inv = world.send("Canceller/long_sleep")
    wait_until(lambda: world.invocation(inv)["status"] == "suspended", 20, "suspended")
    status, body, _ = http("PATCH", f"{world.orch.admin}/invocations/{inv}/cancel")
    assert status == 200, body
    status, body = world.output(inv)
    assert status == 409, body
    assert world.invocation(inv)["status"] == "completed"


def test_named_signals_and_cancel_from_a_handler(world: World) -> None:
    waiting = world.send("Signaller/wait_signal")
    wait_until(lambda: world.invocation(waiting)["status"] == "suspended", 20, "suspended")
    assert world.call("Signaller/send_signal", {"invocation_id": waiting, "value": "go!"})[0] == 200
    assert world.output(waiting) == (200, "go!")

    sleeper = world.send("Canceller/long_sleep")
    wait_until(lambda: world.invocation(sleeper)["status"] == "suspended", 20, "suspended")
    assert world.call("Canceller/cancel", sleeper)[0] == 200
    status, body = world.output(sleeper)
    assert status == 409 and body["message"] == "cancelled"

    status, sent = world.call("Canceller/start_and_cancel")  # cancelled through its handle
    assert status == 200
    assert world.output(sent)[0] == 409


def test_attach_to_another_invocation(world: World) -> None:
    assert world.call("Attacher/send_and_attach", "Zed") == (200, "Hello Zed!")
    sleeper = world.send("Sleeper/sleep", 700)  # still running when attached to
    assert world.call("Attacher/attach", sleeper) == (200, "before 700 ms after")
    done = world.send("Greeter/greet", "Done")
    assert world.output(done) == (200, "Hello Done!")
    assert world.call("Attacher/attach", done) == (200, "Hello Done!")  # finished already


def test_idempotent_calls_from_a_handler_share_one_callee(world: World) -> None:
    """A call with an idempotency key names the invocation that key already made for that
    target: finished, its result comes at once; running, the caller waits for it (an attach).
    Either way the callee runs once."""
    name = f"once{time.monotonic_ns()}"
    assert world.call("Caller/call_idempotent", name) == (200, f"Hello {name}!")
    assert world.call("Caller/call_idempotent", name) == (200, f"Hello {name}!")
    status, page, _ = http("GET", f"{world.orch.admin}/invocations?service=Greeter&limit=1000")
    assert status == 200
    keyed = [i for i in page["invocations"] if i.get("idempotency_key") == f"greet-{name}"]
    assert len(keyed) == 1, keyed
    assert world.app.step_counts(keyed[0]["id"]) == {"greet": 1}

    ms = 600 + time.monotonic_ns() % 1000  # a sleeper of its own for this test run
    first = world.send("Caller/sleep_idempotent", ms)
    time.sleep(0.2)  # the first one's sleeper runs; the second attaches to it
    second = world.send("Caller/sleep_idempotent", ms)
    for inv in (first, second):
        assert world.output(inv) == (200, f"before {ms} ms after")
    status, page, _ = http("GET", f"{world.orch.admin}/invocations?service=Sleeper&limit=1000")
    sleepers = [i for i in page["invocations"] if i.get("idempotency_key") == f"sleep-{ms}"]
    assert len(sleepers) == 1, sleepers
    assert world.app.step_counts(sleepers[0]["id"]) == {"before": 1, "after": 1}


def test_journal_is_shown_with_names(world: World) -> None:
    inv = world.send("Sleeper/sleep", 10)
    assert world.output(inv)[0] == 200
    journal = world.invocation(inv)["journal"]
    kinds = [(e["kind"], e.get("name")) for e in journal]
    assert kinds[0][0] == "input"
    assert ("run", "before") in kinds and ("run", "after") in kinds
    assert any(k == "sleep" for k, _ in kinds)
    assert kinds[-1][0] == "output"
    assert all("at" in e for e in journal[1:])


def test_admin_verbs_pause_resume_purge_and_metrics(world: World) -> None:
    """The operator's verbs and the metrics are the engine's, for any SDK's invocation."""
    inv = world.send("Canceller/long_sleep")
    wait_until(lambda: world.invocation(inv)["status"] == "suspended", 20, "suspended")
    admin = f"{world.orch.admin}/invocations/{inv}"
    assert http("PATCH", f"{admin}/pause")[0] == 200
    assert world.invocation(inv)["status"] == "paused"
    assert http("PATCH", f"{admin}/resume")[0] == 200
    assert world.invocation(inv)["status"] in ("running", "suspended")
    assert http("PATCH", f"{admin}/kill")[0] == 200
    assert http("PATCH", f"{admin}/purge")[0] == 200
    assert http("GET", admin)[0] == 404
    status, text, _ = http("GET", f"{world.orch.admin}/metrics")
    assert status == 200 and 'ritornello_engine_events_total{event="attempts"}' in str(text)


def test_ingress_idempotency_key_and_delay(world: World) -> None:
    """The ingress's own features hold for a Restate-SDK service: an idempotency key makes a
    second send the same invocation (its step runs once), a delay schedules it."""
    url = f"{world.orch.ingress}/Greeter/greet/send"
    key = {"idempotency-key": f"once-{time.monotonic_ns()}"}
    first = http("POST", url, "Idem", headers=key)
    again = http("POST", url, "Idem", headers=key)
    assert first[0] in (200, 202) and again[0] in (200, 202), (first, again)
    inv = first[1]["invocationId"]
    assert again[1]["invocationId"] == inv
    assert world.output(inv) == (200, "Hello Idem!")
    assert world.app.step_counts(inv) == {"greet": 1}

    sent_at = time.monotonic()
    status, body, _ = http("POST", f"{url}?delay=400ms", "Later")
    assert status == 202, body
    assert world.invocation(body["invocationId"])["status"] == "scheduled"
    assert world.output(body["invocationId"]) == (200, "Hello Later!")
    assert time.monotonic() - sent_at >= 0.4
