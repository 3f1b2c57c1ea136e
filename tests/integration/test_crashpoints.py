"""The orchestrator dies at each named crash point (``RITORNELLO_CRASH_AT=site:n``, exit 137,
nothing flushed or released) while ten-step invocations with calls, sleeps and object state
run; after a restart every invocation — including one whose request died before its answer
(retried by the client with the same idempotency key) — completes once with the right result,
and no journaled step ran again after its execution was committed."""

from __future__ import annotations

import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.procs import ROOT, Endpoint, Orchestrator, http

APPS = ROOT / "tests" / "apps"
N = 8
STEPS = 10

SITES = [
    ("before-commit", 25),
    ("after-commit", 25),
    ("before-ack", 3),
    ("after-invoke", 12),
    ("mid-batch", 2),
    ("after-renewal", 3),
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
@pytest.mark.parametrize(("site", "n"), SITES, ids=[s for s, _ in SITES])
def test_crash_point(site: str, n: int, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.txt"
    endpoint = Endpoint(tmp_path, APPS, "crashapp", RITORNELLO_TEST_LEDGER=str(ledger)).start()
    try:
        orch = Orchestrator(
            tmp_path, RITORNELLO_CRASH_AT=f"{site}:{n}", RITORNELLO_LEASE_S="1"
        ).start()
    except BaseException:
        endpoint.terminate()  # an orchestrator that did not start leaves no endpoint behind
        raise
    try:
        status, body, _ = http("POST", f"{orch.admin}/deployments", {"uri": endpoint.uri})
        assert status == 201, body
        ids: dict[int, str | None] = {}
        for i in range(N):
            ids[i] = _send(orch, i) if orch.proc and orch.proc.poll() is None else None
        assert orch.proc is not None
        deadline = time.monotonic() + 60
        while orch.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert orch.proc.returncode == 137, f"{site}:{n} never reached\n{orch.output()}"
        assert f"crash point {site}:{n} reached" in orch.output()

        orch = Orchestrator(tmp_path).start()  # same database, no crash point
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
