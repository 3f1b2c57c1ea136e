"""The core's transitions as tables (``_table.py``): event in, unit and effects out, for every
transition; milliseconds, no event loop.

``RITORNELLO_TABLES=update .venv/bin/pytest tests/orchestrator/core`` rewrites the expected
lines from what the core gives: review the diff before keeping it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from ._table import run

TABLES = Path(__file__).parent / "tables"


def _cases() -> list[tuple[Path, int, str]]:
    found = []
    for path in sorted(TABLES.glob("*.json")):
        for n, table in enumerate(json.loads(path.read_text())["tables"]):
            found.append((path, n, f"{path.stem}: {table['why']}"))
    return found


CASES = _cases()


@pytest.mark.parametrize(("path", "n"), [(p, n) for p, n, _ in CASES], ids=[i for *_, i in CASES])
def test_table(path: Path, n: int) -> None:
    doc: dict[str, Any] = json.loads(path.read_text())
    table = doc["tables"][n]
    got = run(table)
    if os.environ.get("RITORNELLO_TABLES") == "update":
        for entry, lines in zip(table["transcript"], got, strict=True):
            entry["expect"] = lines
        path.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
        return
    for i, (entry, lines) in enumerate(zip(table["transcript"], got, strict=True)):
        assert lines == entry.get("expect"), (
            f"event {i} ({entry['event']['type']}) of {table['why']!r}:\n" + "\n".join(lines)
        )


def test_every_event_and_effect_kind_appears_in_a_table() -> None:
    """The tables cover every kind of event the core takes, and every kind of effect and
    next action it gives."""
    from ritornello.orchestrator import core

    text = "".join(p.read_text() for p in TABLES.glob("*.json"))
    events = [
        name for name in core.__all__ if name in {cls.__name__ for cls in core.Event.__args__}
    ]
    missing = [e for e in events if f'"type": "{e}"' not in text]
    assert not missing, f"events with no table: {missing}"
    effects = {cls.__name__ for cls in core.Effect.__args__}
    actions = {cls.__name__ for cls in core.Action.__args__}
    missing = [e for e in sorted(effects | actions) if f" {e}" not in text]
    assert not missing, f"effects or actions no table shows: {missing}"
