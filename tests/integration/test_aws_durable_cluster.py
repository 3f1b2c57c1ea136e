"""AWS Lambda durable functions on two orchestrators sharing one DynamoDB table (moto's server
over HTTP on loopback), the function pointed at the orchestrator that does NOT drive its
executions (docs/aws-durable.md, "Several orchestrators"): checkpoints and state reads are
forwarded once to the leader of the execution's partition, the token checked there.

A SQLite file is locked by one orchestrator (docs/orchestrator.md), so a cluster is DynamoDB.
The table has one partition: orchestrator A, started first, leads it; B leads nothing; the
function's ``AWS_ENDPOINT_URL_LAMBDA`` is B's ingress, so every checkpoint goes through B.

Two tests start clusters of their own and run only with ``RITORNELLO_DURABLE_CLUSTER=all``
(``make durable-cluster``, about 40 s for the file): a round-robin balancer in front of both,
and a cluster with no shared secret; ``make test`` runs the rest (about 25 s).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import re
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

import pytest

from ritornello.orchestrator.core import partition_of
from ritornello.orchestrator.ingress._forward import FORWARDED, forwarding_key, genuine, sign
from tests.integration._durable import execution_arn, register
from tests.integration._lambda_pair import journal_of, lambda_client, ledger_counts, wait_for
from tests.procs import (
    LambdaEmulatorProcess,
    Orchestrator,
    aws_env,
    cluster_view,
    http,
    moto_process,
    store_init,
    uvicorn_thread,
    wait_until,
)

#: the tests that start clusters of their own beyond the kill -9 one (``make durable-cluster``)
every = pytest.mark.skipif(
    os.environ.get("RITORNELLO_DURABLE_CLUSTER") != "all",
    reason="RITORNELLO_DURABLE_CLUSTER=all (make durable-cluster) runs it",
)
SECRET = "cluster-secret-for-tests"


class Cluster:
    """A and B on one table (A leads its one partition), the function pointed at B."""

    def __init__(
        self, tmp: Path, moto: dict[str, str], table: str, partitions: int = 1, **env: str
    ) -> None:
        self.tmp = tmp
        self.ledger = tmp / "ledger.txt"
        self.partitions = partitions
        self.store = f"dynamodb://{table}?region=us-east-1&partitions={partitions}"
        store_init(self.store, moto)
        common = {
            **moto,
            "RITORNELLO_LEASE_S": "1",
            "RITORNELLO_SIGNING_SECRET": SECRET,
            "RITORNELLO_INBOX_INTERVAL_S": "0.05",
            **env,
        }
        self.orchs: dict[str, Orchestrator] = {}
        for name in ("a", "b"):
            home = tmp / name
            home.mkdir()
            self.orchs[name] = Orchestrator(home, self.store, RITORNELLO_NODE_ID=name, **common)
        self.emulator = LambdaEmulatorProcess(
            tmp,
            "tests/apps/durable_app.py",
            **aws_env(self.b.ingress_port, tmp),
            DURABLE_LEDGER=str(self.ledger),
        )
        for orch in self.orchs.values():
            # the orchestrators invoke the emulator; their store is moto's
            orch.env.update({**aws_env(self.emulator.port, tmp), **moto})

    @property
    def a(self) -> Orchestrator:
        return self.orchs["a"]

    @property
    def b(self) -> Orchestrator:
        return self.orchs["b"]

    def start(self) -> Cluster:
        self.emulator.start()
        self.a.start()
        every = list(range(self.partitions))
        wait_until(lambda: cluster_view(self.a)["leading"] == every, 20, "A leads every partition")
        self.b.start()
        half = self.partitions // 2  # B's share, handed over by A (none of one partition)
        wait_until(lambda: len(cluster_view(self.b)["leading"]) == half, 20, "B leads its share")
        register(self.a)
        return self

    def send(self, event: Any, via: Orchestrator | None = None) -> str:
        orch = via or self.b
        status, body, _ = http("POST", f"{orch.ingress}/restate/send/Orders/run", event)
        assert status == 202, (body, orch.output())
        return str(body["invocationId"])

    def attach(self, inv_id: str, via: Orchestrator | None = None) -> tuple[int, Any]:
        orch = via or self.b
        status, body, _ = http("GET", f"{orch.ingress}/restate/attach/{inv_id}")
        return status, body

    def ran(self, inv_id: str) -> Counter[str]:
        return ledger_counts(self.ledger, inv_id)

    def journal(self, inv_id: str) -> list[dict[str, Any]]:
        return journal_of(self.a.admin, inv_id)

    def stop(self) -> None:
        for orch in self.orchs.values():
            orch.kill9()
        self.emulator.terminate()


def runs(cluster: Cluster, inv_id: str) -> int:
    """How many Lambda invocations (runs) the execution took: one marker entry each."""
    names = [e.get("name") or "" for e in cluster.journal(inv_id)]
    return sum(1 for n in names if n.startswith("INVOCATION COMPLETED"))


def forwarding(orch: Orchestrator) -> Counter[str]:
    """What ``orch``'s forwarder did so far (its ``durable_forward_*`` engine counters)."""
    status, text, _ = http("GET", f"{orch.admin}/metrics")
    assert status == 200, text
    found = re.findall(
        r'ritornello_engine_events_total\{event="durable_forward_(\w+)"\} (\S+)', text
    )
    return Counter({name: int(float(n)) for name, n in found})


def checkpoint_url(orch: Orchestrator, inv_id: str) -> str:
    arn = execution_arn(inv_id).replace("/", "%2F").replace(":", "%3A")
    return f"{orch.ingress}/2025-12-01/durable-executions/{arn}/checkpoint"


def post_raw(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any, Any]:
    """POST ``body`` as it is: (status, the answer's headers, its JSON body)."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.headers, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, json.loads(exc.read() or b"null")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("durable-cluster")
    with moto_process(tmp) as moto:
        c = Cluster(tmp, moto, "durable-cluster", RITORNELLO_ATTEMPT_TIMEOUT_S="2").start()
        try:
            yield c
        finally:
            c.stop()


@pytest.mark.timeout(60)
def test_a_multi_step_execution_through_the_other_orchestrator_takes_one_invoke(
    cluster: Cluster,
) -> None:
    """Every checkpoint reaches B, which leads nothing, and is forwarded to A: the execution
    finishes in one Lambda invocation, each step run and journaled once (a refused checkpoint
    would have ended the run and re-driven it)."""
    before_a, before_b = forwarding(cluster.a), forwarding(cluster.b)
    inv = cluster.send({"mode": "steps", "numbers": list(range(1, 11))})
    assert cluster.attach(inv) == (200, {"total": 55}), cluster.a.output()
    # B forwarded every checkpoint (two a step, at least), A served each; nothing refused
    sent, served = forwarding(cluster.b) - before_b, forwarding(cluster.a) - before_a
    assert sent["forwarded"] >= 10 and sent["forwarded"] == served["served"], (sent, served)
    assert set(sent) == {"forwarded"} and set(served) == {"served"}, (sent, served)
    assert cluster.ran(inv) == {f"add-{n}": 1 for n in range(1, 11)}
    assert runs(cluster, inv) == 1, cluster.journal(inv)
    names = [e.get("name") for e in cluster.journal(inv)]
    assert all(names.count(f"STEP SUCCEED add-{n}") == 1 for n in range(1, 11)), names
    assert "Invalid checkpoint token" not in cluster.emulator.output()
    # the result through A, and through B's durable API (served from the store)
    assert cluster.attach(inv, via=cluster.a) == (200, {"total": 55})
    client = lambda_client(cluster.b.ingress, attempts=1)
    described = client.get_durable_execution(DurableExecutionArn=execution_arn(inv))
    assert described["Status"] == "SUCCEEDED" and json.loads(described["Result"]) == {"total": 55}


@pytest.mark.timeout(60)
def test_a_wait_and_a_callback_completed_through_the_other_orchestrator(cluster: Cluster) -> None:
    """A wait (the run ends, A's timer re-drives it) and a callback completed through B's
    durable API (a store write with an inbox message for A): both finish."""
    inv = cluster.send({"mode": "wait", "seconds": 1})
    assert cluster.attach(inv) == (200, ["before", "after"]), cluster.a.output()
    assert cluster.ran(inv) == {"before": 1, "after": 1}
    publish_to = cluster.tmp / "callback-id"
    inv = cluster.send({"mode": "callback", "publish_to": str(publish_to)})
    callback_id = wait_for(publish_to)
    client = lambda_client(cluster.b.ingress, attempts=1)
    client.send_durable_execution_callback_success(CallbackId=callback_id, Result=b"yes")
    assert cluster.attach(inv) == (200, {"approved": "yes"}), cluster.a.output()
    assert cluster.ran(inv) == {"publish": 1}


@pytest.mark.timeout(60)
def test_a_zombie_token_forwarded_to_the_owner_is_refused(cluster: Cluster) -> None:
    """The first run outlives its attempt (2 s): A starts a new run; the zombie's checkpoint,
    forwarded by B, is refused by A (the token check stays with the owner) and the answer
    reaches the zombie unchanged; the step's result is journaled once, from the new run."""
    marker = cluster.tmp / "zombie-marker"
    inv = cluster.send({"mode": "zombie", "marker": str(marker), "sleep_s": 2.6})
    assert cluster.attach(inv) == (200, "slow"), cluster.a.output()
    wait_until(
        lambda: "Invalid checkpoint token" in cluster.emulator.output(),
        10,
        "the zombie's checkpoint refused",
    )
    assert cluster.ran(inv) == {"first": 1, "slow": 2}
    names = [e.get("name") for e in cluster.journal(inv)]
    assert names.count("STEP SUCCEED slow") == 1 and names.count("STEP SUCCEED first") == 1


@pytest.mark.timeout(60)
def test_a_forged_forwarding_header_is_refused_and_a_forwarded_request_never_hops_again(
    cluster: Cluster,
) -> None:
    inv = cluster.send({"mode": "steps", "numbers": [1]})
    assert cluster.attach(inv) == (200, {"total": 1})
    body = json.dumps({"CheckpointToken": f"{inv}.1.00.00", "Updates": []}).encode()
    plain = {"content-type": "application/json"}
    # no header: B forwards to A, whose token check refuses the bogus token (400, unchanged)
    for orch in (cluster.a, cluster.b):
        status, headers, answer = post_raw(checkpoint_url(orch, inv), body, plain)
        assert status == 400 and "Invalid checkpoint token" in answer["message"], answer
        assert headers["x-amzn-ErrorType"] == "InvalidParameterValueException", headers
    # GetDurableExecutionState (a GET with its token in the query) is forwarded the same way
    before = forwarding(cluster.b)["forwarded"]
    client = lambda_client(cluster.b.ingress, attempts=1)
    arn = execution_arn(inv)
    with pytest.raises(client.exceptions.InvalidParameterValueException) as err:
        client.get_durable_execution_state(DurableExecutionArn=arn, CheckpointToken=f"{inv}.1.0.0")
    assert "Invalid checkpoint token" in str(err.value)
    assert forwarding(cluster.b)["forwarded"] == before + 1
    # forged: a made-up MAC, a genuine MAC for another body, a MAC under another secret
    key = forwarding_key(SECRET, "")
    assert key is not None
    target = checkpoint_url(cluster.b, inv).split(str(cluster.b.ingress_port), 1)[1]
    other_key = hmac.new(b"guess", b"ritornello forwarding v1", hashlib.sha256).digest()
    for forged in (
        "a;" + "0" * 64,
        sign(key, "a", "POST", target.encode(), b"{}"),
        sign(other_key, "a", "POST", target.encode(), body),
        "a",
        "",
    ):
        for orch in (cluster.a, cluster.b):
            status, headers, answer = post_raw(
                checkpoint_url(orch, inv), body, {**plain, FORWARDED: forged}
            )
            assert status == 403, (forged, status, answer)
            assert headers["x-amzn-ErrorType"] == "AccessDeniedException", headers
    # genuine (the test holds the cluster's secret): A serves it, B does not forward it again
    genuine = {**plain, FORWARDED: sign(key, "b", "POST", target.encode(), body)}
    status, _, answer = post_raw(checkpoint_url(cluster.a, inv), body, genuine)
    assert status == 400 and "Invalid checkpoint token" in answer["message"], answer
    status, headers, answer = post_raw(checkpoint_url(cluster.b, inv), body, genuine)
    assert status == 503 and "does not lead" in answer["message"], answer
    assert headers["x-amzn-ErrorType"] == "ServiceException", headers


@pytest.mark.timeout(120)
def test_kill9_of_the_owner_mid_execution(tmp_path: Path) -> None:
    """A (the leader) is killed -9 while the function, pointed at B, is inside a slow step:
    B's forwards fail (503, retried by botocore), B takes the partition over and re-drives the
    attempt; the zombie's late checkpoint, now served by B, is refused; the execution finishes
    with the right result, ``first`` run once, ``slow`` at most twice (at-least-once)."""
    with moto_process(tmp_path) as moto:
        cluster = Cluster(tmp_path, moto, "durable-kill9").start()
        try:
            marker = tmp_path / "kill9-marker"
            inv = cluster.send({"mode": "zombie", "marker": str(marker), "sleep_s": 6.0})
            wait_until(marker.exists, 20, "the slow step started")

            def started() -> bool:
                _, detail, _ = http("GET", f"{cluster.b.admin}/invocations/{inv}")
                return "STEP START slow" in [e.get("name") for e in detail["journal"]]

            # its START committed: the zombie sleeps with nothing left to checkpoint
            wait_until(started, 10, "the slow step's START journaled")
            cluster.a.kill9()
            # until B claims the partition, a checkpoint to B is a retryable 503
            client = lambda_client(cluster.b.ingress, attempts=1)
            arn = execution_arn(inv)
            with pytest.raises(client.exceptions.ServiceException) as err:
                client.checkpoint_durable_execution(
                    DurableExecutionArn=arn, CheckpointToken=f"{inv}.1.0.0", Updates=[]
                )
            assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
            wait_until(lambda: cluster_view(cluster.b)["leading"] == [0], 20, "B leads")
            assert cluster.attach(inv) == (200, "slow"), cluster.b.output()
            wait_until(
                lambda: "Invalid checkpoint token" in cluster.emulator.output(),
                15,
                "the zombie's checkpoint refused",
            )
            ran = cluster.ran(inv)
            assert ran["first"] == 1 and ran["slow"] == 2, ran
            names = [e.get("name") for e in journal_of(cluster.b.admin, inv)]
            assert names.count("STEP SUCCEED first") == 1, names
            assert names.count("STEP SUCCEED slow") == 1, names
        finally:
            cluster.stop()


class RoundRobin:
    """A load balancer in front of the orchestrators: each request to the next one in turn
    (an ASGI app relaying over ``http.client``), counting what it relayed where."""

    def __init__(self, backends: list[Orchestrator]) -> None:
        self.backends = backends
        self.turn = 0
        self.relayed: Counter[int] = Counter()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        port = self.backends[self.turn % len(self.backends)].ingress_port
        self.turn += 1
        self.relayed[port] += 1
        status, headers, answer = await asyncio.to_thread(self._relay, port, scope, body)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": answer})

    @staticmethod
    def _relay(port: int, scope: Any, body: bytes) -> tuple[int, list[Any], bytes]:
        target = scope["raw_path"] + (
            b"?" + scope["query_string"] if scope["query_string"] else b""
        )
        conn = HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            sent = {
                k.decode("latin-1"): v.decode("latin-1")
                for k, v in scope["headers"]
                if k not in (b"host", b"content-length", b"connection")
            }
            conn.request(scope["method"], target.decode("latin-1"), body, sent)
            answer = conn.getresponse()
            data = answer.read()
            kept = [
                (k.lower().encode("latin-1"), v.encode("latin-1"))
                for k, v in answer.getheaders()
                if k.lower() in ("content-type", "x-amzn-errortype")
            ]
            return answer.status, kept, data
        finally:
            conn.close()


@every
@pytest.mark.timeout(90)
def test_executions_through_a_load_balancer_alternating_between_both(tmp_path: Path) -> None:
    """Four partitions, two each; the function reaches the orchestrators through a round-robin
    balancer, so about half of its checkpoints land on the leader and half are forwarded:
    concurrent executions of ten steps each (at least three led by each orchestrator) finish,
    each in one Lambda invocation, each step run once."""
    with moto_process(tmp_path) as moto:
        cluster = Cluster(tmp_path, moto, "durable-balanced", partitions=4)
        balancer = RoundRobin([cluster.a, cluster.b])
        with uvicorn_thread(balancer) as url:
            cluster.emulator.env["AWS_ENDPOINT_URL_LAMBDA"] = url
            cluster.start()
            try:
                numbers = list(range(1, 11))
                leads = {p: o for o in (cluster.a, cluster.b) for p in cluster_view(o)["leading"]}
                invs: list[str] = []
                driven: Counter[int] = Counter()  # executions per leader (ingress port)
                while min(driven[o.ingress_port] for o in (cluster.a, cluster.b)) < 3:
                    assert len(invs) < 40, driven
                    inv = cluster.send({"mode": "steps", "numbers": numbers})
                    invs.append(inv)
                    driven[leads[partition_of("Orders", None, inv, 4)].ingress_port] += 1
                with ThreadPoolExecutor(8) as pool:
                    answers = list(pool.map(cluster.attach, invs))
                assert answers == [(200, {"total": 55})] * len(invs), cluster.a.output()
                for inv in invs:
                    assert cluster.ran(inv) == {f"add-{n}": 1 for n in numbers}, inv
                    assert runs(cluster, inv) == 1, cluster.journal(inv)
                assert "Invalid checkpoint token" not in cluster.emulator.output()
                # the balancer sent checkpoints to both
                assert min(balancer.relayed.values()) >= 20, balancer.relayed
                # each forwarded some of the checkpoints it got to the other, and served the
                # other's forwards
                a, b = forwarding(cluster.a), forwarding(cluster.b)
                assert a["forwarded"] >= 5 and b["forwarded"] >= 5, (a, b)
                assert a["served"] == b["forwarded"] and b["served"] == a["forwarded"], (a, b)
            finally:
                cluster.stop()


@every
@pytest.mark.timeout(60)
def test_without_a_shared_secret_the_header_is_a_hop_marker_only(tmp_path: Path) -> None:
    """No ``signing_secret`` nor ``ingress_token``: forwarding still works (unsigned), and a
    client's header only keeps its own request from being forwarded (503 at the non-leader,
    served as any request at the leader: the token check refuses a bogus token)."""
    with moto_process(tmp_path) as moto:
        cluster = Cluster(tmp_path, moto, "durable-open", RITORNELLO_SIGNING_SECRET="").start()
        try:
            inv = cluster.send({"mode": "steps", "numbers": [1, 2, 3]})
            assert cluster.attach(inv) == (200, {"total": 6}), cluster.a.output()
            assert runs(cluster, inv) == 1 and cluster.ran(inv) == {
                "add-1": 1,
                "add-2": 1,
                "add-3": 1,
            }
            assert forwarding(cluster.b)["forwarded"] >= 3
            body = json.dumps({"CheckpointToken": f"{inv}.1.00.00", "Updates": []}).encode()
            marked = {"content-type": "application/json", FORWARDED: "a;"}
            status, _, answer = post_raw(checkpoint_url(cluster.b, inv), body, marked)
            assert status == 503 and "does not lead" in answer["message"], answer
            status, _, answer = post_raw(checkpoint_url(cluster.a, inv), body, marked)
            assert status == 400 and "Invalid checkpoint token" in answer["message"], answer
        finally:
            cluster.stop()


def test_the_forwarding_header_signature() -> None:
    """The MAC binds the method, the path and query, the sender and the body; the key is
    derived from the cluster's secret (never the secret itself); without a secret the header
    is a hop marker only."""
    key = forwarding_key("s", "")
    assert key is not None and key != b"s" and key == forwarding_key("", "s")
    assert forwarding_key("s", "t") == key and forwarding_key("", "") is None

    mark = sign(key, "a", "POST", b"/p?q=1", b"{}")
    assert genuine(key, mark, "POST", b"/p?q=1", b"{}")
    for method, target, body in [
        ("GET", b"/p?q=1", b"{}"),
        ("POST", b"/p?q=2", b"{}"),
        ("POST", b"/p?q=1", b"{ }"),
    ]:
        assert not genuine(key, mark, method, target, body)
    assert not genuine(key, mark.replace("a;", "b;"), "POST", b"/p?q=1", b"{}")
    assert not genuine(forwarding_key("other", ""), mark, "POST", b"/p?q=1", b"{}")
    assert genuine(None, "anything", "POST", b"/", b"")
