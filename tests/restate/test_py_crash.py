"""The guarantees hold for a Restate-SDK service: kill -9 of the orchestrator while its
invocations run steps, sleep, wait on an awakeable and call each other loses nothing and runs
each step once — again only where a kill fell between running it and committing its result;
and a handler changed under a running invocation gets the SDK's journal-mismatch error, shown
as its last failure, and backs off without a change to its journal until the right code is
back."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.procs import Orchestrator, check_store, http, wait_until
from tests.restate.conftest import py_app


def _send(orch: Orchestrator, path: str, body: object = None) -> str:
    status, payload, _ = http("POST", f"{orch.ingress}/{path}/send", body)
    assert status == 202, payload
    return str(payload["invocationId"])


def _attach(orch: Orchestrator, inv: str) -> tuple[int, object]:
    url = f"{orch.ingress}/restate/invocation/{inv}/attach"
    status, payload, _ = http("GET", url, timeout=60)
    return status, payload


def _published(orch: Orchestrator) -> str:
    found: list[str] = []

    def ready() -> bool:
        status, aid, _ = http("POST", f"{orch.ingress}/AwakeableBox/box/get")
        if status == 200 and aid:
            found.append(aid)
        return bool(found)

    wait_until(ready, 30, "an awakeable id published")
    return found[0]


@pytest.mark.parametrize("http2", [False, True], ids=["request-response", "bidi"])
def test_kill9_during_steps_sleeps_awakeables_and_calls(tmp_path: Path, http2: bool) -> None:
    kills = 3
    with py_app(tmp_path, http2=http2, RESTATE_APP_STEP_MS="25") as app:
        orch = Orchestrator(tmp_path).start()
        try:
            http("POST", f"{orch.admin}/deployments", {"uri": app.url})
            tens = [_send(orch, "Greeter/ten", f"t{i}") for i in range(6)]
            sleeps = [_send(orch, "Sleeper/sleep", 1500) for _ in range(2)]
            calls = [_send(orch, "Caller/call_greet", f"c{i}") for i in range(3)]
            waiter = _send(orch, "Awaiter/wait_awakeable")
            for n in range(kills):
                time.sleep(0.25 + 0.1 * n)
                orch.kill9()
                orch.start()
            aid = _published(orch)
            status, _, _ = http("POST", f"{orch.ingress}/restate/awakeables/{aid}/resolve", "ok")
            assert status == 202
            for inv in tens:
                assert _attach(orch, inv) == (200, 10), orch.output()
                counts = app.step_counts(inv)
                assert set(counts) == {f"step-{i}" for i in range(10)}
                # one step at a time per invocation: at most one re-run per kill
                assert sum(counts.values()) - 10 <= kills, counts
            for inv in sleeps:
                assert _attach(orch, inv) == (200, "before 1500 ms after")
                assert all(n <= 1 + kills for n in app.step_counts(inv).values())
            for i, inv in enumerate(calls):
                assert _attach(orch, inv) == (200, f"Hello c{i}!")
            assert _attach(orch, waiter) == (200, "ok")
            reruns = sum(n - 1 for n in app.all_counts().values())
            assert reruns <= kills * 12  # at most one step in flight per invocation per kill
            # the store's invariants hold (signals, attach and Restate entries included)
            orch.kill9()
            check_store(orch.store)
        finally:
            orch.terminate()


def test_a_changed_handler_gets_journal_mismatch_and_backs_off(tmp_path: Path) -> None:
    orch = Orchestrator(tmp_path).start()
    try:
        with py_app(tmp_path) as v1:
            port = v1.port
            http("POST", f"{orch.admin}/deployments", {"uri": v1.url})
            inv = _send(orch, "Awaiter/wait_awakeable")
            aid = _published(orch)
            wait_until(
                lambda: http("GET", f"{orch.admin}/invocations/{inv}")[1]["status"] == "suspended",
                20,
                "suspended",
            )
            journal = http("GET", f"{orch.admin}/invocations/{inv}")[1]["journal"]
        with py_app(tmp_path, port=port, RESTATE_APP_VARIANT="2"):
            status, _, _ = http("POST", f"{orch.ingress}/restate/awakeables/{aid}/resolve", "go")
            assert status == 202

            def mismatch() -> bool:
                record = http("GET", f"{orch.admin}/invocations/{inv}")[1]
                return "journal_mismatch" in str(record.get("last_failure"))

            wait_until(mismatch, 20, "the journal mismatch recorded")
            record = http("GET", f"{orch.admin}/invocations/{inv}")[1]
            assert "[570]" in record["last_failure"], record["last_failure"]
            assert record["status"] in ("backing-off", "running")
            assert record["journal"] == journal  # nothing of the bad attempts stored
        with py_app(tmp_path, port=port):  # the right code is back: the next retry finishes
            assert _attach(orch, inv) == (200, "go")
    finally:
        orch.terminate()
