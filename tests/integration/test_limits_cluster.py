"""A named limit across three orchestrators on one DynamoDB table (moto's server over real HTTP
on loopback): the leader of the limit's partition owns it and grants, the others ask and give
back through the store's inboxes; its owner is killed with kill -9 mid-run and a survivor takes
the partition, with it the limit, over.

Judged as on one node (tests/integration/test_limits.py), by ``assert_limit_held``.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.integration._downstream import Downstream, assert_limit_held, permits_held
from tests.procs import (
    ROOT,
    Endpoint,
    Orchestrator,
    check_store,
    cluster_view,
    http,
    orchestrators,
    store_init,
    wait_until,
)

APPS = ROOT / "tests" / "apps"
#: Invocations sent: 1,000 in ``make chaos`` (the issue's run, about 2.5 min here), 100 in
#: ``make test`` (the same checks, a tenth of the time: the suite stays under 15 min).
N = int(os.environ.get("RITORNELLO_LIMITS_INVOCATIONS", "100"))
KILL_AT = N * 3 // 10
CONCURRENCY, RATE, BURST = 5, 50, 10
ENV = {
    "RITORNELLO_LEASE_S": "3",
    "RITORNELLO_INBOX_INTERVAL_S": "0.05",
    # off: every invocation must finish without it (nothing is left for it to find)
    "RITORNELLO_WATCHDOG_INTERVAL_S": "0",
}


def _limit(orch: Orchestrator) -> tuple[int, Any]:
    status, body, _ = http("GET", f"{orch.admin}/limits/down")
    return status, body


def _owner(orchs: list[Orchestrator]) -> Orchestrator | None:
    """The orchestrator that grants ``down``: the one that counts its grants (the others
    report ``granted_last_minute`` null)."""
    owners = [o for o in orchs if _limit(o)[1].get("granted_last_minute") is not None]
    assert len(owners) <= 1, [o.log.parent.name for o in owners]
    return owners[0] if owners else None


def _finished(orch: Orchestrator) -> dict[str, dict[str, Any]]:
    path = f"{orch.admin}/invocations?service=Limited&status=completed,killed&limit=1000"
    status, body, _ = http("GET", path, timeout=60)
    assert status == 200, body
    return {i["id"]: i for i in body["invocations"]}


def _problems(orchs: list[Orchestrator]) -> str:
    lines = [
        f"{o.log.parent.name}: {line}"
        for o in orchs
        for line in o.log.read_text(errors="replace").splitlines()
        if "WARNING" in line or "ERROR" in line or "Traceback" in line
    ]
    return "\n".join(lines[-40:])


@pytest.mark.timeout(600)
def test_a_limit_holds_across_a_cluster_whose_owner_is_killed(
    tmp_path: Path, moto: dict[str, str]
) -> None:
    """``N`` invocations (1,000 in ``make chaos``) sent at once, spread over three ingresses
    and priorities 0..10,
    through ``down`` (``PUT /limits`` through one orchestrator: concurrency 5, 50/s, burst
    10, seen by all three before the sends); once 30 % reached the downstream the limit's
    owner is killed with kill -9 (three partitions: one each). The survivors take its
    partition over and finish everything (the watchdog is off). Never more than 5 permits out
    at once by the journals, nor 5 requests in flight at the downstream; at most 50 + 10
    grants in any 1 s window (the downstream at most 50 + 10 + 5 request starts: see
    ``assert_limit_held``); every invocation completes with its tag, every tag reached the
    downstream, and no permit is left out or waited for; the table checks clean."""
    url = "dynamodb://ritornello-limits?region=us-east-1&partitions=3"
    store_init(url, moto)
    # 0.25 s a request: at the ~20-25 grants a second this cluster makes on moto, the
    # concurrency of 5 binds (asserted below), so the limit is exercised, not just idle
    with Downstream(0.25) as down:
        endpoint = Endpoint(tmp_path, APPS, "limitapp", RITORNELLO_TEST_DOWNSTREAM=down.url)
        orchs: list[Orchestrator] = []
        try:
            endpoint.start()
            orchs = orchestrators(tmp_path, url, moto, ["n0", "n1", "n2"], **ENV)
            status, body, _ = http("POST", f"{orchs[0].admin}/deployments", {"uri": endpoint.uri})
            assert status == 201, body
            wait_until(
                lambda: all(cluster_view(o)["leading"] for o in orchs),
                30,
                "every orchestrator leads partitions",
            )
            definition = {"concurrency": CONCURRENCY, "rate": RATE, "per": "1s", "burst": BURST}
            status, body, _ = http("PUT", f"{orchs[1].admin}/limits/down", definition)
            assert status == 201, body
            # the others read the definitions again every 2 s
            wait_until(lambda: all(_limit(o)[0] == 200 for o in orchs), 10, "all see down")

            tags = [f"t{i:04d}" for i in range(N)]

            def send(i: int) -> str:
                orch = orchs[i % len(orchs)]
                body = {"tag": tags[i], "limit": "down"}
                path = f"{orch.ingress}/restate/send/Limited/call"
                priority = {"x-ritornello-priority": str(i * 7 % 11)}  # 0..10, mixed
                status, answer, _ = http("POST", path, body, headers=priority, timeout=60)
                assert status == 202, (tags[i], status, answer)
                return str(answer["invocationId"])

            started = time.monotonic()
            with ThreadPoolExecutor(24) as pool:
                ids = list(pool.map(send, range(N)))
            sent_in = time.monotonic() - started

            wait_until(
                lambda: len(down.requests) >= KILL_AT, 120, f"{KILL_AT} reach the downstream"
            )
            victim = _owner(orchs)
            assert victim is not None, "no orchestrator grants down"
            victim.kill9()
            seen_at_kill = len(down.requests)
            survivors = [o for o in orchs if o is not victim]

            deadline = time.monotonic() + 240
            while time.monotonic() < deadline and not {r.tag for r in down.requests} >= set(tags):
                time.sleep(0.5)
            missing = set(tags) - {r.tag for r in down.requests}
            if missing:
                figures = [_limit(o)[1] for o in survivors]
                pytest.fail(
                    f"{len(missing)} invocations never reached the downstream, e.g. "
                    f"{sorted(missing)[:5]}; GET /limits/down: {figures}\n{_problems(orchs)}"
                )
            done: dict[str, dict[str, Any]] = {}
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not set(ids) <= set(done):
                done = _finished(survivors[0])
                time.sleep(0.5)
            finished_in = time.monotonic() - started

            unfinished = [i for i in ids if i not in done]
            assert not unfinished, (len(unfinished), unfinished[:5], _problems(orchs))
            wrong = {
                i: done[i]["result"]
                for i, t in zip(ids, tags, strict=True)
                if done[i]["result"] != {"value": t}
            }
            assert not wrong, wrong
            assert seen_at_kill < N, "everything ran before the kill"
            read_at = time.monotonic()
            held = permits_held(survivors[0].admin, ids)
            read_in = time.monotonic() - read_at
            busiest, busiest_grants, out_at_once = assert_limit_held(
                down, tags, held, concurrency=CONCURRENCY, rate=RATE, burst=BURST
            )
            assert out_at_once == CONCURRENCY, f"the limit never bound: {out_at_once} at most"
            requests = down.requests
            for orch in survivors:
                status, figures = _limit(orch)
                assert status == 200, figures
                assert (figures["in_flight"], figures["waiting"]) == (0, 0), (
                    orch.log.parent.name,
                    figures,
                )
            # the table's invariants hold (read beside the survivors, idle by now)
            check_at = time.monotonic()
            report = check_store(url, "--expect-terminal", env=moto)
            checked_in = time.monotonic() - check_at
            print(
                f"{N} sent in {sent_in:.1f} s, all done in {finished_in:.1f} s; killed the "
                f"owner {victim.log.parent.name} after {seen_at_kill} requests; "
                f"{len(requests)} downstream requests ({len(requests) - N} re-run); max "
                f"concurrency {down.max_concurrency}, busiest 1 s window {busiest} requests, "
                f"{busiest_grants} grants, {out_at_once} permits out at once (journals read in "
                f"{read_in:.1f} s); "
                f"{report} in {checked_in:.1f} s"
            )
        finally:
            for orch in orchs:
                orch.kill9()
            endpoint.terminate()
