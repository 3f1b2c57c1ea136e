"""Commit times on journal entries and completions (``"at"``, Unix ms, the orchestrator's clock).

``stamp_unit`` runs once per ``Engine._commit`` call, before the unit is written: every entry and
every completion the unit adds gets ``"at"`` appended to its JSON text, so the stored journal
says when each step and each result was committed (the admin API shows it as a timeline).

Invariants: ``at`` is informational. The SDK matches entries by kind, name and key and reads a
completion's ``value``/``failure`` only, so a text with or without ``at`` means the same thing
to replay (an in-memory copy made before the stamp may lack it). Texts are JSON objects built by
the orchestrator (never ``{}``: an entry has ``kind``, a completion ``index``), so appending a
member before the closing brace keeps them valid JSON without re-encoding the payload.
"""

from __future__ import annotations

from ritornello.store import CommitUnit


def stamped(text: str, at_ms: int) -> str:
    """``text`` (a JSON object) with ``"at": at_ms`` appended as its last member."""
    return _stamp(text, f',"at":{at_ms}}}')


def _stamp(text: str, suffix: str) -> str:
    if len(text) > 2 and text[-1] == "}" and text[0] == "{":
        return text[:-1] + suffix
    return text  # not a non-empty object: leave it as it is


def stamp_unit(unit: CommitUnit, at_ms: int) -> None:
    """Stamp the entries and completions of ``unit`` in place with commit time ``at_ms``."""
    suffix = f',"at":{at_ms}}}'
    if unit.entries:
        unit.entries[:] = [(inv, i, _stamp(text, suffix)) for inv, i, text in unit.entries]
    if unit.completions:
        unit.completions[:] = [(inv, i, _stamp(text, suffix)) for inv, i, text in unit.completions]
