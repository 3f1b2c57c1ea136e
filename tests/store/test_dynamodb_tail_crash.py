"""The orchestrator dies (``RITORNELLO_CRASH_AT``, exit 137: nothing flushed, no lease
released) at a commit around the one that moves a journal tail out into a chunk, on a DynamoDB
table (moto's server over HTTP on loopback), while ten-step handlers run; another orchestrator
takes the partitions over (after the lease lapses) and finishes them.

What must hold (docs/dynamodb.md, "The journal tail"): every invocation finishes once with its
ten steps journaled in order, each index once (no entry lost, none in two places); each
journaled step's execution is its last; chunks were written; ``ritornello check`` finds the
table clean. By default one crash point runs (``make test``); ``RITORNELLO_TAIL_CRASHES=all``
(``make tail-crash``) runs them all.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from pathlib import Path

import pytest

from ritornello.store._dynamo_tail import journal_items
from tests.cluster import FAST_TAKEOVER, check_ledger, dynamo_cluster, journal_items_by_pk
from tests.procs import check_store, wait_until

from .test_dynamodb_takeover import HERE, _finish, _submit

TABLE = "ritornello-tail-crash"
#: (site, n): the n-th commit of the process; two ten-step invocations make 22 commits, and
#: each one's tail moves out at about its seventh answer (commits 13 to 17)
CRASHES = [("after-commit", 15), ("before-commit", 14), ("after-commit", 17), ("after-commit", 9)]


@pytest.mark.timeout(300)
def test_a_crash_around_a_flush_loses_and_repeats_nothing(tmp_path: Path) -> None:
    crashes = CRASHES if os.environ.get("RITORNELLO_TAIL_CRASHES") == "all" else CRASHES[:1]
    ledger = tmp_path / "ledger.txt"
    with dynamo_cluster(tmp_path, TABLE, 2, HERE, "stepsapp", ledger) as cluster:
        ids: list[str] = []
        for k, (site, n) in enumerate(crashes):
            crash_at = f"{site}:{n}"
            doomed = cluster.orchestrator(
                f"crash-{k}", RITORNELLO_CRASH_AT=crash_at, **FAST_TAKEOVER
            )
            if k == 0:
                cluster.deploy(doomed)
            mine = _submit(doomed.ingress, 2)
            proc = doomed.proc
            assert proc is not None
            wait_until(lambda p=proc: p.poll() is not None, 60, f"the crash at {site}")
            assert proc.returncode == 137, proc.returncode
            survivor = cluster.orchestrator(f"after-{k}", **FAST_TAKEOVER)
            try:
                _finish(survivor.ingress, mine)
                ids += mine
                check_ledger(survivor.admin, ids, ledger)
            finally:
                survivor.terminate()
            time.sleep(0.1)
        _check_layout(cluster.aws, ids)
        print(check_store(cluster.store, "--expect-terminal", env=cluster.aws))


def _check_layout(aws: dict[str, str], ids: list[str]) -> None:
    """Every journal holds each of its indices once, across entry items, chunks and tails,
    and chunks were written."""
    indices: dict[str, list[int]] = defaultdict(list)
    chunks = 0
    for pk, item in journal_items_by_pk(aws, TABLE):
        chunks += "es" in item
        indices[pk] += [index for index, _ in journal_items([item])]
    assert chunks, "no tail moved out"
    assert len(indices) == len(ids)
    for pk, found in indices.items():
        assert sorted(found) == list(range(len(found))), (pk, sorted(found))
