"""GET /invocations (filters, paging, validation), GET /invocations/{id} (journal timing,
retries) and the PATCH operations, over a real ``ritornello serve`` on loopback."""

from __future__ import annotations

import time

from tests.admin.conftest import Api


def _ids(api: Api, query: str) -> list[str]:
    """Every invocation id the listing yields for ``query``, paging through next_cursor."""
    ids: list[str] = []
    cursor = ""
    for _ in range(100):
        status, body = api.admin("GET", f"/invocations?{query}{cursor}")
        assert status == 200, body
        ids += [i["id"] for i in body["invocations"]]
        if body["next_cursor"] is None:
            return ids
        assert isinstance(body["next_cursor"], str)
        cursor = f"&cursor={body['next_cursor']}"
    raise AssertionError("paging did not end")


def test_listing_filters_and_pages(api: Api) -> None:
    before = int(time.time() * 1000)
    says = [api.call("/restate/call/Echo/say", f"t{n}")[2] for n in range(5)]
    puts = [api.call(f"/restate/call/Box/k{n % 2}/put", n)[2] for n in range(4)]
    after = int(time.time() * 1000) + 1
    assert all(says) and all(puts)
    newest = says[::-1]

    assert _ids(api, "service=Echo&limit=2") == newest  # paged, newest first by default
    assert _ids(api, "service=Echo&limit=2&order=oldest") == says  # or in arrival order
    assert _ids(api, "service=Echo&limit=2&order=newest") == newest
    assert _ids(api, "handler=say&limit=2") == newest  # filtered here, across pages
    assert _ids(api, "handler=say&limit=2&order=oldest") == says
    assert _ids(api, "service=Box&handler=put&key=k1&limit=1") == [puts[3], puts[1]]
    assert _ids(api, "handler=nope") == []
    window = _ids(api, f"created_after={before}&created_before={after}&limit=3&order=oldest")
    assert window == says + puts
    assert _ids(api, f"created_after={after + 60_000}") == []
    assert _ids(api, f"created_before={before}&handler=say") == []
    # status: repeatable or comma-separated; completed is either outcome
    assert _ids(api, "status=succeeded&service=Echo") == newest
    assert _ids(api, "status=completed&service=Echo") == newest
    assert _ids(api, "status=running,succeeded&service=Echo") == newest
    assert _ids(api, "status=running&status=succeeded&service=Echo") == newest
    assert _ids(api, "status=failed&service=Echo") == []
    assert _ids(api, "status=paused&service=Echo") == []
    # one page, and the next_cursor rules
    status, body = api.admin("GET", "/invocations?service=Echo&limit=5")
    assert status == 200 and [i["id"] for i in body["invocations"]] == newest
    assert body["next_cursor"] is None  # the last page, though full, says so
    status, body = api.admin("GET", "/invocations?handler=say&limit=5")  # filtered here
    assert status == 200 and len(body["invocations"]) == 5 and body["next_cursor"] is None
    status, body = api.admin("GET", "/invocations?service=Echo&limit=4")
    assert status == 200 and len(body["invocations"]) == 4 and body["next_cursor"]
    status, body = api.admin("GET", "/invocations?service=Echo&limit=6")
    assert status == 200 and len(body["invocations"]) == 5 and body["next_cursor"] is None
    first = body["invocations"][-1]
    assert first["target"] == "Echo/say" and first["status"] == "succeeded"
    assert first["result"] == {"value": "T0"} and first["invoked_by"] == "ingress"


def test_failed_and_succeeded_apart(api: Api) -> None:
    status, body, failed = api.call("/restate/call/Flaky/refuse", "x")
    assert status == 422 and failed, body
    ok = api.call("/restate/call/Flaky/twice", "apart")[2]
    shown = api.invocation(failed)
    assert shown["status"] == "failed" and shown["result"]["failure"]["code"] == 422
    assert api.invocation(ok)["status"] == "succeeded"
    assert _ids(api, "service=Flaky&status=failed") == [failed]
    assert _ids(api, "service=Flaky&status=failed&limit=1") == [failed]
    assert ok in _ids(api, "service=Flaky&status=succeeded")
    assert failed not in _ids(api, "service=Flaky&status=succeeded")
    both = _ids(api, "service=Flaky&status=completed")
    assert both[:2] == [ok, failed]  # newest first, either outcome
    assert _ids(api, "service=Flaky&status=succeeded,failed") == both
    assert _ids(api, "service=Flaky&status=failed&handler=twice") == []
    status, body = api.admin("GET", "/invocations?service=Flaky&status=failed")
    assert [i["status"] for i in body["invocations"]] == ["failed"]


def test_cursor_neither_skips_nor_repeats_while_invocations_arrive(api: Api) -> None:
    first = [api.call("/restate/call/Box/arrive/put", n)[2] for n in range(4)]
    status, body = api.admin("GET", "/invocations?key=arrive&limit=2")
    assert status == 200 and [i["id"] for i in body["invocations"]] == first[:1:-1]
    late = api.call("/restate/call/Box/arrive/put", 99)[2]  # arrives between two pages
    status, rest = api.admin("GET", f"/invocations?key=arrive&limit=2&cursor={body['next_cursor']}")
    assert status == 200 and [i["id"] for i in rest["invocations"]] == first[1::-1]
    assert _ids(api, "key=arrive") == [late, *first[::-1]]
    # a cursor goes with its order
    status, body = api.admin(
        "GET", f"/invocations?key=arrive&order=oldest&cursor={body['next_cursor']}"
    )
    assert status == 400 and "order=newest" in body["detail"]


def test_listing_rejects_bad_input_with_400(api: Api) -> None:
    for query in (
        "status=nope",
        "status=completed,bogus",
        "limit=0",
        "limit=1001",
        "limit=x",
        "cursor=-1",
        "cursor=abc",
        "cursor=%F0%9F%98%80",
        f"cursor={'9' * 30}",
        f"cursor={'x' * 1001}",
        "order=sideways",
        "order=",
        "created_after=-1",
        "created_after=soon",
        "created_after=10&created_before=10",
    ):
        status, body = api.admin("GET", f"/invocations?{query}")
        assert status == 400, (query, status, body)
        assert body["detail"], query
    status, body = api.admin("GET", "/invocations?status=nope")
    assert "unknown status 'nope'" in body["detail"] and "failed" in body["detail"]


def test_journal_has_commit_times_and_completions(api: Api) -> None:
    before = int(time.time() * 1000)
    status, body, inv = api.call("/restate/call/Echo/say", "hi")
    assert status == 200 and body == "HI"
    now = int(time.time() * 1000)
    detail = api.invocation(inv)
    assert [e["kind"] for e in detail["journal"]] == ["input", "run", "sleep", "output"]
    ats = [e["at"] for e in detail["journal"]]
    assert all(before <= at <= now for at in ats), ats
    assert ats == sorted(ats)
    sleep = detail["journal"][2]
    assert sleep["index"] == 2 and sleep["duration_ms"] == 10 and "wake_at" in sleep
    completion = sleep["completion"]
    assert completion["value"] is None and sleep["at"] <= completion["at"] <= now
    assert "completion" not in detail["journal"][1]  # a run needs none
    assert detail["journal"][1]["name"] == "upper" and detail["journal"][1]["value"] == "HI"
    assert detail["retries"] == []
    assert api.admin("GET", "/invocations/inv_missing")[0] == 404


def test_retries_are_listed_oldest_first(api: Api) -> None:
    status, body, inv = api.call("/restate/call/Flaky/twice", "r1")
    assert status == 200 and body == "ok r1"
    detail = api.invocation(inv)
    assert detail["attempt"] == 3
    retries = detail["retries"]
    assert [r["attempt"] for r in retries] == [1, 2]
    assert "flaky failure 1 of r1" in retries[0]["error"]
    assert "flaky failure 2 of r1" in retries[1]["error"]
    assert retries[0]["at"] <= retries[1]["at"] <= detail["modified_at"]


def test_purge_frees_the_idempotency_key(api: Api) -> None:
    status, _, inv = api.call("/restate/call/Echo/say", "once", **{"Idempotency-Key": "pk1"})
    assert status == 200
    status, _, again = api.call("/restate/call/Echo/say", "once", **{"Idempotency-Key": "pk1"})
    assert again == inv  # the same invocation while it is kept
    assert api.admin("PATCH", f"/invocations/{inv}/purge") == (200, {"id": inv})
    assert api.admin("GET", f"/invocations/{inv}")[0] == 404
    assert inv not in _ids(api, "service=Echo&limit=1000")
    assert api.admin("PATCH", f"/invocations/{inv}/purge")[0] == 404
    status, _, fresh = api.call("/restate/call/Echo/say", "once", **{"Idempotency-Key": "pk1"})
    assert status == 200 and fresh not in ("", inv)  # the key is free again


def test_purge_refuses_an_unfinished_invocation(api: Api) -> None:
    inv = api.send("/Box/purge-me/hold", "x")
    api.wait_status(inv, "suspended")
    status, body = api.admin("PATCH", f"/invocations/{inv}/purge")
    assert status == 409 and "suspended" in body["detail"]
    assert api.invocation(inv)["status"] == "suspended"  # untouched
    assert api.admin("PATCH", f"/invocations/{inv}/kill")[1]["status"] == "killed"
    assert api.admin("PATCH", f"/invocations/{inv}/purge") == (200, {"id": inv})
    assert api.admin("GET", f"/invocations/{inv}")[0] == 404


def test_pause_resume_cancel(api: Api) -> None:
    inv = api.send("/Box/ops/hold", "op")
    api.wait_status(inv, "suspended")
    status, body = api.admin("PATCH", f"/invocations/{inv}/pause")
    assert status == 200 and body["status"] == "paused"
    assert api.admin("PATCH", f"/invocations/{inv}/pause")[0] == 409
    status, body = api.admin("PATCH", f"/invocations/{inv}/resume")
    assert status == 200 and body["status"] == "running"
    api.wait_status(inv, "suspended")
    assert api.admin("PATCH", f"/invocations/{inv}/cancel")[0] == 200
    done = api.wait_status(inv, "succeeded")  # the handler caught the cancellation
    assert done["result"] == {"value": "op: rejected (cancelled)"}
    assert api.admin("PATCH", f"/invocations/{inv}/kill")[0] == 409
    for action in ("cancel", "kill", "pause", "resume", "purge"):
        assert api.admin("PATCH", f"/invocations/inv_nope/{action}")[0] == 404
