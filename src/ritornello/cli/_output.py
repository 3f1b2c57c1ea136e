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

from rich import box
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


#: Below this terminal width (in columns) tables drop their borders, as the limits table does,
#: and the widest listings leave out secondary columns, so every line fits 80 columns.
NARROW = 100


def narrow(err: bool = False) -> bool:
    """Whether the terminal (``COLUMNS``, else its real size) is narrower than ``NARROW``."""
    return console(err=err).width < NARROW


def table(
    title: str | None,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    err: bool = False,
    whole: Iterable[str] = (),
) -> None:
    """A rich table on stdout (or stderr), never wider than the terminal: cells wrap instead.

    The first column (an id or a name) and the ``whole`` ones (statuses, times, bars: short
    cells that a break would make unreadable) never wrap; the others wrap at spaces and fold a
    word longer than their width. A header never breaks inside a word. On a narrow terminal
    (``narrow()``) the table has no borders, only a rule under its header."""
    keep = {columns[0], *whole} if columns else set(whole)
    options: dict[str, Any] = {}
    if narrow(err):
        options = {"box": box.SIMPLE_HEAVY, "show_edge": False, "pad_edge": False}
        options["padding"] = (0, 1, 0, 0)
    out = Table(title=title, title_justify="left", header_style="bold", **options)
    for col in columns:
        out.add_column(
            col,
            overflow="fold",
            no_wrap=col in keep,
            min_width=max((len(word) for word in col.split()), default=1),
        )
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


def when(ms: int | None, short: bool = False) -> str | None:
    """Unix ms as local time, ``YYYY-mm-dd HH:MM:SS`` (``short``: ``mm-dd HH:MM``)."""
    if ms is None:
        return None
    pattern = "%m-%d %H:%M" if short else "%Y-%m-%d %H:%M:%S"
    return datetime.fromtimestamp(ms / 1000).strftime(pattern)


#: The statuses of a finished invocation as the admin API shows them (``completed``: a
#: server from before succeeded/failed).
FINISHED = frozenset({"succeeded", "failed", "completed", "killed"})


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
