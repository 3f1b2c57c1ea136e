"""kill -9 of the orchestrator (SQLite store) at random moments, K times, while 200 ten-step
invocations with sleeps, calls and object updates run (sent in waves between the kills, by
clients that retry with idempotency keys). Afterwards:

* every invocation completes with the right result and its object state is intact;
* every journaled step's committed execution is the last one in the ledger, and a step ran at
  most once more than the number of kills that could have hit it (kills between its
  invocation's send and its committed execution);
* ``ritornello check --expect-terminal`` finds the store consistent (when that command exists).

K is RITORNELLO_CHAOS_KILLS (12 by default, 300 under ``make chaos``); the randomness is
seeded from RITORNELLO_CHAOS_SEED (printed, so a failure can be replayed).
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.chaos._support import (
    APPS,
    check_command_available,
    journal,
    read_ledger,
    retrying,
    run_check,
)
from tests.procs import Endpoint, Orchestrator, http

N = 200
STEPS = 10
KILLS = int(os.environ.get("RITORNELLO_CHAOS_KILLS", "12"))
SEED = int(os.environ.get("RITORNELLO_CHAOS_SEED", str(random.SystemRandom().randrange(10**6))))
SLEEP_MS = 800  # four durable sleeps: each invocation spans a few kills
EXPECTED = {"total": sum(range(STEPS)), "progress": STEPS}


@dataclass
class Run:
    orch: Orchestrator
    db: Path
    ledger: Path
    ids: list[str]
    sent_ns: dict[str, int]
    kill_ns: list[int]
    in_flight_at_kill: list[int] = field(default_factory=list)
    results: list[tuple[int, Any]] = field(default_factory=list)
    seconds: float = 0.0


def _send(orch: Orchestrator, i: int) -> str:
    status, body, _ = retrying(
        "POST",
        f"{orch.ingress}/restate/send/ChaosWorker/k{i}/work",
        [STEPS, SLEEP_MS],
        headers={"idempotency-key": f"chaos-{i}"},
        timeout=10,
    )
    assert status in (200, 202), body
    return str(body["invocationId"])


def _in_flight(orch: Orchestrator, sent: int) -> int:
    try:
        _, done, _ = http(
            "GET",
            f"{orch.admin}/invocations?service=ChaosWorker&status=completed&limit=1000",
            timeout=5,
        )
        return sent - len(done["invocations"])
    except (OSError, TypeError, KeyError):
        return -1


@pytest.fixture(scope="module")
def chaos_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    tmp = tmp_path_factory.mktemp("kill-loop")
    ledger = tmp / "ledger.txt"
    rng = random.Random(SEED)
    print(f"\nkill loop: seed={SEED} kills={KILLS} invocations={N} steps={STEPS}")
    started = time.monotonic()
    endpoint = Endpoint(tmp, APPS, "chaosapp", RITORNELLO_TEST_LEDGER=str(ledger)).start()
    env = {"RITORNELLO_RETRY_INITIAL_MS": "20", "RITORNELLO_RETRY_MAX_MS": "500"}
    orch = Orchestrator(tmp, **env).start()
    try:
        status, body, _ = http("POST", f"{orch.admin}/deployments", {"uri": endpoint.uri})
        assert status == 201, body
        # Waves: a tenth of the invocations at once, the rest spread evenly over the kills
        # (with more kills than invocations, one every few kills), so that work is in flight
        # at every kill, not only at the first ones.
        first = N // 10
        waves: list[list[int]] = [list(range(first))] + [[] for _ in range(KILLS)]
        rest = list(range(first, N))
        for j, i in enumerate(rest):
            waves[1 + j * KILLS // len(rest)].append(i)
        ids: list[str] = []
        sent_ns: dict[str, int] = {}
        kill_ns: list[int] = []
        in_flight: list[int] = []
        for k in range(KILLS + 1):
            for i in waves[k] if k < len(waves) else []:
                t = time.time_ns()
                inv = _send(orch, i)
                ids.append(inv)
                sent_ns[inv] = t
            if k == KILLS:
                break
            time.sleep(rng.uniform(0.2, 1.0))
            in_flight.append(_in_flight(orch, len(ids)))
            kill_ns.append(time.time_ns())
            orch.kill9()
            orch.start()
        assert len(ids) == N and len(set(ids)) == N

        def attach(inv_id: str) -> tuple[int, Any]:
            status, body, _ = retrying(
                "GET", f"{orch.ingress}/restate/attach/{inv_id}", timeout=120, within_s=180
            )
            return status, body

        with ThreadPoolExecutor(32) as pool:
            results = list(pool.map(attach, ids))
        run = Run(orch, tmp / "ritornello.db", ledger, ids, sent_ns, kill_ns, in_flight)
        run.results = results
        run.seconds = time.monotonic() - started
        print(f"in flight at each kill: {in_flight}")
        print(f"workload done in {run.seconds:.1f} s")
        yield run
    finally:
        orch.kill9()
        endpoint.terminate()


@pytest.mark.timeout(max(900, KILLS * 6))  # the run happens in the first test
def test_every_invocation_completes_with_the_right_result(chaos_run: Run) -> None:
    assert chaos_run.results == [(200, EXPECTED)] * N, (SEED, chaos_run.orch.output())
    assert max(chaos_run.in_flight_at_kill) > 0, chaos_run.in_flight_at_kill
    orch = chaos_run.orch
    for i in range(N):
        status, body, _ = retrying("POST", f"{orch.ingress}/restate/call/ChaosWorker/k{i}/status")
        assert (status, body) == (200, EXPECTED), (SEED, i)


@pytest.mark.timeout(max(900, KILLS * 6))  # the run happens in the first test
def test_no_committed_step_ran_again(chaos_run: Run) -> None:
    executions = read_ledger(chaos_run.ledger)
    orch = chaos_run.orch

    def kills_between(start_ns: int, end_ns: int) -> int:
        return sum(1 for k in chaos_run.kill_ns if start_ns <= k <= end_ns)

    def check(inv_id: str) -> tuple[int, int]:
        """(steps checked, re-executions) for one invocation and its callees."""
        checked = reruns = 0
        sent = chaos_run.sent_ns[inv_id]
        entries = journal(orch, inv_id)
        runs = [e for e in entries if e["kind"] == "run"]
        assert [e["name"] for e in runs] == [f"step-{i}" for i in range(STEPS)], (SEED, inv_id)
        callees = [str(e["id"]) for e in entries if e["kind"] == "call"]
        assert len(callees) == STEPS, (SEED, inv_id, entries)
        steps = [(inv_id, str(e["name"]), e["value"]) for e in runs]
        for callee in callees:
            (run,) = [e for e in journal(orch, callee) if e["kind"] == "run"]
            steps.append((callee, "add", run["value"]))
        for inv, step, committed in steps:
            tokens = executions[(inv, step)]
            assert tokens, (SEED, inv, step)
            # The committed execution is the last one: nothing re-ran once committed.
            assert tokens[-1].token == committed, (SEED, inv, step, committed, tokens)
            allowed = 1 + kills_between(sent, tokens[-1].time_ns)
            assert len(tokens) <= allowed, (SEED, inv, step, tokens, allowed)
            checked += 1
            reruns += len(tokens) - 1
        return checked, reruns

    with ThreadPoolExecutor(16) as pool:
        counts = list(pool.map(check, chaos_run.ids))
    assert sum(c for c, _ in counts) == N * STEPS * 2
    print(f"seed={SEED} kills={len(chaos_run.kill_ns)} steps checked={N * STEPS * 2}")
    print(f"uncommitted step executions re-run after a kill: {sum(r for _, r in counts)}")


@pytest.mark.timeout(max(900, KILLS * 6))  # the run happens in the first test
def test_store_check_finds_nothing(chaos_run: Run) -> None:
    if not check_command_available():
        pytest.skip("`python -m ritornello check` does not exist yet: store check not run")
    out = run_check(chaos_run.db)
    assert out.returncode == 0, (SEED, out.stdout[-3000:], out.stderr[-3000:])
