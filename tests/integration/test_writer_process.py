"""The SQLite writer process under real ``ritornello serve`` processes: each test tries to
break one of its guarantees (``src/ritornello/store/_sqlite_process.py``) with real kills.

- SIGKILL of the writer child under load: serve exits by itself, non-zero, naming the writer
  process; nothing is left behind; a restart on the same file completes every acknowledged
  invocation once, with its result, and idempotent re-sends find the same invocation.
- kill -9 of the orchestrator: the writer child goes with it (EOF on its socket, and
  ``PR_SET_PDEATHSIG`` even when it is frozen and reads nothing); a restart finishes the work
  in flight.
- The crash point ``mid-batch`` reached in the writer child kills the orchestrator too
  (``crashpoints.KILL_ALSO``: it dies of SIGKILL, not by its own ``os._exit(137)``).
- SIGTERM or SIGINT to the whole group stops the writer child with the orchestrator, cleanly
  (exit 0, no child left): the child ignores them and waits for its parent's stop.
- ``?writer=thread`` still serves end to end, with no writer child.

Load: client threads send one-way ten-step-style Worker invocations (``/send``) and Adder
calls (``/call``), every request with its own idempotency key. Every side effect is written to
the ledger (tests/apps/_ledger.py), so after the restart a test checks that no step ran again
once its execution was committed.
"""

from __future__ import annotations

import os
import signal
import threading
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.procs import (
    ROOT,
    Endpoint,
    Orchestrator,
    alive,
    descendants,
    http,
    parent_pid,
    sqlite_writers,
    wait_until,
)

APPS = ROOT / "tests" / "apps"
STEPS = 3
CLIENTS = 4
EXPECTED_WORK = {"total": sum(range(STEPS)), "progress": STEPS}


# --- processes ---------------------------------------------------------------------------


def _writer_children(orch: Orchestrator) -> list[tuple[int, str]]:
    assert orch.proc is not None
    return sqlite_writers(orch.proc.pid)


def _writer(orch: Orchestrator) -> tuple[int, str]:
    """The orchestrator's one SQLite writer process (a direct child)."""
    assert orch.proc is not None
    (writer,) = _writer_children(orch)
    assert parent_pid(writer[0]) == orch.proc.pid
    return writer


def _wait_exit(orch: Orchestrator, within_s: float, what: str) -> int:
    assert orch.proc is not None
    proc = orch.proc
    wait_until(lambda: proc.poll() is not None, within_s, f"{what}\n{orch.output()}")
    return proc.returncode


# --- load ----------------------------------------------------------------------------------


@dataclass
class Request:
    """One client request: a one-way Worker run (``send``) or an Adder call (``call``)."""

    kind: str
    key: str
    args: list[int]
    status: int | None = None  # None: no answer (the connection failed)
    body: object = None
    inv_id: str | None = None

    @property
    def acknowledged(self) -> bool:
        """Answered as durable: a 202 with an id (send) or the call's result (call)."""
        return self.status == (202 if self.kind == "send" else 200)

    def path(self) -> str:
        if self.kind == "send":
            return f"/restate/send/Worker/{self.key}/work"
        return "/restate/call/Adder/add"

    def body_sent(self) -> object:
        return STEPS if self.kind == "send" else self.args


def _issue(orch: Orchestrator, req: Request, timeout: float = 30) -> Request:
    """Send ``req`` (with its idempotency key) to ``orch``; a copy with the answer."""
    answer = Request(req.kind, req.key, req.args)
    try:
        status, body, headers = http(
            "POST",
            f"{orch.ingress}{req.path()}",
            req.body_sent(),
            headers={"idempotency-key": req.key},
            timeout=timeout,
        )
    except OSError:
        return answer
    answer.status, answer.body = status, body
    if req.kind == "send" and status == 202:
        answer.inv_id = str(body["invocationId"])  # type: ignore[index]
    else:
        answer.inv_id = headers.get("x-restate-id")
    return answer


@dataclass
class Load:
    """Client threads sending requests until ``stop`` is set or the orchestrator is gone."""

    orch: Orchestrator
    stop: threading.Event = field(default_factory=threading.Event)
    done: list[Request] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> Load:
        for c in range(CLIENTS):
            thread = threading.Thread(target=self._client, args=(c,), daemon=True)
            thread.start()
            self.threads.append(thread)
        return self

    def _client(self, c: int) -> None:
        n = 0
        while not self.stop.is_set():
            kind = "send" if n % 2 == 0 else "call"
            req = Request(kind, f"{kind}-{c}-{n}", [c, n])
            answer = _issue(self.orch, req)
            self.done.append(answer)  # list.append: atomic
            n += 1
            if answer.status is None:  # the orchestrator is gone: stop this client
                return

    def acknowledged(self) -> int:
        return sum(1 for r in self.done if r.acknowledged)

    def join(self) -> list[Request]:
        self.stop.set()
        for thread in self.threads:
            thread.join(60)
            assert not thread.is_alive(), "a client thread hung"
        return list(self.done)


# --- checks after the restart --------------------------------------------------------------


def _ledger(path: Path) -> dict[tuple[str, str], list[str]]:
    executions: dict[tuple[str, str], list[str]] = defaultdict(list)
    if path.exists():
        for line in path.read_text().splitlines():
            inv, step, token = line.split()
            executions[(inv, step)].append(token)
    return executions


def _journal(orch: Orchestrator, inv_id: str) -> list[dict[str, object]]:
    status, body, _ = http("GET", f"{orch.admin}/invocations/{inv_id}")
    assert status == 200, body
    return body["journal"]  # type: ignore[no-any-return, index]


def _check_recovered(orch: Orchestrator, requests: list[Request], ledger: Path) -> None:
    """On the restarted ``orch``: every request re-sent with its idempotency key finds the
    invocation it was acknowledged with (if it was), every invocation completes with its
    result, and no step that was committed ran again (its committed execution is its last)."""
    acknowledged = [r for r in requests if r.acknowledged]
    assert acknowledged, "nothing was acknowledged before the kill: the test proved nothing"
    for r in acknowledged:
        if r.kind == "call":
            assert r.body == sum(r.args), r

    with ThreadPoolExecutor(8) as pool:
        again = list(pool.map(lambda r: _issue(orch, r, timeout=90), requests))
    for before, after in zip(requests, again, strict=True):
        expected_status = 202 if before.kind == "send" else 200
        assert after.status == expected_status, (before, after, orch.output())
        assert after.inv_id, after
        if before.acknowledged:  # the same invocation, not a second one
            assert after.inv_id == before.inv_id, (before, after)
        if before.kind == "send":
            assert after.body == {"invocationId": after.inv_id, "status": "PreviouslyAccepted"} or (
                not before.acknowledged and after.body["status"] == "Accepted"  # type: ignore[index]
            ), (before, after)
        else:
            assert after.body == sum(before.args), (before, after)

    def attach(inv_id: str | None) -> tuple[int, object]:
        status, body, _ = http("GET", f"{orch.ingress}/restate/attach/{inv_id}", timeout=90)
        return status, body

    sends = [r.inv_id for r in again if r.kind == "send"]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(attach, sends))
    assert results == [(200, EXPECTED_WORK)] * len(sends), orch.output()

    executions = _ledger(ledger)
    runs_checked = 0
    for r in again:
        assert r.inv_id is not None
        journal = _journal(orch, r.inv_id)
        runs = [e for e in journal if e["kind"] == "run"]
        if r.kind == "send":
            assert [e["name"] for e in runs] == [f"step-{i}" for i in range(STEPS)], journal
            steps = [(r.inv_id, str(e["name"]), e) for e in runs]
            callees = [str(e["id"]) for e in journal if e["kind"] == "call"]
            assert len(callees) == STEPS, journal
            for callee in callees:
                (run,) = [e for e in _journal(orch, callee) if e["kind"] == "run"]
                steps.append((callee, "add", run))
        else:
            (run,) = runs
            steps = [(r.inv_id, "add", run)]
        for inv_id, step, entry in steps:
            tokens = executions[(inv_id, step)]
            # the journaled execution is the last one: nothing ran again once committed;
            # one crash re-runs an uncommitted step at most once
            assert tokens and tokens[-1] == entry["value"], (inv_id, step, entry, tokens)
            assert len(tokens) <= 2, (inv_id, step, tokens)
            runs_checked += 1
    assert runs_checked >= len(requests)
    reruns = sum(len(t) - 1 for t in executions.values())
    print(
        f"requests={len(requests)} acknowledged={len(acknowledged)} "
        f"unanswered={sum(r.status is None for r in requests)} "
        f"other={sorted({r.status for r in requests if not r.acknowledged} - {None})} "
        f"steps checked={runs_checked} re-run (uncommitted)={reruns}"
    )


# --- the tests -----------------------------------------------------------------------------


def _start(tmp_path: Path, ledger: Path, **env: str) -> tuple[Endpoint, Orchestrator]:
    endpoint = Endpoint(tmp_path, APPS, "crashapp", RITORNELLO_TEST_LEDGER=str(ledger)).start()
    try:
        orch = Orchestrator(tmp_path, RITORNELLO_LEASE_S="1", **env).start()
        status, body, _ = http("POST", f"{orch.admin}/deployments", {"uri": endpoint.uri})
        assert status == 201, body
    except BaseException:
        endpoint.terminate()
        raise
    return endpoint, orch


def _load_until_acknowledged(orch: Orchestrator, count: int) -> Load:
    load = Load(orch).start()
    assert orch.proc is not None
    proc = orch.proc
    wait_until(
        lambda: load.acknowledged() >= count or proc.poll() is not None,
        30,
        f"{count} requests acknowledged",
    )
    return load


@pytest.mark.timeout(120)
@pytest.mark.parametrize("victim", ["writer", "orchestrator"])
def test_kill9_under_load_then_restart(victim: str, tmp_path: Path) -> None:
    """SIGKILL the writer child (serve must notice and exit 1) or the orchestrator (the
    writer child must follow it) while clients send; then restart on the same file."""
    ledger = tmp_path / "ledger.txt"
    endpoint, orch = _start(tmp_path, ledger)
    try:
        assert orch.proc is not None
        writer = _writer(orch)
        family = descendants(orch.proc.pid)
        load = _load_until_acknowledged(orch, 12)
        assert orch.proc.poll() is None, orch.output()
        if victim == "writer":
            os.kill(writer[0], signal.SIGKILL)
            code = _wait_exit(orch, 20, "serve did not exit after its writer process died")
            assert code == 1, orch.output()
            output = orch.output()
            assert f"the SQLite writer process (pid {writer[0]}) is gone" in output, output
            assert "error: " in output, output
        else:
            orch.kill9()
        wait_until(
            lambda: not any(alive(p) for p in family),
            10,
            f"processes of the orchestrator left behind: {[p for p in family if alive(p)]}",
        )
        requests = load.join()

        orch = Orchestrator(tmp_path).start()  # same database, a new writer child
        assert _writer(orch)[0] != writer[0]
        _check_recovered(orch, requests, ledger)
    finally:
        orch.kill9()
        endpoint.terminate()


@pytest.mark.timeout(60)
def test_a_frozen_writer_dies_with_the_orchestrator(tmp_path: Path) -> None:
    """The writer child frozen (SIGSTOP: as if deep in a long transaction, not reading its
    socket) when the orchestrator is killed -9: the kernel kills it (``PR_SET_PDEATHSIG``), so
    it can never wake up later and commit. EOF on its socket alone would not end it (it never
    reads again); it is not sent SIGCONT."""
    ledger = tmp_path / "ledger.txt"
    endpoint, orch = _start(tmp_path, ledger)
    writer: tuple[int, str] | None = None
    try:
        writer = _writer(orch)
        load = _load_until_acknowledged(orch, 4)
        os.kill(writer[0], signal.SIGSTOP)
        orch.kill9()
        frozen = writer
        wait_until(lambda: not alive(frozen), 10, "the frozen writer outlived the orchestrator")
        requests = load.join()

        orch = Orchestrator(tmp_path).start()
        _check_recovered(orch, requests, ledger)
    finally:
        if writer is not None and alive(
            writer
        ):  # the behaviour under test failed: do not leave it behind
            os.kill(writer[0], signal.SIGKILL)
        orch.kill9()
        endpoint.terminate()


@pytest.mark.timeout(120)
def test_mid_batch_crash_in_the_writer_kills_the_orchestrator(tmp_path: Path) -> None:
    """``mid-batch`` is reached in the writer child (where batches run): the orchestrator
    dies of the child's SIGKILL (-9; reached in the orchestrator itself it would exit 137),
    the child dies too, and a restart recovers every acknowledged invocation."""
    ledger = tmp_path / "ledger.txt"
    endpoint, orch = _start(tmp_path, ledger, RITORNELLO_CRASH_AT="mid-batch:3")
    try:
        assert orch.proc is not None
        writer = _writer(orch)
        load = Load(orch).start()
        code = _wait_exit(orch, 30, "mid-batch:3 never reached")
        requests = load.join()
        assert code == -signal.SIGKILL, orch.output()
        assert "crash point mid-batch:3 reached" in orch.output()
        wait_until(lambda: not alive(writer), 10, "the writer process outlived the crash")

        orch = Orchestrator(tmp_path).start()
        _check_recovered(orch, requests, ledger)
    finally:
        orch.kill9()
        endpoint.terminate()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_group_signal_stops_serve_and_its_writer_cleanly(
    sig: signal.Signals, tmp_path: Path
) -> None:
    """SIGTERM or SIGINT under load to the orchestrator AND its writer child, the writer
    first (as Ctrl-C in a terminal or a service manager's stop signals the whole group): the
    writer ignores it and is stopped by its parent after the jobs already submitted, so serve
    exits 0, not as if its writer had died; the child is gone; a restart finds every
    acknowledged invocation."""
    ledger = tmp_path / "ledger.txt"
    endpoint, orch = _start(tmp_path, ledger)
    try:
        assert orch.proc is not None
        writer = _writer(orch)
        load = _load_until_acknowledged(orch, 6)
        os.kill(writer[0], sig)
        orch.proc.send_signal(sig)
        code = _wait_exit(orch, 20, f"serve did not stop on {sig.name}")
        assert code == 0, orch.output()
        requests = load.join()
        wait_until(lambda: not alive(writer), 10, f"the writer process outlived {sig.name}")
        assert "is gone" not in orch.output(), orch.output()

        orch = Orchestrator(tmp_path).start()
        _check_recovered(orch, requests, ledger)
    finally:
        orch.kill9()
        endpoint.terminate()


@pytest.mark.timeout(60)
def test_writer_thread_serves_end_to_end(tmp_path: Path) -> None:
    """``?writer=thread``: no writer child; calls, sends, attach, a clean stop and an
    idempotent re-send after the restart all work as before."""
    ledger = tmp_path / "ledger.txt"
    store = f"sqlite:///{tmp_path / 'thread.db'}?writer=thread"
    endpoint = Endpoint(tmp_path, APPS, "crashapp", RITORNELLO_TEST_LEDGER=str(ledger)).start()
    orch = Orchestrator(tmp_path, store)
    try:
        orch.start()
        assert orch.proc is not None
        assert _writer_children(orch) == [], "writer=thread started a writer process"
        status, body, _ = http("POST", f"{orch.admin}/deployments", {"uri": endpoint.uri})
        assert status == 201, body
        status, body, _ = http("POST", f"{orch.ingress}/restate/call/Worker/t/work", STEPS)
        assert (status, body) == (200, EXPECTED_WORK)
        requests = [_issue(orch, Request("send", f"thread-{i}", [i, 0])) for i in range(4)] + [
            _issue(orch, Request("call", f"thread-call-{i}", [i, i])) for i in range(4)
        ]
        assert all(r.acknowledged for r in requests), requests
        assert orch.terminate() == 0, orch.output()

        orch = Orchestrator(tmp_path, store).start()
        assert _writer_children(orch) == []
        _check_recovered(orch, requests, ledger)
    finally:
        orch.kill9()
        endpoint.terminate()
