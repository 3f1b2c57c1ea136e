"""AWS Lambda durable functions written with AWS's SDK for JavaScript
(``@aws/durable-execution-sdk-js``, pinned by tests/aws_durable_node/package-lock.json), unmodified,
on Ritornello (docs/aws-durable.md): tests/aws_durable_node/app.mjs behind ``ritornello
lambda-emulator app.mjs`` (a real Node process, its ``AWS_ENDPOINT_URL_LAMBDA`` the orchestrator's
ingress), registered by ARN; the orchestrator (``ritornello serve``, a real process) invokes it
through its Lambda invoker.

Without ``node`` or the npm packages (``make install`` runs ``npm ci --prefix
tests/aws_durable_node``) the tests skip locally and fail in CI (``CI`` set)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from tests.integration import _durable_scenarios as scenario
from tests.integration._durable import ARN, Pair, journal, register
from tests.procs import ROOT

APP = ROOT / "tests" / "aws_durable_node"


def _node_app_or_skip() -> None:
    why = ""
    if shutil.which("node") is None:
        why = "node is not installed"
    elif not (APP / "node_modules" / "@aws" / "durable-execution-sdk-js").is_dir():
        why = "the npm packages are missing: npm ci --prefix tests/aws_durable_node"
    if why:
        if os.environ.get("CI"):
            pytest.fail(f"{why} (CI must have them: make install installs them)")
        pytest.skip(why)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    _node_app_or_skip()
    p = Pair(tmp_path_factory.mktemp("durable-node"), str(APP / "app.mjs")).start()
    try:
        register(p.orch)
        yield p
    finally:
        p.stop()


def test_steps_and_the_result(pair: Pair) -> None:
    scenario.steps_and_the_result(pair)


def test_a_failed_execution_is_a_failed_invocation(pair: Pair) -> None:
    scenario.a_failed_execution(pair)


def test_a_wait_is_a_durable_timer(pair: Pair) -> None:
    scenario.a_wait_is_a_durable_timer(pair)


def test_a_callback_resolved_through_the_durable_api(pair: Pair) -> None:
    scenario.a_callback_resolved_through_the_durable_api(pair)


def test_wait_for_callback_resolved_and_rejected_through_the_awakeable_path(pair: Pair) -> None:
    request = {"mode": "wait-for-callback"}
    scenario.callback_resolved_as_an_awakeable(pair, request, "awakeables", {"submit": 1})
    scenario.callback_rejected_as_an_awakeable(pair, request, "a")


def test_parallel_and_map(pair: Pair) -> None:
    scenario.parallel_branches(pair)
    names = scenario.a_map(pair)
    assert "CONTEXT SUCCEED squares" in names and "STEP SUCCEED square-3" in names, names


def test_a_step_retried_after_a_durable_timer(pair: Pair) -> None:
    scenario.a_step_retried_after_a_durable_timer(pair)


def test_wait_for_condition_and_a_child_context(pair: Pair) -> None:
    scenario.wait_for_condition(pair)
    status, body, headers = pair.call({"mode": "child"})
    assert (status, body) == (200, 3), pair.orch.output()
    names = [e.get("name") for e in journal(pair, headers["x-restate-id"])]
    assert "CONTEXT SUCCEED group" in names and "STEP SUCCEED two" in names, names


def test_a_chained_invoke_of_a_durable_function_and_a_handler(pair: Pair) -> None:
    scenario.chained_invokes(pair, ("orders", ARN))


def test_a_result_over_the_answer_limit_is_checkpointed(pair: Pair) -> None:
    scenario.a_result_over_the_answer_limit(pair)


def test_a_chained_invoke_of_a_ritornello_handler(pair: Pair) -> None:
    scenario.a_chained_invoke_of_a_ritornello_handler(pair)


def test_executions_are_described_and_stopped(pair: Pair) -> None:
    scenario.executions_described_and_stopped(pair)


def test_kill9_of_the_orchestrator_during_a_wait_and_a_pending_callback(pair: Pair) -> None:
    scenario.kill9_during_a_wait_and_a_pending_callback(pair)


def test_kill9_of_the_orchestrator_during_a_step(pair: Pair) -> None:
    """The function is inside a step when the orchestrator dies: the re-driven attempt replays
    the journaled step and runs the interrupted one again (at-least-once); the execution
    finishes with each step journaled once."""
    scenario.kill9_during_a_step(pair, {"mode": "slow-step", "sleep_ms": 1000})


def test_kill9_during_an_at_most_once_step_does_not_run_it_again(pair: Pair) -> None:
    """At-most-once per retry (START journaled before the step runs): after the crash the
    replay finds it started, never finished, and the SDK raises instead of running it again."""
    scenario.kill9_during_an_at_most_once_step(pair, {"mode": "at-most-once", "sleep_ms": 1000})
