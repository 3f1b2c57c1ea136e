"""AWS's durable-execution conformance requirements, run against Ritornello (docs/aws-durable.md,
"Conformance"): each requirement's Python handler (AWS's, vendored) behind ``ritornello
lambda-emulator``, registered by ARN with ``ritornello serve``, validated by AWS's own validator
(vendored): the execution's status, result and history as the requirement's YAML states them.

``make test`` runs ``FAST`` (a few seconds); ``make aws-conformance``
(``RITORNELLO_AWS_CONFORMANCE=all``) runs every requirement a vendored handler serves. A
requirement that fails here for a known reason is in ``KNOWN`` (strict xfail: one that starts
passing fails the run until it is taken out).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.aws_conformance.runner import (
    NOT_RUNNABLE,
    Conformance,
    conformance,
    requirement_file,
    requirements,
)

#: A quick requirement or two of most suites (no long waits, no timeouts).
FAST = ("1-1", "1-5", "3-5", "4-1", "5-1", "6-1", "8-1", "9-1")

#: Requirements that fail on Ritornello, and why (docs/aws-durable.md lists them).
KNOWN: dict[str, str] = {}

ALL = os.environ.get("RITORNELLO_AWS_CONFORMANCE") == "all"
SELECTED = sorted(requirements() if ALL else FAST, key=lambda r: tuple(map(int, r.split("-"))))


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Conformance]:
    yield from conformance(tmp_path_factory.mktemp("aws-conformance"))


def _case(req_id: str) -> object:
    if req_id in NOT_RUNNABLE:
        return pytest.param(req_id, marks=pytest.mark.skip(reason=NOT_RUNNABLE[req_id]))
    if req_id in KNOWN:
        return pytest.param(req_id, marks=pytest.mark.xfail(reason=KNOWN[req_id], strict=True))
    return req_id


@pytest.mark.timeout(600 if ALL else 60)
@pytest.mark.parametrize("req_id", [_case(r) for r in SELECTED])
def test_requirement(running: Conformance, req_id: str) -> None:
    outcome = running.run(req_id)
    assert outcome.passed, f"{req_id} ({outcome.function}): {outcome.errors}"


def test_every_requirement_with_a_handler_is_vendored() -> None:
    """The templates name only requirements whose YAML is vendored, and the runner finds each."""
    for req_id in requirements():
        assert isinstance(requirement_file(req_id), Path)
    assert len(requirements()) >= 140
