"""The Restate TypeScript SDK (``@restatedev/restate-sdk`` 1.17, ``ts/app.mjs``) under Node's
HTTP/1.1 server — the protocol's REQUEST_RESPONSE mode — registered with a real ``ritornello
serve`` and driven through the ingress and admin API, beside a Ritornello-SDK endpoint
(``apps/rit_app.py``) that calls it and is called by it. The same scenarios as
``test_py_request_response.py``, on the same ``World``.

TS-specific values: a handler that returns ``undefined`` (a void handler, ``Signup/peek`` before
the promise is resolved, ``AwakeableBox/get`` before a put) ends with an empty output, which
Ritornello's ingress answers as JSON ``null``, as it does for the Python SDK's ``None``. A call
without a body reaches the handler as ``null`` (not ``undefined``)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.procs import http, wait_until
from tests.restate.conftest import PyApp
from tests.restate.test_py_request_response import (  # noqa: F401 - the same scenarios, run here
    World,
    test_a_delayed_send_starts_when_due,
    test_a_terminal_error_is_the_callers_status,
    test_calls_and_sends_both_ways,
    test_cancel_from_the_admin_api_reaches_the_handler,
    test_combinators,
    test_journal_is_shown_with_names,
    test_steps_run_once_each,
    test_workflow_promises_get_peek_complete,
    world_of,
)


@pytest.fixture(scope="module")
def world(restate_ts_app: PyApp, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with world_of(restate_ts_app, tmp_path_factory.mktemp("restate-ts-rr")) as w:
        yield w


def test_discovery_keeps_kinds_and_the_manifest(world: World) -> None:
    accept = {"accept": "application/vnd.restate.endpointmanifest.v3+json"}
    status, manifest, _ = http("GET", f"{world.app.url}/discover", headers=accept)
    assert status == 200 and manifest["protocolMode"] == "REQUEST_RESPONSE", manifest
    assert (manifest["minProtocolVersion"], manifest["maxProtocolVersion"]) == (5, 7)
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
    assert kinds["Signaller"] == kinds["Attacher"] == kinds["Canceller"] == "service"
    assert {
        ("Signaller", "wait_signal"),
        ("Signaller", "send_signal"),
        ("Signaller", "reject_signal"),
        ("Canceller", "cancel"),
        ("Canceller", "start_and_cancel"),
        ("Attacher", "attach"),
        ("Attacher", "send_and_attach"),
        ("Caller", "call_idempotent"),
        ("Caller", "sleep_idempotent"),
    } <= handlers.keys()


def test_state_eager_reads_writes_clears_and_keys(world: World) -> None:
    assert world.call("Counter/c1/add", 5) == (200, 5)
    assert world.call("Counter/c1/add", 2) == (200, 7)
    assert world.call("Counter/c1/get") == (200, 7)
    assert world.call("Counter/c1/set_many", {"a": 1, "b": [2]})[0] == 200
    assert world.call("Counter/c1/keys") == (200, ["a", "b", "count"])
    status, state, _ = http("GET", f"{world.orch.admin}/services/Counter/state/c1")
    assert status == 200 and state["state"] == {"a": 1, "b": [2], "count": 7}, state
    assert world.call("Counter/c1/reset") == (200, None)  # void: an empty body
    assert world.call("Counter/c1/get") == (200, 0)
    assert world.call("Counter/c1/clear_all")[0] == 200
    assert world.call("Counter/c1/keys") == (200, [])
    assert world.call("Counter/c2/get") == (200, 0)  # keys are apart


def test_a_sleep_suspends_and_wakes(world: World) -> None:
    started = time.monotonic()
    inv = world.send("Sleeper/sleep", 300)
    assert world.output(inv) == (200, "before 300 ms after")
    assert time.monotonic() - started >= 0.3
    assert world.app.step_counts(inv) == {"after": 1, "before": 1}


def test_awakeables_from_outside_and_from_both_sdks(world: World) -> None:
    inv = world.send("Awaiter/wait_awakeable")
    aid = world.box()
    assert aid.startswith("sign_1")
    url = f"{world.orch.ingress}/restate/awakeables"
    forged = aid[:-2] + ("AB" if not aid.endswith("AB") else "AC")
    assert http("POST", f"{url}/{forged}/resolve", "no")[0] == 404
    assert http("POST", f"{url}/{aid}/resolve", "yes!")[0] == 202
    assert http("POST", f"{url}/{aid}/resolve", "twice")[0] == 409
    assert http("POST", f"{url}/{aid}/resolve", "thrice")[0] == 409
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


def suspended(world: World, inv: str) -> None:
    wait_until(lambda: world.invocation(inv)["status"] == "suspended", 20, f"{inv} suspended")


def test_named_signals(world: World) -> None:
    """``ctx.signal("go")`` waits (the invocation suspends on the name);
    ``ctx.invocation(id).signal("go").resolve(v)`` / ``.reject(reason)`` in another handler
    completes it."""
    waiting = world.send("Signaller/wait_signal")
    suspended(world, waiting)
    assert world.call("Signaller/send_signal", {"invocation_id": waiting, "value": "go!"})[0] == 200
    assert world.output(waiting) == (200, "go!")

    waiting = world.send("Signaller/wait_signal")
    suspended(world, waiting)
    req = {"invocation_id": waiting, "reason": "no go"}
    assert world.call("Signaller/reject_signal", req)[0] == 200
    status, body = world.output(waiting)
    assert status == 500 and "no go" in body["message"], (status, body)


def test_cancel_from_a_handler(world: World) -> None:
    """``ctx.invocation(id).cancel()``: of a suspended invocation given by id, and of one the
    handler has just sent (by the id its send handle gives). A cancel that reaches the handler
    ends it with the TS SDK's own ``CancelledError`` (409 "Cancelled"; the Python SDK says
    "cancelled"); one that comes before the callee ever ran is Ritornello's (409 "cancelled")."""
    sleeper = world.send("Canceller/long_sleep")
    suspended(world, sleeper)
    assert world.call("Canceller/cancel", sleeper)[0] == 200
    status, body = world.output(sleeper)
    assert status == 409 and body["message"] == "Cancelled", (status, body)
    assert world.invocation(sleeper)["status"] == "failed"

    status, sent = world.call("Canceller/start_and_cancel")
    assert status == 200 and sent.startswith("inv_"), sent
    status, body = world.output(sent)
    assert status == 409 and body["message"] in ("Cancelled", "cancelled"), (status, body)
    assert world.invocation(sent)["status"] == "failed"


def test_attach_to_another_invocation(world: World) -> None:
    """``ctx.attach(id)`` / ``ctx.invocation(id).attach()``: to one the handler sent, to a
    still-running one, to a finished one."""
    assert world.call("Attacher/send_and_attach", "Zed") == (200, "Hello Zed!")
    sleeper = world.send("Sleeper/sleep", 700)  # still running when attached to
    assert world.call("Attacher/attach", sleeper) == (200, "before 700 ms after")
    done = world.send("Greeter/greet", "Done")
    assert world.output(done) == (200, "Hello Done!")
    assert world.call("Attacher/attach", done) == (200, "Hello Done!")  # finished already


def test_idempotent_calls_from_a_handler_share_one_callee(world: World) -> None:
    """``rpc.opts({idempotencyKey})`` on a call: the key names one callee per target; a second
    call gets its result (finished) or waits for it (running). Its steps run once."""
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
    assert status == 200
    sleepers = [i for i in page["invocations"] if i.get("idempotency_key") == f"sleep-{ms}"]
    assert len(sleepers) == 1, sleepers
    assert world.app.step_counts(sleepers[0]["id"]) == {"after": 1, "before": 1}
