"""What the core holds for an invocation while it is driven here (loaded, attempting, or
committing an answer).

Invariants:

* ``entries`` are the journal as committed (``rec.journal_len`` of them), in order; the core
  appends an answer's entries only once its unit is committed.
* ``completions`` hold every completion committed for this invocation that reached this
  process, by entry index (first writer wins, as in the store), plus the completions of sleeps
  whose timers fired and woke it (``deferred``): those are committed with its next unit.
* ``state`` is the object key's user state as committed (None: not read yet; only an
  exclusive holder writes it, so it stays true while this invocation holds the key);
  ``promises`` (workflows only) is re-read before each attempt.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ritornello.protocol._entries import WAITING_KINDS
from ritornello.store.records import InvocationRecord, TimerRecord

from .._json import loads


@dataclass(slots=True)
class Invocation:
    """An invocation as its driver sees it (the record plus its journal)."""

    rec: InvocationRecord
    entries: list[str]
    completions: dict[int, str]
    #: indices of entries that wait for a completion (calls, sleeps, awakeables, promises)
    waitable: set[int]
    state: dict[str, str] | None = None
    promises: dict[str, str] | None = None  # workflows: resolved promises, name -> result
    #: Completions may have landed while the driver was loading: read them again before the
    #: next attempt (and do not suspend until then).
    reload: bool = False
    #: The last request carried the cancellation signal.
    cancel_sent: bool = False
    #: A workflow's state rows were read for the coming attempt (they are read before each).
    rows_read: bool = False
    #: Timers removed from the store with the next unit this invocation commits: the retry
    #: or sleep timer that woke it.
    timer_removals: list[TimerRecord] = field(default_factory=list)
    #: Sleep timers that fired and woke this invocation with their completion held only here
    #: (in ``completions``, not yet in the store): the next unit carries those completions,
    #: with the timers themselves in ``timer_removals``.
    deferred: list[TimerRecord] = field(default_factory=list)
    #: Open permits (docs/limits.md): the index of each ``permit`` entry whose step is not
    #: journaled yet, and its limit (waiting for the permit, or holding it).
    permits: dict[int, str] = field(default_factory=dict)

    @classmethod
    def from_journal(
        cls, rec: InvocationRecord, entries: list[str], completion_texts: list[str]
    ) -> Invocation:
        """The invocation ``rec`` with its journal as the store holds it."""
        waitable = {i for i, e in enumerate(entries) if loads(e)["kind"] in WAITING_KINDS}
        completions = {loads(c)["index"]: c for c in completion_texts}
        return cls(rec, entries, completions, waitable, permits=open_permits(entries))

    @classmethod
    def created(cls, rec: InvocationRecord, input_entry: str) -> Invocation:
        """A new invocation: its journal is its input entry, nothing completed yet."""
        return cls(rec, [input_entry], {}, set())


def permit_of(entry: Any, index: int) -> int:
    """The index of the permit entry the limited step entry at ``index`` gives back: its
    ``permit`` field (a fan-out branch's step may be far from its permit), else the entry
    just before it."""
    permit = entry.get("permit")
    return permit if type(permit) is int and 0 < permit < index else index - 1


def open_permits(entries: list[str]) -> dict[int, str]:
    """The open permits of a journal (as stored): ``permit`` entries whose step is not
    journaled after them."""
    found: dict[int, str] = {}
    for i, text in enumerate(entries):
        if '"permit"' not in text and '"limit"' not in text:
            continue  # most entries: no need to parse
        entry = loads(text)
        if entry.get("kind") == "permit":
            found[i] = entry.get("instance") or entry.get("name", "")
        elif entry.get("kind") in ("run", "sleep") and "limit" in entry:
            found.pop(permit_of(entry, i), None)
    return found
