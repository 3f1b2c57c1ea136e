"""The engine's one check of values from outside (``orchestrator._json``): ``json_input`` for
JSON text (ingress bodies, awakeable resolutions, schedule inputs) and ``json_input_of`` for
values the standard library parsed (the admin API's bodies, state writes, the CLI). Both refuse
the same values with the same messages, and give back text every reader reads the same."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ritornello.orchestrator import MAX_JSON_DEPTH, JsonInputError, json_input, json_input_of


def nested(levels: int) -> Any:
    value: Any = 0
    for _ in range(levels):
        value = [value]
    return value


ACCEPTED = [
    None,
    "😀 שלום e\u0301 \u0000",
    2**64 - 1,
    -(2**63),
    1.5e300,
    {"a": [1, {"b": None}], "": True},
    nested(MAX_JSON_DEPTH),
]


@pytest.mark.parametrize("value", ACCEPTED, ids=range(len(ACCEPTED)))
def test_valid_values_pass_and_read_back_the_same(value: Any) -> None:
    text = json_input_of(value)
    assert json.loads(text) == value
    assert json_input(text) == text
    assert json_input(text.encode()) == text


REFUSED_TEXT = [
    (b"NaN", "invalid JSON"),
    (b"[1, Infinity]", "invalid JSON"),
    (b"-Infinity", "invalid JSON"),
    (b"1e999", "infinity"),
    (b'"\\ud800"', "surrogate"),
    (b'"\xff"', "invalid JSON"),
    (b"18446744073709551616", "64 bits"),
    (json.dumps(nested(MAX_JSON_DEPTH + 1)).encode(), f"deeper than {MAX_JSON_DEPTH}"),
    (b"{", "invalid JSON"),
]


@pytest.mark.parametrize(("raw", "says"), REFUSED_TEXT, ids=range(len(REFUSED_TEXT)))
def test_text_that_is_not_json_the_engine_takes_is_refused(raw: bytes, says: str) -> None:
    with pytest.raises(JsonInputError, match=says) as info:
        json_input(raw, "schedule input")
    assert "schedule input" in str(info.value)
    with pytest.raises(JsonInputError, match=says):
        json_input(raw.decode("utf-8", "surrogateescape"), "schedule input")


REFUSED_VALUES = [
    (float("nan"), "NaN and infinities"),
    ([float("inf")], "NaN and infinities"),
    ({"a": -float("inf")}, "NaN and infinities"),
    ("\udc80", "lone surrogate"),
    (2**64, "64 bits"),
    (-(2**63) - 1, "64 bits"),
    (nested(MAX_JSON_DEPTH + 1), f"deeper than {MAX_JSON_DEPTH}"),
    (nested(5000), f"deeper than {MAX_JSON_DEPTH}"),  # past the standard library's recursion
    ({1, 2}, "not JSON serializable"),
]


@pytest.mark.parametrize(("value", "says"), REFUSED_VALUES, ids=range(len(REFUSED_VALUES)))
def test_values_the_standard_library_reads_but_json_has_no_text_for_are_refused(
    value: Any, says: str
) -> None:
    with pytest.raises(JsonInputError, match=says) as info:
        json_input_of(value, "state value 'n'")
    assert "state value 'n'" in str(info.value)
