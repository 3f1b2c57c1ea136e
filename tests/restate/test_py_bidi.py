"""The Restate Python SDK over HTTP/2 (h2c, prior knowledge: the endpoint serves nothing else)
in BIDI_STREAM mode: the scenarios of ``test_py_request_response.py``, run again against it,
plus what the open exchange adds — a multi-step handler runs in one exchange, with no replay
between its steps."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.procs import http
from tests.restate.conftest import PyApp
from tests.restate.test_py_request_response import (  # noqa: F401 - collected here too
    World,
    test_a_delayed_send_starts_when_due,
    test_a_failing_step_is_retried_with_backoff,
    test_a_sleep_suspends_and_wakes,
    test_a_terminal_error_is_the_callers_status,
    test_attach_to_another_invocation,
    test_awakeables_from_outside_and_from_both_sdks,
    test_calls_and_sends_both_ways,
    test_cancel_from_the_admin_api_reaches_the_handler,
    test_combinators,
    test_discovery_keeps_kinds_and_the_manifest,
    test_idempotent_calls_from_a_handler_share_one_callee,
    test_journal_is_shown_with_names,
    test_named_signals_and_cancel_from_a_handler,
    test_state_eager_reads_writes_clears_and_keys,
    test_steps_run_once_each,
    test_workflow_promises_get_peek_complete,
    world_of,
)


@pytest.fixture(scope="module")
def world(restate_py_app_h2: PyApp, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with world_of(restate_py_app_h2, tmp_path_factory.mktemp("restate-bidi")) as w:
        yield w


def test_the_deployment_is_reached_over_http2_in_bidi_mode(world: World) -> None:
    status, deps, _ = http("GET", f"{world.orch.admin}/deployments")
    assert status == 200
    (dep,) = [d for d in deps["deployments"] if d["uri"] == world.app.url]
    assert dep["services"]  # discovered over h2c: HTTP/1.1 got 505 from this endpoint


def test_ten_steps_run_in_one_exchange(world: World) -> None:
    inv = world.send("Greeter/ten", "one-exchange")
    assert world.output(inv) == (200, 10)
    assert world.app.step_counts(inv) == {f"step-{i}": 1 for i in range(10)}
    assert world.app.attempts(inv) == 1  # request/response would have run it 11 times
