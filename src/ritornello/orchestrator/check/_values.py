"""Invariant ``json``: every stored value is JSON by the rules values are taken in with
(``ritornello.orchestrator._json.json_input``): orjson reads it (no ``NaN``, no infinities,
UTF-8 without lone surrogates) and its integers fit in 64 bits. The standard library's parser
reads ``Infinity``, ``NaN`` and ``1e999`` without complaint, so a journal holding one passes the
structural rules (``journal``, ``state``); it is reported here. A text that no parser reads is
left to those rules (one report per fault), except state rows, which no other rule reads.

Nesting is not limited here beyond orjson's own 1024 levels: an endpoint's answers may nest
deeper than the 128 levels taken from outside, and stored texts wrap their values (an entry, a
completion, a result).
"""

from __future__ import annotations

import json

from ritornello.store import InvocationRecord, Store

from .._json import JsonInputError, json_input
from ._report import CheckReport


def check_values(
    rec: InvocationRecord, entries: list[str], completions: list[str], report: CheckReport
) -> None:
    """Invariant ``json`` over one invocation's entries, completions and result."""
    for index, text in enumerate(entries):
        _check(text, f"entry {index}", rec.id, report)
    for text in completions:
        _check(text, "a completion", rec.id, report)
    if rec.result is not None:
        _check(rec.result, "its result", rec.id, report)


async def check_state_values(
    store: Store,
    records: dict[str, InvocationRecord],
    states: dict[tuple[str, str], dict[str, str]],
    report: CheckReport,
) -> None:
    """Invariant ``json`` over the state rows of every object key an invocation names (the
    store lists no keys of its own); ``states`` caches what other rules read already."""
    keys = sorted({(r.service, r.key) for r in records.values() if r.key is not None})
    for where in keys:
        if where not in states:
            states[where] = await store.get_state(*where)
        for name, text in sorted(states[where].items()):
            what = f"state {name!r} of {where[0]}/{where[1]}"
            _check(text, what, None, report, always=True)


def _check(
    text: str, what: str, about: str | None, report: CheckReport, *, always: bool = False
) -> None:
    try:
        json_input(text, what, max_depth=None)
    except JsonInputError as exc:
        if always or _lenient(text):
            shown = text if len(text) <= 80 else text[:77] + "..."
            report.add("json", about, f"{exc}: {shown!r}")


def _lenient(text: str) -> bool:
    """Whether the standard library reads ``text`` (so the structural rules accepted it)."""
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return False
    return True
