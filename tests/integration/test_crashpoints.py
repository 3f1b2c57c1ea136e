"""The orchestrator dies at each named crash point (``RITORNELLO_CRASH_AT=site:n``, exit 137,
nothing flushed or released) while ten-step invocations with calls, sleeps and object state
run; after a restart every invocation — including one whose request died before its answer
(retried by the client with the same idempotency key) — completes once with the right result,
and no journaled step ran again after its execution was committed.

``mid-batch`` is reached where batches run: in the SQLite writer process by default, which
SIGKILLs the orchestrator as it dies (``crashpoints.KILL_ALSO``), so the orchestrator ends
with -9 rather than its own exit code 137; with ``?writer=thread`` it is reached in the
orchestrator itself (137). Every other site is reached in the orchestrator."""

from __future__ import annotations

import signal
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.procs import (
    ROOT,
    Endpoint,
    Orchestrator,
    alive,
    descendants,
    http,
    sqlite_writers,
    wait_until,
)

APPS = ROOT / "tests" / "apps"
N = 8
STEPS = 10

SITES = [
    ("before-commit", 25, "process"),
    ("after-commit", 25, "process"),
    ("before-ack", 3, "process"),
    ("after-invoke", 12, "process"),
    ("mid-batch", 2, "process"),
    ("mid-batch", 2, "thread"),
    ("after-renewal", 3, "process"),
]


def _send(orch: Orchestrator, i: int) -> str | None:
    """Send invocation i (idempotently); its id, or None if the request died unanswered."""
    try:
        status, body, _ = http(
            "POST",
            f"{orch.ingress}/restate/send/Worker/c{i}/work",
            STEPS,
            headers={"idempotency-key": f"crash-{i}"},
            timeout=10,
        )
    except OSError:
        return None
    assert status == 202, body
    return str(body["invocationId"])


@pytest.mark.timeout(150)
@pytest.mark.parametrize(
    ("site", "n", "writer"),
    SITES,
    ids=[s if s != "mid-batch" else f"{s}-{w}" for s, _, w in SITES],
)
def test_crash_point(site: str, n: int, writer: str, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.txt"
    endpoint = Endpoint(tmp_path, APPS, "crashapp", RITORNELLO_TEST_LEDGER=str(ledger)).start()
    store = f"sqlite:///{tmp_path / 'ritornello.db'}?writer={writer}"
    # the writer process reaches mid-batch and SIGKILLs the orchestrator; anywhere else the
    # orchestrator reaches the site and exits 137 itself
    killed_by_writer = site == "mid-batch" and writer == "process"
    try:
        orch = Orchestrator(
            tmp_path, store, RITORNELLO_CRASH_AT=f"{site}:{n}", RITORNELLO_LEASE_S="1"
        ).start()
    except BaseException:
        endpoint.terminate()  # an orchestrator that did not start leaves no endpoint behind
        raise
    try:
        assert orch.proc is not None
        family = descendants(orch.proc.pid)  # the writer process, unless writer=thread
        assert len(sqlite_writers(orch.proc.pid)) == (writer == "process"), family
        status, body, _ = http("POST", f"{orch.admin}/deployments", {"uri": endpoint.uri})
        assert status == 201, body
        ids: dict[int, str | None] = {}
        for i in range(N):
            ids[i] = _send(orch, i) if orch.proc and orch.proc.poll() is None else None
        assert orch.proc is not None
        deadline = time.monotonic() + 60
        while orch.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        expected = -signal.SIGKILL if killed_by_writer else 137
        assert orch.proc.returncode == expected, f"{site}:{n} never reached\n{orch.output()}"
        assert f"crash point {site}:{n} reached" in orch.output()
        # nothing of the dead orchestrator lives on (a writer left behind could commit later)
        wait_until(lambda: not any(alive(p) for p in family), 10, f"{family} left behind")

        orch = Orchestrator(tmp_path, store).start()  # same database, no crash point
        for i, inv_id in ids.items():
            if inv_id is None:  # died before its answer: the client retries, same key
                ids[i] = _send(orch, i)
        assert all(ids.values()), ids

        def attach(inv_id: str | None) -> tuple[int, object]:
            status, body, _ = http("GET", f"{orch.ingress}/restate/attach/{inv_id}", timeout=90)
            return status, body

        with ThreadPoolExecutor(N) as pool:
            results = list(pool.map(attach, ids.values()))
        expected = {"total": sum(range(STEPS)), "progress": STEPS}
        assert results == [(200, expected)] * N, orch.output()

        executions: dict[tuple[str, str], list[str]] = defaultdict(list)
        for line in ledger.read_text().splitlines():
            inv, step, token = line.split()
            executions[(inv, step)].append(token)
        for inv_id in ids.values():
            status, body, _ = http("GET", f"{orch.admin}/invocations/{inv_id}")
            assert status == 200, body
            runs = [e for e in body["journal"] if e["kind"] == "run"]
            assert [e["name"] for e in runs] == [f"step-{i}" for i in range(STEPS)]
            for entry in runs:
                tokens = executions[(str(inv_id), str(entry["name"]))]
                # the committed execution is the last one, and one crash re-runs at most once
                assert tokens and tokens[-1] == entry["value"], (inv_id, entry, tokens)
                assert len(tokens) <= 2, (inv_id, entry, tokens)
    finally:
        orch.kill9()
        endpoint.terminate()
