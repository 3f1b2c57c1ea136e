"""kill -9 of the orchestrator between a sleep timer's firing and the commit of the attempt it
woke (real processes, a real SQLite file). A woken sleep's completion is committed with that
attempt's answer, not before it: so at the kill nothing of the wake-up is durable — the timer
row is still there and the sleep has no completion — and after a restart the timer fires
again. The invocation then completes once; the step before the sleep never runs again; the
step after it ran twice (its first execution was never committed) and the committed result is
its last execution; neither execution ran before the sleep's wake time."""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from pathlib import Path

import pytest

from tests.procs import ROOT, Endpoint, Orchestrator, http, wait_until

APPS = ROOT / "tests" / "apps"
SLEEP_MS = 1500


def _read(db: Path, query: str, *args: object) -> list[tuple[object, ...]]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as conn:
        return list(conn.execute(query, args))


@pytest.mark.timeout(120)
def test_kill9_between_timer_fire_and_commit(tmp_path: Path) -> None:
    ledger, kill = tmp_path / "ledger.txt", tmp_path / "kill-pid"
    db = tmp_path / "ritornello.db"
    endpoint = Endpoint(
        tmp_path, APPS, "napapp", RITORNELLO_TEST_LEDGER=str(ledger), RITORNELLO_TEST_KILL=str(kill)
    ).start()
    orch: Orchestrator | None = None
    try:
        orch = Orchestrator(tmp_path).start()
        assert orch.proc is not None
        kill.write_text(str(orch.proc.pid))
        status, body, _ = http("POST", f"{orch.admin}/deployments", {"uri": endpoint.uri})
        assert status == 201, body
        status, body, _ = http("POST", f"{orch.ingress}/restate/send/Nap/sleep", SLEEP_MS)
        assert status == 202, body
        inv_id = str(body["invocationId"])
        proc = orch.proc
        wait_until(lambda: proc.poll() is not None, 30, "the step after the sleep kills it")
        assert proc.returncode == -9 and not kill.exists(), orch.output()

        # The wake-up left nothing durable: the timer is still there, the sleep not complete.
        (sleep_index,) = (
            int(str(i))
            for (i, e) in _read(db, "SELECT idx, entry FROM journal WHERE invocation_id=?", inv_id)
            if json.loads(str(e))["kind"] == "sleep"
        )
        timers = _read(db, "SELECT kind, idx FROM timers WHERE invocation_id=?", inv_id)
        assert timers == [("sleep", sleep_index)]
        done = _read(db, "SELECT idx FROM completions WHERE invocation_id=?", inv_id)
        assert (sleep_index,) not in done
        (status_row,) = _read(db, "SELECT status FROM invocations WHERE id=?", inv_id)
        assert status_row == ("suspended",)

        orch = Orchestrator(tmp_path).start()  # same database: the timer fires again
        status, result, _ = http("GET", f"{orch.ingress}/restate/attach/{inv_id}", timeout=60)
        assert status == 200, (result, orch.output())

        executions: dict[str, list[tuple[str, int]]] = defaultdict(list)
        for line in ledger.read_text().splitlines():
            inv, step, token, ms = line.split()
            assert inv == inv_id
            executions[step].append((f"{token} {ms}", int(ms)))
        assert [t for t, _ in executions["before"]] == [result["before"]]  # never re-run
        after = executions["after"]
        assert len(after) == 2 and after[-1][0] == result["after"], after
        (sleep_entry,) = (
            json.loads(str(e))
            for (e,) in _read(
                db, "SELECT entry FROM journal WHERE invocation_id=? AND idx=?", inv_id, sleep_index
            )
        )
        assert all(ms >= sleep_entry["wake_at"] for _, ms in after), (after, sleep_entry)
        assert _read(db, "SELECT kind FROM timers WHERE invocation_id=?", inv_id) == []
        assert _read(
            db,
            "SELECT count(*) FROM completions WHERE invocation_id=? AND idx=?",
            inv_id,
            sleep_index,
        ) == [(1,)]
    finally:
        if orch is not None:
            orch.kill9()
        endpoint.terminate()
