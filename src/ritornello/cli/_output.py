"""Printing for the operator commands: JSON for scripts, rich tables for people.

``--json`` output is the server's JSON, unchanged and on stdout alone (messages go to stderr), so
``ritornello invocations list --json | jq`` always sees one document.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

STATUS_STYLE = {
    "pending": "yellow",
    "scheduled": "cyan",
    "running": "blue",
    "suspended": "magenta",
    "backing-off": "red",
    "paused": "yellow",
    "succeeded": "green",
    "failed": "bold red",
    "completed": "green",  # a server from before succeeded/failed
    "killed": "red",
}


def console(err: bool = False) -> Console:
    """A console on the current stdout/stderr (looked up per call, so redirection works)."""
    return Console(file=sys.stderr if err else sys.stdout, soft_wrap=False)


def print_json(value: Any) -> None:
    """One JSON document on stdout."""
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def note(message: str) -> None:
    """A message for people, on stderr (never mixed into ``--json`` output)."""
    console(err=True).print(Text(message), highlight=False)


def cell(value: Any) -> RenderableType:
    """A table cell. Server data is never read as rich markup: strings print as they are,
    other JSON values compactly, ``None`` as a dim dash."""
    if value is None:
        return Text("-", style="dim")
    if isinstance(value, Text):
        return value
    return Text(value if isinstance(value, str) else compact(value))


def table(
    title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]], err: bool = False
) -> None:
    """A rich table on stdout (or stderr)."""
    out = Table(title=title, title_justify="left", header_style="bold")
    for i, col in enumerate(columns):  # the first column (an id or a name) never wraps
        out.add_column(col, overflow="fold", no_wrap=i == 0)
    for row in rows:
        out.add_row(*(cell(c) for c in row))
    console(err=err).print(out)


def fields(pairs: Iterable[tuple[str, Any]]) -> None:
    """``name  value`` lines, names bold; ``None`` and empty values are left out."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    for name, value in pairs:
        if value is not None and value not in ("", []):
            grid.add_row(name, cell(value))
    console().print(grid)


def status(value: str) -> Text:
    """A status, coloured."""
    return Text(value, style=STATUS_STYLE.get(value, "white"))


def when(ms: int | None) -> str | None:
    """Unix ms as local time, ``YYYY-mm-dd HH:MM:SS``."""
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S")


def offset(ms: int | float | None) -> str | None:
    """A duration in ms, short: ``+12ms``, ``+1.25s``, ``+3m04s``, ``+2h05m``."""
    if ms is None:
        return None
    sign = "-" if ms < 0 else "+"
    ms = abs(ms)
    if ms < 1000:
        return f"{sign}{ms:.0f}ms"
    if ms < 60_000:
        return f"{sign}{ms / 1000:.2f}s"
    minutes, seconds = divmod(int(ms // 1000), 60)
    if minutes < 60:
        return f"{sign}{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{sign}{hours}h{minutes:02d}m"


def duration(ms: int | float | None) -> str | None:
    """A duration without its sign: ``12ms``, ``1.25s``, ``3m04s``."""
    text = offset(ms)
    return None if text is None else text[1:]


def compact(value: Any, limit: int = 200) -> str:
    """A JSON value on one line, cut at ``limit`` characters."""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"
