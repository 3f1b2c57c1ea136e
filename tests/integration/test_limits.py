"""Named limits (docs/limits.md) on one ``ritornello serve`` over SQLite, judged by what the
downstream service saw (tests/integration/_downstream.py), never by how fast the engine went:
how many requests it had in flight at once, how many began in any 1 s window, in which order they
came, and that every invocation's request came at least once.

The handler is tests/apps/limitapp.py (``Limited/call``): one step, limited, that calls the
downstream with the invocation's tag and returns it.

What the journals say is judged too: how many permits were out at once (from each grant to
the journaling of the step it guarded) and how many grants fell in any 1 s window. A rate
limit bounds grants (rate + burst in any 1 s window); the downstream's request starts are held
to rate + burst + concurrency (``assert_limit_held`` says why).
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration._downstream import Downstream, assert_limit_held, permits_held
from tests.procs import ROOT, Endpoint, Orchestrator, check_store, http, wait_until

APPS = ROOT / "tests" / "apps"

#: ``down``: at most 5 permits out, at most 50 grants a second with a bucket of 10
DOWN_TOML = '[limits.down]\nconcurrency = 5\nrate = 50\nper = "1s"\nburst = 10\n'
CONCURRENCY, RATE, BURST = 5, 50, 10


@dataclass
class Stack:
    orch: Orchestrator
    endpoint: Endpoint
    down: Downstream

    def send(self, tag: str, limit: str = "down", priority: str | None = None) -> str:
        """A one-way send of ``Limited/call`` for ``tag``: its invocation id."""
        headers = {} if priority is None else {"x-ritornello-priority": priority}
        body = {"tag": tag, "limit": limit}
        path = f"{self.orch.ingress}/restate/send/Limited/call"
        status, answer, _ = http("POST", path, body, headers=headers)
        assert status == 202, (tag, status, answer)
        return str(answer["invocationId"])

    def limit(self, name: str) -> dict[str, Any]:
        status, body, _ = http("GET", f"{self.orch.admin}/limits/{name}")
        assert status == 200, body
        return body  # type: ignore[no-any-return]

    def put_limit(self, name: str, definition: dict[str, Any]) -> None:
        status, body, _ = http("PUT", f"{self.orch.admin}/limits/{name}", definition)
        assert status in (200, 201), body

    def finished(self) -> dict[str, dict[str, Any]]:
        """Every ``Limited`` invocation that ended (completed or killed), by id."""
        path = f"{self.orch.admin}/invocations?service=Limited&status=completed,killed&limit=1000"
        status, body, _ = http("GET", path)
        assert status == 200, body
        return {i["id"]: i for i in body["invocations"]}

    def wait_finished(self, ids: list[str], within_s: float) -> dict[str, dict[str, Any]]:
        """Until every one of ``ids`` ended: those invocations, by id."""
        deadline = time.monotonic() + within_s
        done = self.finished()
        while not set(ids) <= set(done):
            assert time.monotonic() < deadline, f"{len(set(ids) - set(done))} not finished"
            time.sleep(0.2)  # (a listing of hundreds: not every 50 ms)
            done = self.finished()
        return {i: done[i] for i in ids}

    def wait_waiting(self, name: str, count: int) -> None:
        """Until ``count`` invocations wait for a permit of ``name``."""
        wait_until(lambda: self.limit(name)["waiting"] == count, 20, f"{count} wait for {name}")


def _serve(tmp: Path, config: str | None = None) -> Orchestrator:
    orch = Orchestrator(tmp)
    if config is not None:
        path = tmp / "ritornello.toml"
        path.write_text(config)
        orch.args += ["--config", str(path)]
    return orch


@contextlib.contextmanager
def _stack(tmp: Path, config: str | None = None, sleep_s: float = 0.02) -> Iterator[Stack]:
    """The downstream, limitapp's endpoint calling it, and ``ritornello serve`` (with
    ``config`` as its ritornello.toml), the endpoint registered."""
    with Downstream(sleep_s) as down:
        endpoint = Endpoint(tmp, APPS, "limitapp", RITORNELLO_TEST_DOWNSTREAM=down.url)
        orch = _serve(tmp, config)
        try:
            endpoint.start()
            orch.start()
            status, body, _ = http("POST", f"{orch.admin}/deployments", {"uri": endpoint.uri})
            assert status == 201, body
            yield Stack(orch, endpoint, down)
        finally:
            orch.kill9()
            endpoint.terminate()


@pytest.mark.timeout(180)
def test_a_limit_holds_across_a_kill_9_and_loses_nothing(tmp_path: Path) -> None:
    """300 invocations sent at once through ``down`` (ritornello.toml: concurrency 5, 50/s,
    burst 10); ``serve`` is killed with kill -9 a third of the way and started again on the
    same database. Never more than 5 permits out at once by the journals, nor 5 requests in
    flight at the downstream; at most 50 + 10 grants in any 1 s window (the downstream at
    most 50 + 10 + 5 request starts: see ``assert_limit_held``); every invocation completes
    with its tag, having reached the downstream (a step cut by the kill may reach it again:
    it holds its permit until its result is journaled); no permit is left out or waited for;
    the store checks clean."""
    n = 300
    with _stack(tmp_path, DOWN_TOML) as stack:
        tags = [f"t{i:03d}" for i in range(n)]
        with ThreadPoolExecutor(32) as pool:
            ids = list(pool.map(stack.send, tags))
        wait_until(lambda: len(stack.down.requests) >= n // 3, 60, "a third reach downstream")
        stack.orch.kill9()
        seen_at_kill = len(stack.down.requests)
        stack.orch.start()
        done = stack.wait_finished(ids, 90)

        wrong = {
            i: done[i]["result"]
            for i, t in zip(ids, tags, strict=True)
            if done[i]["result"] != {"value": t}
        }
        assert not wrong, wrong
        assert seen_at_kill < n, "everything ran before the kill: nothing was in flight"
        held = permits_held(stack.orch.admin, ids)
        busiest, busiest_grants, out_at_once = assert_limit_held(
            stack.down, tags, held, concurrency=CONCURRENCY, rate=RATE, burst=BURST
        )
        requests = stack.down.requests
        figures = stack.limit("down")
        assert (figures["in_flight"], figures["waiting"]) == (0, 0), figures
        print(
            f"{len(requests)} downstream requests for {n} invocations "
            f"({len(requests) - n} re-run after the kill, {seen_at_kill} seen before it); "
            f"max concurrency {stack.down.max_concurrency}, busiest 1 s window {busiest} "
            f"requests, {busiest_grants} grants; {out_at_once} permits out at once"
        )
        assert stack.orch.terminate() == 0, stack.orch.output()
        print(check_store(stack.orch.store, "--expect-terminal"))


@pytest.mark.timeout(60)
def test_waiters_are_served_by_priority_then_in_arrival_order(tmp_path: Path) -> None:
    """Concurrency 1, its permit held by a request the downstream keeps waiting; then
    invocations of priorities 0..10 (one without the header: 5) arrive one after another,
    each waiting before the next is sent. Released, they reach the downstream highest
    priority first, and in arrival order within one priority. A priority outside 0..10 or not
    a whole number is refused with 400."""
    with _stack(tmp_path) as stack:
        ingress = f"{stack.orch.ingress}/restate/send/Limited/call"
        for bad in ("11", "-1", "high", "5.5", ""):
            status, body, _ = http(
                "POST", ingress, {"tag": "bad"}, headers={"x-ritornello-priority": bad}
            )
            assert status == 400 and "x-ritornello-priority" in body["message"], (bad, body)

        stack.put_limit("one", {"concurrency": 1})
        stack.down.held = {"hold"}
        ids = [stack.send("hold", "one")]
        wait_until(lambda: stack.down.tags == ["hold"], 20, "the holder reaches downstream")
        arrivals = [
            ("p1a", "1"),
            ("p5a", "5"),
            ("p9a", "9"),
            ("p0", "0"),
            ("pdefault", None),
            ("p9b", "9"),
            ("p10", "10"),
            ("p1b", "1"),
            ("p5b", "5"),
        ]
        for waiting, (tag, priority) in enumerate(arrivals, 1):
            ids.append(stack.send(tag, "one", priority))
            stack.wait_waiting("one", waiting)
        stack.down.release()
        done = stack.wait_finished(ids, 30)
        assert [d["result"] for d in done.values()] == [
            {"value": t} for t in ["hold", *(a[0] for a in arrivals)]
        ]
        expected = ["hold", "p10", "p9a", "p9b", "p5a", "pdefault", "p5b", "p1a", "p1b", "p0"]
        assert stack.down.tags == expected
        assert stack.down.max_concurrency == 1


@pytest.mark.timeout(60)
def test_a_waiter_cancelled_or_killed_gives_up_its_place(tmp_path: Path) -> None:
    """Concurrency 1, held; four invocations wait. The second is cancelled and the fourth
    killed while they wait: both end at once (the cancelled one with a terminal "cancelled"
    failure) without reaching the downstream and without a permit; the others complete in
    turn once the holder lets go, and nothing is left out or waiting."""
    with _stack(tmp_path) as stack:
        stack.put_limit("one", {"concurrency": 1})
        stack.down.held = {"hold"}
        holder = stack.send("hold", "one")
        wait_until(lambda: stack.down.tags == ["hold"], 20, "the holder reaches downstream")
        waiters = []
        for k in range(1, 5):
            waiters.append(stack.send(f"w{k}", "one"))
            stack.wait_waiting("one", k)
        w1, w2, w3, w4 = waiters
        status, body, _ = http("PATCH", f"{stack.orch.admin}/invocations/{w2}/cancel")
        assert status == 200, body
        status, body, _ = http("PATCH", f"{stack.orch.admin}/invocations/{w4}/kill")
        assert status == 200, body
        # they end while the permit is still held by the holder: no grant was needed
        gone = stack.wait_finished([w2, w4], 20)
        assert gone[w4]["status"] == "killed", gone[w4]
        cancelled = gone[w2]
        assert cancelled["status"] == "failed", cancelled
        failure = cancelled["result"]["failure"]
        assert "cancel" in failure["message"].lower(), cancelled
        figures = stack.limit("one")
        assert (figures["in_flight"], figures["waiting"]) == (1, 2), figures
        assert stack.down.tags == ["hold"]

        stack.down.release()
        done = stack.wait_finished([holder, w1, w3], 30)
        assert [d["result"] for d in done.values()] == [{"value": t} for t in ("hold", "w1", "w3")]
        assert stack.down.tags == ["hold", "w1", "w3"]
        figures = stack.limit("one")
        assert (figures["in_flight"], figures["waiting"]) == (0, 0), figures


@pytest.mark.timeout(60)
def test_a_limit_raised_mid_run_lets_more_through_from_then_on(tmp_path: Path) -> None:
    """16 invocations through a limit of concurrency 1 (200 ms downstream requests); after
    three requests ``PUT /limits`` raises it to 4. No request began with another in flight
    before the change; after it, 4 were in flight at once, never more."""
    with _stack(tmp_path, sleep_s=0.2) as stack:
        stack.put_limit("grow", {"concurrency": 1})
        ids = [stack.send(f"g{i:02d}", "grow") for i in range(16)]
        wait_until(lambda: len(stack.down.requests) >= 3, 30, "three requests downstream")
        changed_at = time.monotonic()
        stack.put_limit("grow", {"concurrency": 4})
        done = stack.wait_finished(ids, 30)
        assert all(d["result"] == {"value": f"g{i:02d}"} for i, d in enumerate(done.values()))
        requests = stack.down.requests
        before = [r for r in requests if r.start < changed_at]
        after = [r for r in requests if r.start >= changed_at]
        assert len(before) >= 3 and max(r.concurrent for r in before) == 1, before
        assert max(r.concurrent for r in after) == 4, after
        assert stack.down.max_concurrency == 4
        figures = stack.limit("grow")
        assert (figures["concurrency"], figures["in_flight"], figures["waiting"]) == (4, 0, 0)


BAD_DEFINITIONS = [
    ({"concurrency": 0}, "concurrency must be a whole number from 1"),
    ({"concurrency": -1}, "concurrency must be a whole number from 1"),
    ({"rate": 5, "per": "2s"}, "per must be one of 1s, 1m, 1h, 1d"),
    ({"rate": 0}, "rate must be a number above 0"),
    ({"rate": -3.5}, "rate must be a number above 0"),
    ({"rate": 5, "burst": 0}, "burst must be a whole number from 1"),
    ({}, "give concurrency, rate, or both"),
]


def _serve_exits(tmp: Path, config: str) -> subprocess.CompletedProcess[str]:
    orch = _serve(tmp, config)
    return subprocess.run(
        orch.args, cwd=ROOT, env=orch.env, capture_output=True, text=True, timeout=30
    )


@pytest.mark.timeout(90)
def test_bad_definitions_are_refused_with_the_reason(tmp_path: Path) -> None:
    """``PUT /limits/x`` with a zero, negative or unknown value, no bound at all or a bad name
    is 400 saying what is wrong (a string for a number is 422), and defines nothing; a
    ritornello.toml with such a ``[limits.x]`` table stops ``ritornello serve`` at start-up
    with the reason on stderr; a step naming a limit that is not defined fails terminally with
    404 without running."""
    for n, (config, reason) in enumerate(
        [
            ("[limits.x]\nconcurrency = 0\n", "concurrency must be a whole number from 1"),
            ("[limits.x]\nconcurrency = 2\nspeed = 3\n", "unknown field 'speed'"),
            ('[limits."bad name"]\nconcurrency = 2\n', "invalid limit name"),
        ]
    ):
        home = tmp_path / f"config{n}"
        home.mkdir()
        done = _serve_exits(home, config)
        assert done.returncode != 0, (config, done.stdout, done.stderr)
        assert reason in done.stderr, (config, done.stderr)

    with _stack(tmp_path) as stack:
        for definition, reason in BAD_DEFINITIONS:
            status, body, _ = http("PUT", f"{stack.orch.admin}/limits/x", definition)
            assert status == 400, (definition, status, body)
            assert reason in body["detail"], (definition, body)
        for name in ("-x", "bad%20name", "a" * 101, "x%24"):
            status, body, _ = http("PUT", f"{stack.orch.admin}/limits/{name}", {"concurrency": 1})
            assert status == 400, (name, status, body)
            assert "invalid limit name" in body["detail"], (name, body)
        status, body, _ = http("PUT", f"{stack.orch.admin}/limits/x", {"concurrency": "5"})
        assert status == 422, body
        status, body, _ = http("GET", f"{stack.orch.admin}/limits/x")
        assert status == 404, body
        status, body, _ = http("GET", f"{stack.orch.admin}/limits")
        assert status == 200 and body["limits"] == [], body

        inv = stack.send("nowhere", "undefined")
        (ended,) = stack.wait_finished([inv], 20).values()
        failure = ended["result"]["failure"]
        assert (ended["status"], failure["code"]) == ("failed", 404), ended
        assert "limit 'undefined' is not defined" in failure["message"], ended
        assert stack.down.requests == []
