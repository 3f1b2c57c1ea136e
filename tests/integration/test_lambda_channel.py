"""The checkpoint channel end to end (docs/protocol.md, "Checkpoint channel"): ``ritornello
serve`` and ``ritornello lambda-emulator tests/apps/channel_app.py`` as real processes on
loopback, the function registered by ARN. The app counts the Lambda requests it gets
(CHANNEL_INVOKES) and the executions of each step (CHANNEL_LEDGER)."""

from __future__ import annotations

import json
import socket
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.integration._lambda_pair import journal_of, ledger_counts, restarted
from tests.integration._metrics import engine_events, scrape
from tests.procs import LambdaEmulatorProcess, Orchestrator, aws_env, http, wait_until

ARN = "arn:aws:lambda:us-east-1:123456789012:function:steps:1"
PATH = "/ritornello/v1/lambda/checkpoint"
TOKEN = "x-ritornello-channel-token"


class Pair:
    """An orchestrator and the emulated function (``env`` to both)."""

    def __init__(self, tmp: Path, orch_env: dict[str, str] | None = None, **env: str) -> None:
        self.tmp = tmp
        self.files = {n: tmp / f"{n}.txt" for n in ("invokes", "ledger", "tokens", "awakeable")}
        self.emulator = LambdaEmulatorProcess(
            tmp,
            "tests/apps/channel_app.py",
            CHANNEL_INVOKES=str(self.files["invokes"]),
            CHANNEL_LEDGER=str(self.files["ledger"]),
            CHANNEL_TOKENS=str(self.files["tokens"]),
            CHANNEL_AWAKEABLE=str(self.files["awakeable"]),
            PYTHONUNBUFFERED="1",
            **env,
        )
        self.emulator.start()
        self.orch = Orchestrator(tmp, **aws_env(self.emulator.port, tmp), **(orch_env or {}), **env)
        self.orch.start()
        status, body, _ = http("POST", f"{self.orch.admin}/deployments", {"arn": ARN})
        assert status == 201, (body, self.orch.output())

    def stop(self) -> None:
        self.orch.terminate()
        self.emulator.terminate()

    def lines(self, name: str) -> list[str]:
        path = self.files[name]
        return path.read_text().splitlines() if path.exists() else []

    def invokes(self) -> int:
        return self.lines("invokes").count("invoke")

    def ran(self, inv: str) -> Counter[str]:
        return ledger_counts(self.files["ledger"], inv)

    def journal(self, inv: str) -> list[dict[str, Any]]:
        return journal_of(self.orch.admin, inv)

    def restart_orchestrator(self) -> None:
        self.orch = restarted(self.orch)

    def call(self, handler: str, body: Any) -> tuple[int, Any, dict[str, str]]:
        return http("POST", f"{self.orch.ingress}/restate/call/Steps/{handler}", body)

    def send(self, handler: str, body: Any) -> str:
        status, answer, _ = http("POST", f"{self.orch.ingress}/restate/send/Steps/{handler}", body)
        assert status == 202, answer
        return str(answer["invocationId"])

    def attach(self, inv: str) -> tuple[int, Any]:
        status, body, _ = http("GET", f"{self.orch.ingress}/restate/invocation/{inv}/attach")
        return status, body


def _steps(journal: list[dict[str, Any]]) -> list[str]:
    return [e["name"] for e in journal if e["kind"] == "run" and e["name"].startswith("step-")]


def test_a_ten_step_handler_is_one_lambda_request(tmp_path: Path) -> None:
    pair = Pair(tmp_path)
    try:
        status, body, headers = pair.call("ten", {})
        assert (status, body) == (200, [i * i for i in range(10)]), pair.orch.output()
        inv = headers["x-restate-id"]
        assert pair.invokes() == 1, pair.emulator.output()
        assert pair.ran(inv) == {f"step-{i}": 1 for i in range(10)}
        journal = pair.journal(inv)
        assert [e["kind"] for e in journal] == ["input"] + ["run"] * 10 + ["output"]
        assert _steps(journal) == [f"step-{i}" for i in range(10)]
        assert [e["value"] for e in journal[1:11]] == [i * i for i in range(10)]
        # GET /metrics: one run, a checkpoint acked before each step but the first
        assert engine_events(pair.orch.admin, "channel_") == {"runs": 1, "acked": 9}
        assert scrape(pair.orch.admin)[("ritornello_channel_runs", ())] == 0  # it ended
    finally:
        pair.stop()


def test_an_orchestrator_the_function_cannot_reach_gets_per_step_answers(tmp_path: Path) -> None:
    # a port held bound and never listening: connections to it are refused, and no process of
    # the test can be given it (a port only probed free could be, and once was)
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{held.getsockname()[1]}"
        pair = Pair(tmp_path, {"RITORNELLO_ADVERTISE_URL": nowhere})
        try:
            status, body, headers = pair.call("ten", {})
            assert (status, body) == (200, [i * i for i in range(10)]), pair.orch.output()
            inv = headers["x-restate-id"]
            assert pair.invokes() == 10  # as without a channel: one per step
            assert pair.ran(inv) == {f"step-{i}": 1 for i in range(10)}
            assert _steps(pair.journal(inv)) == [f"step-{i}" for i in range(10)]
            assert "fallback" in pair.emulator.output()
            # every request offered a channel; every run but the last answered a checkpoint
            events = engine_events(pair.orch.admin, "channel_")
            assert events == {"runs": pair.invokes(), "fallbacks": pair.invokes() - 1}, events
        finally:
            pair.stop()


def test_an_sdk_without_the_channel_is_sent_none(tmp_path: Path) -> None:
    # RITORNELLO_CHANNEL=0: discovery does not say "channel", as an older SDK's does not
    pair = Pair(tmp_path, RITORNELLO_CHANNEL="0")
    try:
        status, body, headers = pair.call("ten", {})
        assert (status, body) == (200, [i * i for i in range(10)]), pair.orch.output()
        assert pair.invokes() == 10 and pair.lines("tokens") == []  # no request named one
        assert pair.ran(headers["x-restate-id"]) == {f"step-{i}": 1 for i in range(10)}
    finally:
        pair.stop()


def _post(pair: Pair, token: str | None, body: bytes, method: str = "POST") -> tuple[int, Any]:
    headers = {} if token is None else {TOKEN: token}
    status, answer, _ = http(method, f"{pair.orch.ingress}{PATH}", raw=body, headers=headers)
    return status, answer


def test_forged_stale_and_malformed_checkpoints_are_refused(tmp_path: Path) -> None:
    pair = Pair(tmp_path, {"RITORNELLO_MAX_BODY_BYTES": "100000"})
    try:
        status, _, headers = pair.call("ten", {"n": 3})
        assert status == 200
        inv = headers["x-restate-id"]
        (stale,) = pair.lines("tokens")
        assert stale.startswith(inv + ".1.")
        entry = {"kind": "run", "name": "step-3", "value": 9}
        good = json.dumps({"version": 1, "status": "checkpoint", "entries": [entry]}).encode()
        # the run is over: a zombie's checkpoint changes nothing
        assert _post(pair, stale, good)[0] == 409
        assert _post(pair, None, good)[0] == 401
        forged = stale[:-4] + ("0000" if not stale.endswith("0000") else "1111")
        assert _post(pair, forged, good)[0] == 403
        other = stale.replace(inv, "inv_someoneelse")
        assert _post(pair, other, good)[0] == 403
        assert _post(pair, "garbage", good)[0] == 403
        for bad in (
            b"not json",
            b"[1,2]",
            b'{"version":1,"status":"done","entries":[{"kind":"output","value":1}]}',
            b'{"version":1,"status":"checkpoint","entries":[{"kind":"run","name":"x",'
            b'"value":123456789012345678901234567890}]}',
            b'{"version":2,"status":"checkpoint","entries":[]}',
            b'{"version":1,"status":"checkpoint","entries":"no"}',
        ):
            status, answer = _post(pair, stale, bad)
            assert status == 400, (bad, status, answer)
        assert _post(pair, stale, b"x" * 200_000)[0] == 413
        assert _post(pair, stale, b"", method="GET")[0] == 405
        # nothing changed, and the ingress still serves
        journal = pair.journal(inv)
        assert _steps(journal) == ["step-0", "step-1", "step-2"]
        assert journal[-1]["kind"] == "output"
        status, body, _ = pair.call("ten", {"n": 2})
        assert (status, body) == (200, [0, 1])
        # GET /metrics: each refusal by its class; the two runs' acks (2 of n=3, 1 of n=2)
        assert engine_events(pair.orch.admin, "channel_") == {
            "runs": 2,
            "acked": 3,
            "refused_stale": 1,
            "refused_no_token": 1,
            "refused_forged": 3,
            "refused_malformed": 6,
            "refused_too_large": 1,
            "refused_method": 1,
        }
    finally:
        pair.stop()


def test_kill9_of_the_orchestrator_mid_run(tmp_path: Path) -> None:
    pair = Pair(tmp_path)
    try:
        inv = pair.send("ten", {"n": 4, "pause_s": 1.5})
        wait_until(lambda: len(pair.lines("ledger")) >= 3, 20, "three steps started")
        assert scrape(pair.orch.admin)[("ritornello_channel_runs", ())] == 1  # the run, live
        committed = _steps(pair.journal(inv))  # what was acknowledged before the kill
        pair.orch.kill9()
        pair.restart_orchestrator()
        status, body = pair.attach(inv)
        assert (status, body) == (200, [i * i for i in range(4)]), pair.orch.output()
        ran = pair.ran(inv)
        assert set(ran) == {f"step-{i}" for i in range(4)}
        for step in committed:
            assert ran[step] == 1, (step, ran)  # a committed step never runs again
        assert all(n <= 2 for n in ran.values()), ran  # at least once, and only the one cut
        journal = pair.journal(inv)
        assert _steps(journal) == [f"step-{i}" for i in range(4)]  # no duplicate entry
        # The old run's next checkpoint was not taken: refused by the new process (a token not
        # made there: the run stops), or, had it come before the restart, not connected (the
        # run answers it to a caller that is gone).
        emulator = pair.emulator.output
        wait_until(
            lambda: "(403)" in emulator() or "cannot connect" in emulator(), 10, "old run ended"
        )
        if "(403)" in emulator():
            assert "token not made here" in pair.orch.output()
            assert engine_events(pair.orch.admin, "channel_")["refused_forged"] == 1
    finally:
        pair.stop()


@pytest.mark.parametrize("how", ["awakeable", "cancel"])
def test_something_reaching_the_invocation_mid_run_ends_the_run(tmp_path: Path, how: str) -> None:
    pair = Pair(tmp_path)
    try:
        inv = pair.send("waits", {"n": 6, "pause_s": 0.3})
        wait_until(lambda: len(pair.lines("ledger")) >= 2, 20, "two steps started")
        if how == "awakeable":
            aid = pair.files["awakeable"].read_text()
            url = f"{pair.orch.ingress}/restate/awakeables/{aid}/resolve"
            assert http("POST", url, "hello")[0] in (200, 202)
        else:
            status, answer, _ = http("PATCH", f"{pair.orch.admin}/invocations/{inv}/cancel")
            assert status in (200, 202), answer
        status, body = pair.attach(inv)
        assert status == 200, (body, pair.orch.output())
        assert body["steps"] == [i * i for i in range(6)]
        if how == "awakeable":
            assert body["awakeable"] == "hello"
        else:
            assert "cancelled" in body["cancelled"]
        # the run in flight was stopped at its next checkpoint (no ack), and a new Lambda
        # request carried what arrived; no step ran twice
        assert pair.invokes() >= 2
        assert "(stop)" in pair.emulator.output()
        assert pair.ran(inv) == {f"step-{i}": 1 for i in range(6)}
        # GET /metrics: the checkpoint in hand when it was stopped, and nothing refused
        events = engine_events(pair.orch.admin, "channel_")
        assert events["stopped"] == 1 and events["runs"] == pair.invokes(), events
        assert set(events) == {"runs", "acked", "stopped"}, events
    finally:
        pair.stop()


def test_signed_requests_have_verified_acks(tmp_path: Path) -> None:
    pair = Pair(tmp_path, RITORNELLO_SIGNING_SECRET="a-shared-secret")
    try:
        started = time.monotonic()
        status, body, headers = pair.call("ten", {})
        assert (status, body) == (200, [i * i for i in range(10)]), pair.orch.output()
        assert time.monotonic() - started < 20
        assert pair.invokes() == 1  # every ack verified: the run went on after each
        assert pair.ran(headers["x-restate-id"]) == {f"step-{i}": 1 for i in range(10)}
        assert "closed after" not in pair.emulator.output()
    finally:
        pair.stop()
