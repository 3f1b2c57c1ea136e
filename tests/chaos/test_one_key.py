"""One virtual-object key under 100 concurrent calls while the orchestrator is killed (-9) five
times. Clients retry with idempotency keys after connection errors. Afterwards:

* every call is answered, and the answers are exactly 1..100 (each read-modify-write saw the
  previous one's write), and the final state is 100;
* no overlap: the committed executions of the exclusive handler on the key (their committed
  ``begin`` and ``end`` steps, found through each journal's tokens in the ledger) form
  disjoint time intervals. An attempt orphaned by a kill may still run at the endpoint beside
  its successor; the guarantee is about what was committed, and that is what is checked.
"""

from __future__ import annotations

import itertools
import os
import random
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.chaos._support import APPS, journal, read_ledger, retrying
from tests.procs import Endpoint, Orchestrator, http

CALLS = 100
KILLS = 5
SEED = int(os.environ.get("RITORNELLO_CHAOS_SEED", str(random.SystemRandom().randrange(10**6))))


@pytest.mark.timeout(300)
def test_one_key_under_concurrent_calls_and_kills(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    print(f"\none key: seed={SEED} calls={CALLS} kills={KILLS}")
    ledger = tmp_path / "ledger.txt"
    endpoint = Endpoint(tmp_path, APPS, "chaosapp", RITORNELLO_TEST_LEDGER=str(ledger)).start()
    orch = Orchestrator(tmp_path, RITORNELLO_RETRY_INITIAL_MS="20").start()
    try:
        status, body, _ = http("POST", f"{orch.admin}/deployments", {"uri": endpoint.uri})
        assert status == 201, body
        url = f"{orch.ingress}/restate/call/Counter/hot/bump"  # ports survive restarts

        def client(i: int) -> tuple[int, object, str]:
            status, body, headers = retrying(
                "POST",
                url,
                1,
                headers={"idempotency-key": f"bump-{i}"},
                timeout=60,
                within_s=240,
            )
            return status, body, headers.get("x-restate-id", "")

        started = time.monotonic()
        with ThreadPoolExecutor(CALLS) as pool:
            futures = [pool.submit(client, i) for i in range(CALLS)]
            for _ in range(KILLS):
                time.sleep(rng.uniform(0.2, 0.8))
                orch.kill9()
                orch.start()
            answers = [f.result() for f in futures]
        print(f"all answered in {time.monotonic() - started:.1f} s")

        assert all(status == 200 for status, _, _ in answers), answers
        assert sorted(int(str(body)) for _, body, _ in answers) == list(range(1, CALLS + 1))
        ids = [inv for _, _, inv in answers]
        assert all(ids) and len(set(ids)) == CALLS, ids
        status, body, _ = retrying("POST", f"{orch.ingress}/restate/call/Counter/hot/value")
        assert (status, body) == (200, CALLS)

        executions = read_ledger(ledger)
        intervals = []
        orphans = 0
        for inv in ids:
            runs = {e["name"]: e["value"] for e in journal(orch, inv) if e["kind"] == "run"}
            committed = {}
            for step in ("begin", "end"):
                tokens = executions[(inv, step)]
                assert tokens and tokens[-1].token == runs[step], (SEED, inv, step, tokens)
                (committed[step],) = [t for t in tokens if t.token == runs[step]]
                orphans += len(tokens) - 1
            intervals.append((committed["begin"].time_ns, committed["end"].time_ns, inv))
        intervals.sort()
        for (b1, e1, inv1), (b2, e2, inv2) in itertools.pairwise(intervals):
            assert b1 <= e1 < b2 <= e2, (SEED, "committed executions overlap", inv1, inv2)
        print(f"committed executions disjoint: {len(intervals)}; re-run steps: {orphans}")
    finally:
        orch.kill9()
        endpoint.terminate()
