"""The Restate TypeScript SDK over HTTP/2 only (h2c, Node's `http2` server, as the SDK's
``serve()``) in BIDI_STREAM mode: the scenarios of ``test_ts_request_response.py``, run
again against it. Discovery finds it over HTTP/2 after HTTP/1.1 gets nothing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.procs import http
from tests.restate.conftest import PyApp
from tests.restate.test_py_request_response import World, world_of
from tests.restate.test_ts_request_response import (  # noqa: F401 - collected here too
    test_a_delayed_send_starts_when_due,
    test_a_sleep_suspends_and_wakes,
    test_a_terminal_error_is_the_callers_status,
    test_attach_to_another_invocation,
    test_awakeables_from_outside_and_from_both_sdks,
    test_calls_and_sends_both_ways,
    test_cancel_from_a_handler,
    test_cancel_from_the_admin_api_reaches_the_handler,
    test_combinators,
    test_idempotent_calls_from_a_handler_share_one_callee,
    test_journal_is_shown_with_names,
    test_named_signals,
    test_state_eager_reads_writes_clears_and_keys,
    test_steps_run_once_each,
    test_workflow_promises_get_peek_complete,
)


@pytest.fixture(scope="module")
def world(restate_ts_app_h2: PyApp, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with world_of(restate_ts_app_h2, tmp_path_factory.mktemp("restate-ts-bidi")) as w:
        yield w


def test_registered_over_http2_with_its_kinds(world: World) -> None:
    status, deps, _ = http("GET", f"{world.orch.admin}/deployments")
    assert status == 200
    (dep,) = [d for d in deps["deployments"] if d["uri"] == world.app.url]
    kinds = {s["name"]: s["kind"] for s in dep["services"]}
    assert kinds["Greeter"] == "service" and kinds["Counter"] == "object"
    assert kinds["Signup"] == "workflow"
