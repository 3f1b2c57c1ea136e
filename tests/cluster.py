"""Orchestrator clusters on one DynamoDB table, as real processes on loopback, and what the
takeover tests check of them (tests/store/test_dynamodb_takeover.py, test_dynamodb_tail_crash.py,
tests/integration/test_scaleout.py, the lease soak of tests/integration/_soak.py).

``dynamo_cluster`` starts moto's server (its own process), a table on it made by ``ritornello
store init`` and a handler endpoint under uvicorn; the test starts its orchestrators through it
(or beside it) and may pause them. On the way out every orchestrator it started is resumed if
paused and killed, then the endpoint is stopped, then moto: each by the PID it was started with.

``check_ledger`` and ``journal_items_by_pk`` read what a run left behind: the ledger the test
apps write a line to per execution of a step (``invocation step token``; tests/apps/_ledger.py,
tests/store/stepsapp.py) beside the journals, and the table's journal items.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.procs import (
    Endpoint,
    Orchestrator,
    aws_client,
    http,
    moto_process,
    orchestrators,
    store_init,
)

#: Settings of the takeover tests' orchestrators: a 2 s lease (a silent leader's partitions
#: move within seconds) and a fast inbox poll.
FAST_TAKEOVER = {"RITORNELLO_LEASE_S": "2", "RITORNELLO_INBOX_INTERVAL_S": "0.05"}


@dataclass
class Cluster:
    """moto's environment (``aws``), the store URL of the table, the endpoint, and the
    orchestrators started through it (killed on exit; those in ``paused`` resumed first)."""

    tmp: Path
    aws: dict[str, str]
    store: str
    endpoint: Endpoint
    started: list[Orchestrator] = field(default_factory=list)
    paused: list[Orchestrator] = field(default_factory=list)

    def start(self, names: list[str], **env: str) -> list[Orchestrator]:
        """One ``ritornello serve`` per name on the table (``orchestrators``: node id NAME, in
        ``tmp/NAME``), with ``env`` besides moto's."""
        orchs = orchestrators(self.tmp, self.store, self.aws, names, **env)
        self.started += orchs
        return orchs

    def orchestrator(self, home: str, **env: str) -> Orchestrator:
        """One ``ritornello serve`` on the table in ``tmp/home`` (made here), with ``env``
        besides moto's and its default node id; killed on exit if still running."""
        (self.tmp / home).mkdir()
        orch = Orchestrator(self.tmp / home, store=self.store, **self.aws, **env)
        self.started.append(orch)
        return orch.start()

    def deploy(self, orch: Orchestrator) -> None:
        """Register the endpoint through ``orch``'s admin API (201)."""
        status, body, _ = http("POST", f"{orch.admin}/deployments", {"uri": self.endpoint.uri})
        assert status == 201, body

    def pause(self, orch: Orchestrator) -> None:
        """SIGSTOP ``orch``: a leader that renews no lease, its work in flight."""
        assert orch.proc is not None
        os.kill(orch.proc.pid, signal.SIGSTOP)
        self.paused.append(orch)

    def resume(self, orch: Orchestrator) -> None:
        """SIGCONT ``orch``: a zombie, until it finds its leases gone."""
        assert orch.proc is not None
        os.kill(orch.proc.pid, signal.SIGCONT)
        self.paused.remove(orch)

    def stop(self) -> None:
        """Resume the paused orchestrators still running, kill every one started, stop the
        endpoint."""
        for orch in self.paused:
            if orch.proc is not None and orch.proc.poll() is None:
                os.kill(orch.proc.pid, signal.SIGCONT)
        self.paused.clear()
        for orch in self.started:
            orch.kill9()
        self.endpoint.terminate()


@contextlib.contextmanager
def dynamo_cluster(
    tmp: Path, table: str, partitions: int, app_dir: Path, module: str, ledger: Path | None = None
) -> Iterator[Cluster]:
    """moto's server, ``table`` (``partitions`` partitions, us-east-1) initialised on it, and
    ``app_dir/module.py``'s ``app`` served under uvicorn (writing its ledger to ``ledger``,
    if given: ``RITORNELLO_TEST_LEDGER``), all in ``tmp``; stopped on exit (``Cluster.stop``,
    then moto)."""
    env = {} if ledger is None else {"RITORNELLO_TEST_LEDGER": str(ledger)}
    with moto_process(tmp) as aws:
        store = f"dynamodb://{table}?region=us-east-1&partitions={partitions}"
        store_init(store, aws)
        cluster = Cluster(tmp, aws, store, Endpoint(tmp, app_dir, module, **env))
        try:
            cluster.endpoint.start()
            yield cluster
        finally:
            cluster.stop()


def check_ledger(admin: str, ids: list[str], ledger: Path, steps: int = 10) -> None:
    """Each of ``ids`` journaled ``steps`` run entries in order (``step-0``, ``step-1``, ...);
    each step's journaled execution (its token) is its last one in the ledger (nothing
    committed was run again); no step ran more than three times (at most one re-run per
    disruption: the takeover tests make two, a pause and a kill)."""
    runs: dict[tuple[str, str], list[str]] = defaultdict(list)
    for line in ledger.read_text().splitlines():
        inv, step, token = line.split()
        runs[(inv, step)].append(token)
    for inv_id in ids:
        status, body, _ = http("GET", f"{admin}/invocations/{inv_id}")
        assert status == 200, body
        journaled = [e for e in body["journal"] if e["kind"] == "run"]
        assert [e["name"] for e in journaled] == [f"step-{i}" for i in range(steps)]
        for entry in journaled:
            tokens = runs[(inv_id, str(entry["name"]))]
            assert tokens and tokens[-1] == entry["value"], (inv_id, entry, tokens)
            assert len(tokens) <= 3, (inv_id, entry, tokens)


def journal_items_by_pk(aws: dict[str, str], table: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(pk, item)`` of every item of ``table`` under an invocation's key (``i#...``: entry
    items, chunks and the invocation item with its tail), scanned with consistent reads through
    moto's endpoint in ``aws``; ``ritornello.store._dynamo_tail.journal_items`` reads the
    entries out of them."""
    client = aws_client("dynamodb", aws["AWS_ENDPOINT_URL_DYNAMODB"])
    for page in client.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        for item in page["Items"]:
            pk = item["pk"]["S"]
            if pk.startswith("i#"):
                yield pk, item
