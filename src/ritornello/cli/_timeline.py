"""An invocation's journal drawn as a timeline in the terminal (``invocations show``).

One row per journal entry, in journal order: index, kind, name, the time it was committed as an
offset from the invocation's creation, how long it waited for its completion, a bar on a shared
time scale, and its result or error. The failed attempts (``retries``) follow in their own table.
The bars never wrap: on a narrow terminal they are drawn shorter (``bar_width``), and the
name and result cells wrap instead, so every line fits the terminal (80 columns and up).

Entries written before the orchestrator stamped ``at`` carry no time: their time cells are
empty and the bar is left blank. Nothing here assumes a field exists beyond ``index`` and
``kind``.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text

from ritornello.protocol._entries import WAITING_KINDS

from ._output import FINISHED, compact, console, duration, offset, table

BAR = 32  # characters in the bar column, at most
MIN_BAR = 12  # and at least (on a terminal of 80 columns: 16)
#: Columns the other cells of the journal table leave to its bar and result (see ``bar_width``).
_OTHERS = 64
#: Entry kinds that wait for a completion.
WAITING = WAITING_KINDS


def _failure(failure: Any) -> Text:
    if isinstance(failure, dict):
        return Text(f"{failure.get('code', '')} {failure.get('message', '')}".strip(), style="red")
    return Text(compact(failure), style="red")


def _name(entry: dict[str, Any]) -> str | None:
    kind = entry.get("kind")
    name = entry.get("name") or None
    if kind in ("call", "send") and entry.get("key") is not None:
        name = f"{name} [{entry['key']}]"
    if kind == "sleep" and entry.get("duration_ms") is not None:
        name = duration(entry["duration_ms"])
    if kind in ("awakeable", "complete_awakeable") and entry.get("id"):
        name = entry["id"]
    return name


def outcome(entry: dict[str, Any], live: bool = True) -> Text | None:
    """The entry's result or error: its own value/failure, else its completion's, else (while
    the invocation is ``live``) that it still waits."""
    done = entry.get("completion")
    if "failure" in entry:
        return _failure(entry["failure"])
    if isinstance(done, dict) and "failure" in done:
        return _failure(done["failure"])
    if isinstance(done, dict) and "value" in done:
        return Text(compact(done["value"], 120))
    if entry.get("kind") == "send":
        return Text(f"→ {entry.get('id', '?')}")
    if "value" in entry:
        return Text(compact(entry["value"], 120))
    if entry.get("kind") in WAITING and live:
        return Text("waiting…", style="magenta")
    return None


def _completion_at(entry: dict[str, Any]) -> int | None:
    done = entry.get("completion")
    at = done.get("at") if isinstance(done, dict) else None
    return at if isinstance(at, int) else None


def bar_width(columns: int) -> int:
    """The bar's width on a terminal ``columns`` wide: ``BAR`` where there is room, narrower
    (down to ``MIN_BAR``) where there is not. Bars never wrap: the other cells do."""
    return max(MIN_BAR, min(BAR, columns - _OTHERS))


def _bar(
    start: int | None,
    end: int | None,
    t0: int,
    span: int,
    open_ended: bool,
    style: str = "cyan",
    width: int = BAR,
) -> Text:
    """A dot at ``start`` and a line to ``end`` (or to the right edge when ``open_ended``),
    on a scale ``width`` characters wide."""
    if start is None:
        return Text("")
    scale = (width - 1) / span if span > 0 else 0.0
    first = min(width - 1, max(0, round((start - t0) * scale)))
    last = first
    if end is not None:
        last = min(width - 1, max(first, round((end - t0) * scale)))
    elif open_ended:
        last = width - 1
    bar = Text(" " * first)
    bar.append("●", style=style)
    if last > first:
        bar.append("━" * (last - first), style="dim" if end is None else style)
    bar.append(" " * (width - 1 - last))  # every bar spans the whole scale
    return bar


def draw(inv: dict[str, Any]) -> None:
    """Print the journal and the retries of an invocation (``GET /invocations/{id}``)."""
    journal: list[dict[str, Any]] = inv.get("journal") or []
    retries: list[dict[str, Any]] = inv.get("retries") or []
    t0 = inv.get("created_at") or 0
    stamps = [e.get("at") for e in journal] + [_completion_at(e) for e in journal]
    stamps += [r.get("at") for r in retries] + [inv.get("modified_at")]
    t1 = max([t for t in stamps if isinstance(t, int)], default=t0)
    span = max(t1 - t0, 1)
    finished = inv.get("status") in FINISHED
    width = bar_width(console().width)
    rows = []
    for entry in journal:
        at = entry.get("at") if isinstance(entry.get("at"), int) else None
        end = _completion_at(entry)
        waiting = entry.get("kind") in WAITING and "completion" not in entry and not finished
        rows.append(
            (
                str(entry.get("index", "")),
                entry.get("kind"),
                _name(entry),
                offset(at - t0) if at is not None else None,
                duration(end - at) if end is not None and at is not None else None,
                _bar(at, end, t0, span, waiting, width=width),
                outcome(entry, live=not finished),
            )
        )
    table(
        f"journal ({len(journal)} entries)",
        ["#", "kind", "name", "at", "took", "timeline", "result / error"],
        rows,
        whole=("at", "took", "timeline"),
    )
    if retries:  # on the same time scale as the journal
        failed: list[tuple[Any, ...]] = []
        for r in retries:
            at = r.get("at") if isinstance(r.get("at"), int) else None
            failed.append(
                (
                    str(r.get("attempt", "")),
                    offset(at - t0) if at is not None else None,
                    _bar(at, None, t0, span, False, style="red", width=width),
                    Text(str(r.get("error", "")), style="red"),
                )
            )
        table(
            f"retries ({len(retries)})",
            ["attempt", "at", "timeline", "error"],
            failed,
            whole=("at", "timeline"),
        )
