"""Three orchestrator processes on one DynamoDB table (moto's server over real HTTP on
loopback), ten-step invocations with calls, sleeps and object state spread over their
ingresses; the leader of some partitions is SIGSTOP'ed and later SIGCONT'ed, another is
SIGKILL'ed. Every invocation completes once with the right result, each journaled step's
committed execution is its last one, and no journal record carries a stale epoch: along every
journal the epochs its entries were written under never go down.
"""

from __future__ import annotations

import os
import shutil
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from ritornello.store._dynamo_tail import journal_items
from tests.cluster import FAST_TAKEOVER, check_ledger, dynamo_cluster, journal_items_by_pk
from tests.procs import (
    ROOT,
    Orchestrator,
    check_store,
    cluster_view,
    http,
    sqlite_writers,
    wait_until,
)

APPS = ROOT / "tests" / "apps"
N = 24
STEPS = 10
TABLE = "ritornello-scaleout"


@pytest.mark.skipif(
    os.environ.get("RITORNELLO_SCALEOUT") != "1",
    reason="RITORNELLO_SCALEOUT=1 (make scaleout, make chaos) runs it: 35 s; make test has "
    "tests/store/test_dynamodb_takeover.py, two orchestrators through a pause and a kill -9",
)
@pytest.mark.timeout(300)
def test_takeover_from_a_paused_and_a_killed_orchestrator(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.txt"
    with dynamo_cluster(tmp_path, TABLE, 8, APPS, "crashapp", ledger) as cluster:
        orchs = cluster.start(["o0", "o1", "o2"], **FAST_TAKEOVER)
        cluster.deploy(orchs[0])

        def balanced() -> bool:
            leading = [len(cluster_view(o)["leading"]) for o in orchs]
            return sum(leading) == 8 and max(leading) <= 3

        wait_until(balanced, 20, "8 partitions shared by 3 orchestrators")
        for o in orchs:  # serve prestarts a SQLite writer; on DynamoDB it ended it at once
            assert o.proc is not None and sqlite_writers(o.proc.pid) == [], o.output()
        before = {lease["partition"]: lease for lease in cluster_view(orchs[2])["leases"]}

        ids = []
        for i in range(N):
            orch = orchs[i % 3]
            status, body, _ = http("POST", f"{orch.ingress}/restate/send/Worker/w{i}/work", STEPS)
            assert status == 202, body
            ids.append(body["invocationId"])

        time.sleep(0.6)
        victim_pause, victim_kill, survivor = orchs
        cluster.pause(victim_pause)
        stopped = time.monotonic()

        def taken_over() -> bool:
            led = {p for o in (victim_kill, survivor) for p in cluster_view(o)["leading"]}
            return len(led) == 8

        wait_until(taken_over, 4 * 2.0 + 4, "the paused leader's partitions taken over")
        print(f"partitions of the paused leader taken over in {time.monotonic() - stopped:.1f} s")
        cluster.resume(victim_pause)
        time.sleep(0.5)
        victim_kill.kill9()

        def attach(inv_id: str) -> tuple[int, object]:
            try:
                status, body, _ = http(
                    "GET", f"{survivor.ingress}/restate/attach/{inv_id}", timeout=90
                )
            except TimeoutError:
                return 0, "timed out"
            return status, body

        with ThreadPoolExecutor(N) as pool:
            results = list(pool.map(attach, ids))
        expected = {"total": sum(range(STEPS)), "progress": STEPS}
        stuck = [
            http("GET", f"{survivor.admin}/invocations/{inv_id}")[1]
            for inv_id, result in zip(ids, results, strict=True)
            if result != (200, expected)
        ]
        if stuck:
            print("unfinished:", *_diagnose(survivor, stuck), sep="\n")
            for orch in (victim_pause, survivor):
                try:
                    print(f"cluster seen by {orch.admin}:", cluster_view(orch))
                except OSError as exc:
                    print(f"{orch.admin} does not answer: {exc}")
            for i, orch in enumerate(orchs):
                print(f"--- o{i} log (tail) ---\n{orch.output()[-3000:]}")
            keep = Path("/tmp") / f"scaleout-failure-{int(time.time())}"
            shutil.copytree(tmp_path, keep, ignore_dangling_symlinks=True)
            print(f"logs kept in {keep}")
        assert not stuck, f"{len(stuck)} invocations did not finish"

        after = {lease["partition"]: lease for lease in cluster_view(survivor)["leases"]}
        moved = [p for p in after if after[p]["epoch"] > before[p]["epoch"]]
        assert moved, (before, after)
        assert all(after[p]["owner"] in ("o0", "o2") for p in after), after

        # Each journaled step's committed execution is its last one; nothing ran more than
        # once per disruption that could have hit it (the pause and the kill).
        check_ledger(survivor.admin, ids, ledger, STEPS)

        _check_epochs(cluster.aws)

        # The table's invariants hold (read beside the two orchestrators still running).
        print(check_store(cluster.store, "--expect-terminal", env=cluster.aws))


def _check_epochs(env: dict[str, str]) -> None:
    """Along each journal, the epoch every entry was written under never goes down: a former
    leader could not append after its successor did."""
    # (journal, partition that fenced the write) -> [(entry index, epoch)]
    journals: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
    for pk, item in journal_items_by_pk(env, TABLE):
        for index, entry in journal_items([item]):
            if "ep" in entry:
                journals[(pk, entry["fp"]["N"])].append((index, int(entry["ep"]["N"])))
    assert len(journals) >= N, "journal entries do not carry their epochs"
    stamped = sum(len(entries) for entries in journals.values())
    for where, entries in journals.items():
        epochs = [epoch for _, epoch in sorted(entries)]
        assert epochs == sorted(epochs), (where, sorted(entries))
    print(f"{stamped} journal entries in {len(journals)} journals checked for stale epochs")


def _diagnose(orch: Orchestrator, stuck: list[Any]) -> list[dict[str, Any]]:
    """What each unfinished invocation waits on, and what became of it."""
    out = []
    for inv in stuck:
        info = {k: inv.get(k) for k in ("id", "status", "journal_length", "waiting_on")}
        for index in inv.get("waiting_on") or []:
            entry = inv["journal"][index]
            info[f"entry {index}"] = {k: entry.get(k) for k in ("kind", "id", "completion")}
            if entry.get("kind") == "call":
                _, callee, _ = http("GET", f"{orch.admin}/invocations/{entry['id']}")
                info["callee"] = {
                    k: callee.get(k) for k in ("status", "result", "attempt", "caller_id", "id")
                }
        out.append(info)
    return out
