"""Plain steps (fenced on their invocation item, docs/dynamodb.md "A commit") across a change
of leader, with real processes: two ``ritornello serve`` on one DynamoDB table (moto's server
over HTTP on loopback) and ten-step handlers whose steps are in flight throughout.

The leader is paused (SIGSTOP) past its lease, so the other takes its partitions over, seals
them and drives the invocations, then resumes as a zombie with steps in flight; later, with
new invocations running, a leader is killed with kill -9. Every invocation finishes once with
its ten steps journaled in order, each journaled step's execution is its last one (nothing
committed was run again), no step ran more than once per disruption, and along every journal
the epochs the entries were written under never go down (no step of a deposed leader landed
after its successor's).
"""

from __future__ import annotations

from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ritornello.store._dynamo_tail import journal_items
from tests.cluster import FAST_TAKEOVER, check_ledger, dynamo_cluster, journal_items_by_pk
from tests.procs import check_store, cluster_view, http, wait_until

HERE = Path(__file__).resolve().parent
TABLE = "ritornello-steps"
N = 8
STEP_MS = 150


def _submit(ingress: str, count: int) -> list[str]:
    ids = []
    for _ in range(count):
        status, body, _ = http("POST", f"{ingress}/restate/send/Steps/ten", STEP_MS)
        assert status == 202, body
        ids.append(body["invocationId"])
    return ids


@pytest.mark.timeout(180)
def test_plain_steps_across_a_pause_and_a_kill_9(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.txt"
    with dynamo_cluster(tmp_path, TABLE, 2, HERE, "stepsapp", ledger) as cluster:
        o0, o1 = cluster.start(["o0", "o1"], **FAST_TAKEOVER)
        cluster.deploy(o0)
        wait_until(
            lambda: all(len(cluster_view(o)["leading"]) == 1 for o in (o0, o1)),
            20,
            "one partition each",
        )
        ids = _submit(o0.ingress, N // 2) + _submit(o1.ingress, N // 2)
        _in_flight(ledger, ids)  # steps in flight on both
        cluster.pause(o0)
        wait_until(lambda: len(cluster_view(o1)["leading"]) == 2, 12, "o1 leads both")
        cluster.resume(o0)  # a zombie with steps in flight
        wait_until(
            lambda: all(len(cluster_view(o)["leading"]) == 1 for o in (o0, o1)),
            20,
            "one partition each again",
        )
        ids += _submit(o1.ingress, N)
        _in_flight(ledger, ids[N:])
        o0.kill9()  # mid-handler: its partition's steps are in flight
        _finish(o1.ingress, ids)
        check_ledger(o1.admin, ids, ledger)
        _check_epochs(cluster.aws)
        print(check_store(cluster.store, "--expect-terminal", env=cluster.aws))


def _in_flight(ledger: Path, ids: list[str]) -> None:
    """Wait until every one of ``ids`` has run its second step: its first is journaled and the
    rest are to come (a fixed sleep was too short on a loaded machine, and the disruption then
    found no journal mid-way)."""

    def second_steps() -> bool:
        text = ledger.read_text() if ledger.exists() else ""
        started = {line.split()[0] for line in text.splitlines() if " step-1 " in line}
        return started.issuperset(ids)

    wait_until(second_steps, 60, "every invocation at its second step")


def _finish(ingress: str, ids: list[str]) -> None:
    def attach(inv_id: str) -> tuple[int, object]:
        status, body, _ = http("GET", f"{ingress}/restate/attach/{inv_id}", timeout=90)
        return status, body

    with ThreadPoolExecutor(len(ids)) as pool:
        results = list(pool.map(attach, ids))
    assert results == [(200, 10)] * len(ids), results


def _check_epochs(aws: dict[str, str]) -> None:
    """Along each journal, the epoch of the fence each entry was written under never goes
    down."""
    journals: dict[str, list[tuple[int, int]]] = defaultdict(list)
    layouts: dict[str, int] = defaultdict(int)  # where the entries lived
    for pk, item in journal_items_by_pk(aws, TABLE):
        layouts["tail" if "tl" in item else "chunk" if "es" in item else "other"] += 1
        for index, entry in journal_items([item]):
            if "ep" in entry:
                journals[pk].append((index, int(entry["ep"]["N"])))
    assert len(journals) == 2 * N
    # the store ``ritornello check`` found clean held chunks (docs/dynamodb.md, "The journal
    # tail": a finish with its result past the item's limit moves the tail out)
    assert layouts["chunk"], dict(layouts)
    moved = 0
    for pk, entries in journals.items():
        epochs = [epoch for _, epoch in sorted(entries)]
        assert epochs == sorted(epochs), (pk, sorted(entries))
        moved += epochs[0] != epochs[-1]
    assert moved, "no journal changed hands mid-way"
