"""GET /metrics (Prometheus text) over a real ``ritornello serve``: parsed with
prometheus_client's own parser; the values follow what the test drove."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.admin.conftest import Api


def _scrape(api: Api) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    status, text, headers = api.raw("/metrics")
    assert status == 200
    assert headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(str(text)):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def test_metrics_follow_the_work_done(api: Api) -> None:
    before = _scrape(api)
    for status in ("pending", "running", "suspended", "completed", "killed", "paused"):
        assert (("ritornello_invocations", (("status", status),))) in before
    assert before[("ritornello_invocations", (("status", "completed"),))] == 0

    for n in range(3):
        assert api.call("/restate/call/Echo/say", f"m{n}")[0] == 200
    assert api.call("/restate/call/Flaky/twice", "m")[0] == 200  # 3 attempts
    holder = api.send("/Box/mk/hold", "h")
    api.wait_status(holder, "suspended")
    queued = api.send("/Box/mk/put", 1)
    api.wait_status(queued, "pending")

    after = _scrape(api)
    assert after[("ritornello_invocations", (("status", "completed"),))] == 4
    assert after[("ritornello_invocations", (("status", "suspended"),))] == 1
    assert after[("ritornello_invocations", (("status", "pending"),))] == 1
    # Echo: 2 attempts each (suspends on its sleep, then resumes); Flaky 3; hold 1
    assert after[("ritornello_attempts_total", ())] >= 3 * 2 + 3 + 1
    assert after[("ritornello_queue_depth", ())] == 1
    assert after[("ritornello_keys_held", ())] == 1
    assert after[("ritornello_suspended", ())] == 1
    commits = after[("ritornello_journal_commit_seconds_count", ())]
    assert commits > before[("ritornello_journal_commit_seconds_count", ())]
    assert after[("ritornello_journal_commit_seconds_bucket", (("le", "+Inf"),))] == commits
    assert after[("ritornello_journal_commit_seconds_sum", ())] > 0
    assert ("ritornello_engine_events_total", (("event", "attempts"),)) in after

    api.admin("PATCH", f"/invocations/{holder}/kill")
    api.wait_status(queued, "succeeded", "failed")
    final = _scrape(api)
    assert final[("ritornello_queue_depth", ())] == 0
    assert final[("ritornello_invocations", (("status", "killed"),))] == 1
    assert final[("ritornello_timers", ())] == 0


def test_timers_gauge_counts_a_delayed_send(api: Api) -> None:
    assert _scrape(api)[("ritornello_timers", ())] == 0
    inv = api.send("/Echo/say?delay=60s", "later")
    assert api.invocation(inv)["status"] == "scheduled"
    samples = _scrape(api)
    assert samples[("ritornello_timers", ())] == 1
    assert samples[("ritornello_invocations", (("status", "scheduled"),))] == 1
    assert api.admin("PATCH", f"/invocations/{inv}/cancel")[0] == 200
    assert _scrape(api)[("ritornello_timers", ())] == 0
