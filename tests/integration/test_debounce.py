"""Debounced sends through the ingress (``?debounce=``, issue 18) on a real ``serve`` with a
real endpoint, across a kill -9: of sends with one idempotency key inside the window only the
last one runs, once, with its input; the ones it replaced answer 409 when attached; the
ingress refuses what debounce cannot mean; priority headers are checked."""

from __future__ import annotations

import time
from pathlib import Path

from tests.procs import ROOT, Endpoint, Orchestrator, http

APPS = ROOT / "tests" / "apps"


def test_only_the_last_send_in_the_window_runs(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.txt"
    endpoint = Endpoint(tmp_path, APPS, "crashapp", RITORNELLO_TEST_LEDGER=str(ledger)).start()
    orch = Orchestrator(tmp_path).start()
    try:
        http("POST", f"{orch.admin}/deployments", {"uri": endpoint.uri})
        send = f"{orch.ingress}/restate/send/Adder/add?debounce=1500ms"
        ids = []
        for i in range(4):
            status, body, _ = http("POST", send, [i, 100], headers={"idempotency-key": "k"})
            assert status == 202, body
            ids.append(body["invocationId"])
        assert len(set(ids)) == 4
        orch.kill9()  # the window survives it
        orch.start()
        for superseded in ids[:-1]:
            status, body, _ = http("GET", f"{orch.ingress}/restate/attach/{superseded}")
            assert status == 409 and "superseded" in body["message"], body
        status, result, _ = http("GET", f"{orch.ingress}/restate/attach/{ids[-1]}", timeout=30)
        assert (status, result) == (200, 103)
        time.sleep(0.3)
        ran = [line.split()[0] for line in ledger.read_text().splitlines()]
        assert ran == [ids[-1]]
        # after it ran the key starts a new window
        status, body, _ = http(
            "POST", send.replace("1500ms", "10ms"), [1, 1], headers={"idempotency-key": "k"}
        )
        status, result, _ = http("GET", f"{orch.ingress}/restate/attach/{body['invocationId']}")
        assert (status, result) == (200, 2)
    finally:
        orch.terminate()
        endpoint.terminate()


def test_what_debounce_and_priority_refuse(tmp_path: Path) -> None:
    endpoint = Endpoint(tmp_path, APPS, "crashapp").start()
    orch = Orchestrator(tmp_path).start()
    try:
        http("POST", f"{orch.admin}/deployments", {"uri": endpoint.uri})
        base = f"{orch.ingress}/restate"
        key = {"idempotency-key": "k"}
        cases = [
            (f"{base}/send/Adder/add?debounce=1s", {}, "needs an Idempotency-Key"),
            (f"{base}/call/Adder/add?debounce=1s", key, "only allowed on /send"),
            (f"{base}/send/Adder/add?debounce=1s&delay=1s", key, "delay or debounce"),
            (f"{base}/send/Adder/add?debounce=0s", key, "longer than 0"),
            (f"{base}/send/Adder/add?debounce=abc", key, "invalid debounce 'abc'"),
            (f"{base}/send/Adder/add?debounce=1s&debounce=2s", key, "more than once"),
            (f"{base}/send/Adder/add", {"x-ritornello-priority": "11"}, "from 0 to 10"),
            (f"{base}/send/Adder/add", {"x-ritornello-priority": "-1"}, "from 0 to 10"),
            (f"{base}/call/Adder/add", {"x-ritornello-priority": "high"}, "from 0 to 10"),
        ]
        for url, headers, message in cases:
            status, body, _ = http("POST", url, [1, 2], headers=headers)
            assert status == 400 and message in body["message"], (url, headers, body)
        status, body, _ = http(
            "POST", f"{base}/call/Adder/add", [1, 2], headers={"x-ritornello-priority": "10"}
        )
        assert (status, body) == (200, 3)
        status, body, _ = http("GET", f"{orch.admin}/invocations?limit=50")
        assert status == 200
        assert len(body["invocations"]) == 1  # nothing refused was stored
    finally:
        orch.terminate()
        endpoint.terminate()
