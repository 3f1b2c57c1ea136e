"""A cluster of orchestrators on one DynamoDB table (moto's serialized server over real HTTP on
loopback), without crashes: what the cluster must get right when orchestrators join, leave and
register deployments (issue 23).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import statistics
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.integration._soak import soak
from tests.procs import (
    ROOT,
    Endpoint,
    Orchestrator,
    cluster_view,
    http,
    orchestrators,
    store_init,
    wait_until,
)

APPS = ROOT / "tests" / "apps"


@pytest.mark.timeout(120)
def test_a_deployment_registered_through_one_orchestrator_is_found_at_once_by_another(
    tmp_path: Path, moto: dict[str, str]
) -> None:
    """Register through A, then 20 concurrent calls to B at once: every one is served. A miss
    on an unknown service waits for a refresh of the deployments that started after it, one
    shared by all the requests missing meanwhile, before it may answer 404 (it used to answer
    404 to most of them: a refresh ran at most every 0.5 s and misses did not wait for it)."""
    url = "dynamodb://ritornello-registration?region=us-east-1&partitions=4"
    store_init(url, moto)
    endpoint = Endpoint(
        tmp_path, APPS, "crashapp", RITORNELLO_TEST_LEDGER=str(tmp_path / "ledger.txt")
    ).start()
    a, b = orchestrators(tmp_path, url, moto, ["a", "b"])
    try:
        # B has read the (empty) deployments and answers 404 for the service, as it should
        status, body, _ = http("POST", f"{b.ingress}/restate/call/Adder/add", [1, 2])
        assert status == 404, body
        status, body, _ = http("POST", f"{a.admin}/deployments", {"uri": endpoint.uri})
        assert status == 201, body

        def call(n: int) -> tuple[int, object]:
            status, body, _ = http("POST", f"{b.ingress}/restate/call/Adder/add", [n, 1])
            return status, body

        with ThreadPoolExecutor(20) as pool:
            results = list(pool.map(call, range(20)))
        assert results == [(200, n + 1) for n in range(20)], results
    finally:
        for orch in (a, b):
            orch.kill9()
        endpoint.terminate()


N = 30  # objects (Worker/w0..w29)
STEPS = 6
ENV = {
    "RITORNELLO_LEASE_S": "3",
    "RITORNELLO_INBOX_INTERVAL_S": "0.05",
    # off: every invocation must finish without it (nothing is left for it to find)
    "RITORNELLO_WATCHDOG_INTERVAL_S": "0",
}


def _wait_all_led(orchs: list[Orchestrator], within_s: float) -> None:
    """Until ``orchs`` lead all 8 partitions between them."""
    names = ", ".join(o.log.parent.name for o in orchs)
    wait_until(
        lambda: sum(len(cluster_view(o)["leading"]) for o in orchs) == 8,
        within_s,
        f"{names} lead all 8 partitions",
    )


def _executions(ledger: Path) -> dict[tuple[str, str], list[float]]:
    """When each (invocation, step) ran, from the ledger (crashapp's tokens end with it)."""
    runs: dict[tuple[str, str], list[float]] = defaultdict(list)
    for line in ledger.read_text().splitlines():
        inv, step, token = line.split()
        runs[(inv, step)].append(float(token.rsplit("@", 1)[1]))
    return runs


_LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .*partition (\d+): (.*)$")


def _handover_times(orchs: list[Orchestrator]) -> list[float]:
    """Seconds from each "handing over" of a partition (a join's rebalance, a SIGTERM) to its
    recovery on its next leader, read from the orchestrators' logs."""
    events: list[tuple[datetime, str, int, str]] = []
    for orch in orchs:
        for line in orch.log.read_text(errors="replace").splitlines():
            m = _LOG_TIME.match(line)
            if m:
                at = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f")
                events.append((at, orch.log.parent.name, int(m.group(2)), m.group(3)))
    events.sort()
    times = []
    for at, node, partition, what in events:
        if what.startswith("handing over"):
            later = [
                t
                for t, n, p, w in events
                if p == partition and n != node and t >= at and w.startswith("recovered")
            ]
            if later:
                times.append((later[0] - at).total_seconds())
    return times


class _Load:
    """Requests sent all along, round robin, to the orchestrators in ``up``, by two clients:
    one ``/send``s six-step ``Worker/slow_work`` invocations (300 ms steps, a call to
    ``Adder/add`` after each, object state), the other ``/call``s ``Adder/add`` with an
    idempotency key shared with the call before it, made through another orchestrator (the
    same invocation: the same id and answer). What came back is kept: ids sent, ids called,
    and any answer but 202/200 (with the ``x-restate-id`` it named)."""

    def __init__(self, up: list[Orchestrator]) -> None:
        self.up = up
        self.sent: list[str] = []
        self.called: dict[str, str] = {}  # idempotency key -> invocation id
        self.refused: list[tuple[str, int, object, str | None]] = []
        self._sending = threading.Event()
        self._threads = [
            threading.Thread(target=self._every, args=(self._send,)),
            threading.Thread(target=self._every, args=(self._call,)),
        ]

    def start(self) -> None:
        self._sending.set()
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._sending.clear()
        for thread in self._threads:
            if thread.is_alive():
                thread.join()

    def _every(self, request: Callable[[Orchestrator, int], None]) -> None:
        n = 0
        while self._sending.is_set():
            request(self.up[n % len(self.up)], n)
            n += 1
            time.sleep(0.1)

    def _request(
        self, orch: Orchestrator, path: str, body: object, headers: dict[str, str] | None = None
    ) -> tuple[int, Any, str | None]:
        try:
            status, answer, rh = http("POST", orch.ingress + path, body, headers=headers)
        except OSError as exc:
            return 0, repr(exc), None
        return status, answer, rh.get("x-restate-id")

    def _send(self, orch: Orchestrator, n: int) -> None:
        body = {"steps": STEPS, "step_ms": 300}
        status, answer, inv = self._request(orch, f"/restate/send/Worker/w{n % N}/slow_work", body)
        if status == 202:
            self.sent.append(answer["invocationId"])
        else:
            self.refused.append((orch.log.parent.name, status, answer, inv))

    def _call(self, orch: Orchestrator, n: int) -> None:
        key = f"k{n // 2}"  # each key twice, through two orchestrators in turn
        path = "/restate/call/Adder/add"
        status, answer, inv = self._request(orch, path, [n // 2, 1], {"idempotency-key": key})
        ok = status == 200 and answer == n // 2 + 1 and inv is not None
        if ok and self.called.setdefault(key, inv) == inv:
            return
        self.refused.append((orch.log.parent.name, status, answer, inv))

    def attach_all(self, orch: Orchestrator, timeout: float = 90) -> list[tuple[int, object]]:
        """Attach to every invocation sent (through ``orch``): their answers."""

        def attach(inv_id: str) -> tuple[int, object]:
            try:
                status, body, _ = http(
                    "GET", f"{orch.ingress}/restate/attach/{inv_id}", timeout=timeout
                )
            except OSError:  # a timeout, raw or wrapped by urllib
                return 0, f"{inv_id} not finished {timeout} s after the last send"
            return status, body

        with ThreadPoolExecutor(32) as pool:
            return list(pool.map(attach, self.sent))


def _keep_logs(tmp_path: Path, orchs: list[Orchestrator], problem: str) -> None:
    """Fail with ``problem``, keeping the run's files in /tmp and quoting the warnings."""
    keep = Path("/tmp") / f"cluster-failure-{int(time.time())}"
    shutil.copytree(tmp_path, keep, ignore_dangling_symlinks=True)
    warnings = [
        f"{o.log.parent.name}: {line}"
        for o in orchs
        for line in o.log.read_text(errors="replace").splitlines()
        if "WARNING ritornello" in line or "ERROR" in line
    ]
    pytest.fail(f"{problem}; files kept in {keep}\n" + "\n".join(warnings[-60:]))


def _check_finished(
    tmp_path: Path, orchs: list[Orchestrator], load: _Load, through: Orchestrator
) -> dict[tuple[str, str], list[float]]:
    """Every invocation sent finished with the right answer, every step and call ran (at
    least once): the ledger's runs, for the caller to judge re-runs."""
    results = load.attach_all(through)
    expected = {"total": sum(range(STEPS)), "progress": STEPS}
    wrong = [r for r in results if r != (200, expected)]
    if wrong:
        _keep_logs(tmp_path, orchs, f"{len(wrong)} not answered as expected: {wrong[:5]}")
    runs = _executions(tmp_path / "ledger.txt")
    started = {inv for inv, step in runs if step.startswith("step-")}
    assert started == set(load.sent)
    assert len([k for k in runs if k[1].startswith("step-")]) == len(load.sent) * STEPS
    called = set(load.called.values())
    assert called <= {inv for inv, step in runs if step == "add"}
    # each call made once per key (the second with the key joined the first), each
    # slow_work's STEPS calls: no more "add" invocations than that
    adds = {inv for inv, step in runs if step == "add"}
    assert len(adds) == len(called) + len(load.sent) * STEPS, (len(adds), len(called))
    return runs


@pytest.fixture
def crashapp(tmp_path: Path) -> Iterator[Endpoint]:
    endpoint = Endpoint(
        tmp_path, APPS, "crashapp", RITORNELLO_TEST_LEDGER=str(tmp_path / "ledger.txt")
    ).start()
    yield endpoint
    endpoint.terminate()


@pytest.mark.timeout(120)
def test_calls_waiting_at_an_orchestrator_that_stops_get_their_results(
    tmp_path: Path, moto: dict[str, str], crashapp: Endpoint
) -> None:
    """SIGTERM an orchestrator while clients wait there for six-step invocations (of
    partitions it leads and of ones it does not): it drains, hands its partitions over, and
    the waiting calls get their results as the other orchestrator finishes them (they used
    to get 503 "attach again")."""
    url = "dynamodb://ritornello-stopcalls?region=us-east-1&partitions=8"
    store_init(url, moto)
    orchs = orchestrators(tmp_path, url, moto, ["o0", "o1"], **ENV)
    try:
        status, body, _ = http("POST", f"{orchs[0].admin}/deployments", {"uri": crashapp.uri})
        assert status == 201, body
        _wait_all_led(orchs, 20)
        leaving = orchs[1]
        args = {"steps": STEPS, "step_ms": 300}

        def call(i: int) -> tuple[int, Any]:
            path = f"{leaving.ingress}/restate/call/Worker/stop{i}/slow_work"
            status, answer, _ = http("POST", path, args, timeout=60)
            return status, answer

        with ThreadPoolExecutor(6) as pool:
            calls = [pool.submit(call, i) for i in range(6)]
            time.sleep(0.8)  # each has started its steps
            assert leaving.terminate(timeout=60) == 0, leaving.output()
            answers = [c.result() for c in calls]
        expected = {"total": sum(range(STEPS)), "progress": STEPS}
        assert answers == [(200, expected)] * 6, answers
        runs = _executions(tmp_path / "ledger.txt")
        steps = [k for k in runs if k[1].startswith("step-")]
        assert len(steps) == 6 * STEPS and all(len(runs[k]) == 1 for k in steps), runs
    finally:
        for orch in orchs:
            orch.kill9()


@pytest.mark.timeout(300)
def test_partitions_change_hands_on_joins_sigterms_and_pauses_without_running_a_step_twice(
    tmp_path: Path, moto: dict[str, str], crashapp: Endpoint
) -> None:
    """Two orchestrators, then a third joins (the others hand it partitions), one is paused
    (SIGSTOP) for half a lease period, then one is stopped with SIGTERM (it hands all of its
    partitions over), while six-step invocations (steps in flight at every moment, calls to
    another service, object state) and calls with shared idempotency keys are sent all along
    to whichever orchestrators are up. No crash, so: every request is answered as on one
    node (no 404 for an id just given out, no 5xx), every invocation finishes soon after
    without the watchdog, and every journaled step and call's side effect ran exactly once.
    A partition handed over drains first — the attempts in flight answer and commit, none
    starts — and only then is its lease released (it used to cancel every driver of the
    partition at once: a step that had run but was not committed ran again); a lease that
    lapsed while its process was paused is renewed when it resumes, not given up."""
    url = "dynamodb://ritornello-handover?region=us-east-1&partitions=8"
    store_init(url, moto)
    orchs = orchestrators(tmp_path, url, moto, ["o0", "o1"], **ENV)
    load = _Load(list(orchs))
    try:
        status, body, _ = http("POST", f"{orchs[0].admin}/deployments", {"uri": crashapp.uri})
        assert status == 201, body
        _wait_all_led(orchs, 20)
        load.start()
        time.sleep(1.5)
        joined = orchestrators(tmp_path, url, moto, ["o2"], **ENV)[0]
        orchs.append(joined)
        load.up.append(joined)
        wait_until(lambda: len(cluster_view(joined)["leading"]) >= 2, 30, "o2 takes partitions")
        paused = orchs[0]
        assert paused.proc is not None
        os.kill(paused.proc.pid, signal.SIGSTOP)  # half a lease period: nobody takes over
        time.sleep(1.5)
        os.kill(paused.proc.pid, signal.SIGCONT)
        time.sleep(1.0)
        leaving = orchs[1]
        load.up.remove(leaving)
        time.sleep(0.2)  # (requests already sent to it are answered before it stops)
        stopped_at = time.monotonic()
        assert leaving.terminate(timeout=60) == 0, leaving.output()
        survivors = [orchs[0], joined]
        _wait_all_led(survivors, 30)
        time.sleep(1.0)
        load.stop()
        if load.refused:
            _keep_logs(tmp_path, orchs, f"answered otherwise than on one node: {load.refused}")
        runs = _check_finished(tmp_path, orchs, load, joined)
        finished_in = time.monotonic() - stopped_at
        twice = {k: len(v) for k, v in runs.items() if len(v) != 1}
        if twice:
            _keep_logs(tmp_path, orchs, f"ran more than once: {twice}")
        handovers = _handover_times(orchs)
        assert handovers, "no hand-over seen in the logs"
        print(
            f"{len(load.sent)} invocations, {len(load.called)} calls; all done "
            f"{finished_in:.1f} s after the SIGTERM; {len(handovers)} hand-overs, median "
            f"{statistics.median(handovers):.2f} s, max {max(handovers):.2f} s (handing over "
            "to recovered on the next leader)"
        )
        for orch in survivors:
            print(orch.log.parent.name, cluster_view(orch)["renewals"])
        assert max(handovers) < 10, handovers
    finally:
        load.stop()
        for orch in orchs:
            if orch.proc is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(orch.proc.pid, signal.SIGCONT)
            orch.kill9()


@pytest.mark.skipif(
    os.environ.get("RITORNELLO_CLUSTER_KILL") != "1",
    reason="RITORNELLO_CLUSTER_KILL=1 (make chaos) runs it: 29 s; make test has the kill -9's "
    "of tests/store/test_dynamodb_takeover.py and tests/chaos/test_kill_loop.py",
)
@pytest.mark.timeout(300)
def test_a_kill_9_in_a_cluster_reruns_only_what_it_interrupted(
    tmp_path: Path, moto: dict[str, str], crashapp: Endpoint
) -> None:
    """The same load on three orchestrators; one is killed with kill -9 mid-run. Its
    partitions are taken over once its leases expire and everything sent finishes (the
    watchdog is off). A step may run again only if it was interrupted by the kill: its
    first run began before the kill, its next after — a step re-run with no kill between
    its runs is a bug. Requests to the survivors are all answered as usual."""
    url = "dynamodb://ritornello-kill?region=us-east-1&partitions=8"
    store_init(url, moto)
    orchs = orchestrators(tmp_path, url, moto, ["k0", "k1", "k2"], **ENV)
    load = _Load(list(orchs))
    try:
        status, body, _ = http("POST", f"{orchs[0].admin}/deployments", {"uri": crashapp.uri})
        assert status == 201, body
        wait_until(
            lambda: [len(cluster_view(o)["leading"]) for o in orchs].count(0) == 0,
            30,
            "every orchestrator leads partitions",
        )
        load.start()
        time.sleep(3.0)
        victim = orchs[1]
        load.up.remove(victim)
        time.sleep(0.3)  # (requests to it are answered or cut by the kill: not counted)
        killed_at = time.time()
        victim.kill9()
        survivors = [orchs[0], orchs[2]]
        _wait_all_led(survivors, 30)
        time.sleep(1.0)
        load.stop()
        refused = [r for r in load.refused if r[0] != victim.log.parent.name]
        if refused:
            _keep_logs(tmp_path, orchs, f"survivors answered otherwise: {refused}")
        runs = _check_finished(tmp_path, orchs, load, orchs[0])
        unexplained = {
            k: v for k, v in runs.items() if len(v) > 1 and not (min(v) < killed_at < max(v))
        }
        if unexplained:
            _keep_logs(tmp_path, orchs, f"re-run with no kill between the runs: {unexplained}")
        reruns = sum(len(v) - 1 for v in runs.values())
        print(f"{len(load.sent)} invocations, {len(load.called)} calls; {reruns} re-runs")
    finally:
        load.stop()
        for orch in orchs:
            orch.kill9()


@pytest.mark.skipif(
    os.environ.get("RITORNELLO_LEASE_TEST") != "1",
    reason="RITORNELLO_LEASE_TEST=1 (make chaos) runs it: 26 s of full load; make lease-soak "
    "runs it for ten minutes",
)
@pytest.mark.timeout(240)
def test_leases_keep_time_under_load(tmp_path: Path) -> None:
    """Three orchestrators at full load (wrk on every ingress; moto, serializing every
    request, is the bottleneck): no lease lapses, renewal rounds keep their schedule, and what
    each orchestrator measured is reported (``make lease-soak`` runs this for ten minutes)."""
    result = soak(tmp_path, seconds=20)
    print(f"{result['calls']} calls in {result['seconds']} s")
    for node in result["nodes"]:
        print({k: node[k] for k in node if k != "requests"})
        assert node["lapses"] == 0, node
        assert node["rounds"] >= 10, node  # a round every third of the 5 s lease period
        assert node["late_max_ms"] < 500, node  # the loop did not starve the schedule
        assert node["margin_min_ms"] is not None and node["margin_min_ms"] > 0, node
