"""Awakeables over loopback: resolved from outside (JSON), rejected (text), resolved by another
handler, forged ids refused, and waiting survives kill -9 of the orchestrator."""

from __future__ import annotations

import time
from pathlib import Path

from tests.procs import ROOT, Endpoint, Orchestrator, http

APPS = ROOT / "tests" / "apps"


def _published(orch: Orchestrator, key: str) -> str:
    for _ in range(200):
        status, aid, _ = http("POST", f"{orch.ingress}/restate/call/Approval/{key}/pending")
        if status == 200 and aid:
            return str(aid)
        time.sleep(0.02)
    raise AssertionError("no awakeable published")


def test_awakeables_end_to_end(tmp_path: Path) -> None:
    endpoint = Endpoint(tmp_path, APPS, "awakeapp").start()
    orch = Orchestrator(tmp_path).start()
    try:
        http("POST", f"{orch.admin}/deployments", {"uri": endpoint.uri})
        send = f"{orch.ingress}/restate/send/Approval"
        ids = {k: http("POST", f"{send}/{k}/request", k)[1]["invocationId"] for k in "abcd"}
        aids = {k: _published(orch, k) for k in "abcd"}
        assert len(set(aids.values())) == 4
        assert all(a.startswith("sign_") for a in aids.values())

        # Forged or mangled ids: 404, nothing changes.
        a = aids["a"]
        forged = a[:-4] + ("aaaa" if not a.endswith("aaaa") else "bbbb")
        for bad in (forged, "sign_nope", "inv_x", a.replace("_", "-")):
            status, body, _ = http("POST", f"{orch.ingress}/restate/awakeables/{bad}/resolve", 1)
            assert status == 404, (bad, status, body)

        # kill -9 while all four wait; they must still complete after the restart.
        orch.kill9()
        orch.start()

        assert http("POST", f"{orch.ingress}/restate/awakeables/{a}/resolve", "yes")[0] == 202
        status, body, _ = http(
            "POST",
            f"{orch.ingress}/restate/a/{aids['b']}/reject",
            raw=b"over budget",
            headers={"content-type": "text/plain"},
        )
        assert status == 202, body
        assert (
            http(
                "POST",
                f"{orch.ingress}/restate/call/Approval/x/decide",
                {"aid": aids["c"], "verdict": "ok by peer"},
            )[0]
            == 200
        )
        status, _, _ = http(
            "POST",
            f"{orch.ingress}/restate/awakeables/{aids['d']}/resolve",
            raw=b"{bad json",
        )
        assert status == 400
        assert http("POST", f"{orch.ingress}/restate/a/{aids['d']}/resolve", {"n": 1})[0] == 202
        # Already completed: 409.
        assert http("POST", f"{orch.ingress}/restate/awakeables/{a}/resolve", "again")[0] == 409

        results = {
            k: http("GET", f"{orch.ingress}/restate/attach/{inv}", timeout=30)[:2]
            for k, inv in ids.items()
        }
        assert results == {
            "a": (200, "a: yes"),
            "b": (200, "b: rejected (over budget)"),
            "c": (200, "c: ok by peer"),
            "d": (200, "d: {'n': 1}"),
        }
    finally:
        orch.kill9()
        endpoint.terminate()
