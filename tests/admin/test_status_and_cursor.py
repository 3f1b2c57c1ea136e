"""admin/_status.py (succeeded/failed over the store's one completed status) and
admin/_cursor.py (the opaque listing cursor), without a server."""

from __future__ import annotations

import pytest

from ritornello.admin._cursor import CursorError, decode_cursor, encode_cursor
from ritornello.admin._status import (
    API_STATUSES,
    api_status,
    invocation_outcome,
    parse_status_filter,
)
from ritornello.store import STATUSES, InvocationRecord


def _inv(status: str, result: str | None = None) -> InvocationRecord:
    return InvocationRecord(
        "inv_1", "S", "h", None, "exclusive", status, "dp_1", 1, 0, 0, result=result
    )


def test_the_shown_statuses_split_completed_in_lifecycle_order() -> None:
    assert "completed" in STATUSES and "completed" not in API_STATUSES
    assert API_STATUSES == (
        "pending", "scheduled", "running", "suspended", "backing-off", "paused",
        "succeeded", "failed", "killed",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("status", "result", "shown"),
    [
        ("completed", '{"value": 3}', "succeeded"),
        ("completed", '{"value": null}', "succeeded"),
        ("completed", '{"failure": {"code": 500, "message": "x"}}', "failed"),
        ("completed", None, "succeeded"),
        ("completed", "not json", "succeeded"),
        ("completed", '["failure"]', "succeeded"),
        ("killed", '{"failure": {"code": 409, "message": "killed"}}', "killed"),
        ("running", None, "running"),
    ],
)
def test_api_status(status: str, result: str | None, shown: str) -> None:
    assert api_status(_inv(status, result)) == shown


def test_status_filters_map_onto_the_store() -> None:
    ok, failed = _inv("completed", '{"value": 1}'), _inv("completed", '{"failure": {}}')
    f = parse_status_filter(["failed"])
    assert f.store_statuses == ("completed",) and f.outcomes == frozenset({"failed"})
    assert f.keeps(failed) and not f.keeps(ok)
    f = parse_status_filter(["running", "succeeded"])
    assert f.store_statuses == ("running", "completed") and f.keeps(ok) and not f.keeps(failed)
    assert f.keeps(_inv("running"))
    for either in (["completed"], ["succeeded", "failed"], ["failed", "completed"]):
        f = parse_status_filter(either)
        assert f.store_statuses == ("completed",) and f.outcomes is None, either
        assert f.keeps(ok) and f.keeps(failed)
    f = parse_status_filter(["killed", "paused", "killed"])
    assert f.store_statuses == ("paused", "killed") and f.outcomes is None
    assert parse_status_filter(None).store_statuses is None
    assert parse_status_filter([]).store_statuses is None
    with pytest.raises(ValueError, match="unknown status 'done'"):
        parse_status_filter(["done"])
    assert invocation_outcome('{"failure": 1}') == "failed"


def test_a_cursor_round_trips_and_is_bound_to_its_order() -> None:
    for order in ("newest", "oldest"):
        for seq, inv_id in ((0, "inv_a"), (2**63 - 1, "inv_b:c"), (42, "é")):
            text = encode_cursor(order, seq, inv_id)
            assert text.isascii() and "=" not in text
            assert decode_cursor(text, order) == (seq, inv_id)
    with pytest.raises(CursorError, match="order=newest"):
        decode_cursor(encode_cursor("newest", 1, "inv_a"), "oldest")


@pytest.mark.parametrize(
    "text",
    ["", "-1", "abc", "!!!", "bjE6", "bjE", "eDE6aQ", "bi0xOmk", "bisxOmk", "b" * 30],
)
def test_anything_else_is_not_a_cursor(text: str) -> None:
    with pytest.raises(CursorError):
        decode_cursor(text, "newest")
