"""The protocol's plain value classes (``protocol/_record.py``): what they kept of dataclasses."""

from __future__ import annotations

import pickle

import pytest

from ritornello import Limit
from ritornello.protocol import InvokeRequest, InvokeResponse, RetryPolicy


def test_equality_hash_and_repr_come_from_the_fields() -> None:
    a = RetryPolicy(initial_interval_ms=10, max_attempts=3)
    b = RetryPolicy(initial_interval_ms=10, max_attempts=3)
    assert a == b and hash(a) == hash(b)
    assert a != RetryPolicy(initial_interval_ms=10, max_attempts=4)
    assert a != Limit("x", concurrency=1)  # another class: never equal
    assert repr(a) == (
        "RetryPolicy(initial_interval_ms=10, factor=None, max_interval_ms=None, "
        "max_attempts=3, on_max_attempts=None)"
    )
    assert {a, b} == {a}


def test_frozen_records_refuse_assignment_and_deletion() -> None:
    limit = Limit("smtp", concurrency=2)
    with pytest.raises(AttributeError, match="frozen"):
        limit.concurrency = 3  # type: ignore[misc]
    with pytest.raises(AttributeError, match="frozen"):
        del limit.name  # type: ignore[misc]
    with pytest.raises(AttributeError):
        limit.other = 1  # type: ignore[attr-defined]
    assert limit.concurrency == 2


def test_validation_still_runs_in_the_constructor() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="concurrency, rate"):
        Limit("nothing")


def test_replace_makes_a_changed_copy_and_refuses_unknown_fields() -> None:
    response = InvokeResponse("suspended", waiting=[1])
    changed = response.replace(waiting=[2, 3])
    assert changed.waiting == [2, 3] and response.waiting == [1]
    assert changed.status == "suspended"
    with pytest.raises(TypeError, match="no field 'nope'"):
        response.replace(nope=1)
    assert Limit("a", rate=1.0).replace(per="1m") == Limit("a", rate=1.0, per="1m")


def test_defaults_are_fresh_per_instance_and_records_pickle() -> None:
    first, second = InvokeResponse("done"), InvokeResponse("done")
    first.entries.append({"kind": "output"})
    assert second.entries == []
    request = InvokeRequest("inv_1", "S", "h", None, 1, [{"kind": "input"}])
    assert request.completions == [] and request.state is None
    assert pickle.loads(pickle.dumps(request)) == request
    assert pickle.loads(pickle.dumps(Limit("x", concurrency=1))) == Limit("x", concurrency=1)
