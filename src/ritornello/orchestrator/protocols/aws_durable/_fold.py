"""The operations of a running execution, folded incrementally: pure, no I/O.

``operations`` folds a whole journal. Between the checkpoints of one run (one Lambda
invocation of an attempt) the adapter needs the operations after every commit, and folding
the whole journal each time makes an execution of n operations cost O(n^2) over its life. A
``Fold`` keeps the operations it folded and how many entries they cover, and folds only what
changed since.

Invariant — ``Fold.update(entries, completions)`` returns exactly what ``operations`` returns
for the same journal (tests/orchestrator/protocols/test_aws_durable_fold.py tries random
sequences of updates of every kind with completions arriving in between). It relies on what
the core guarantees while it drives one invocation, and checks what it cheaply can:

* the journal only grows: a committed answer's entries are appended to the invocation's list
  in place (checked: the same list, no shorter than what was folded);
* completions only arrive: each is fresh, written once (``setdefault`` in memory, first writer
  wins in the store); a grant of a permit is removed only when an attempt ends; a sleep's
  completion held in memory may be set again to its stamped text when committed, which the
  fold does not read (a wait or a retry reads only that its timer completed). Checked: the
  same dict, no fewer completions. So the completions that arrived since the last update are
  the dict's last ones, in insertion order.

A completion that arrived for an entry already folded (a callback completed, a timer fired, a
callee finished) folds that entry's operation again from its own entries (``_apply`` touches
one operation, so the others stand). Anything else — another list or dict (a journal read
again), a shorter journal, fewer completions, a new completion of an entry updating the
EXECUTION operation's own id (``check_types`` refuses such updates now; an older journal may
hold one) — folds from scratch. Cost of an update: the new entries, plus the entries of the
operations a new completion touched.
"""

from __future__ import annotations

from itertools import islice
from typing import Any

from ..._json import loads
from ._operations import UpdateError, _apply, execution_operation

Operations = dict[str, dict[str, Any]]


def check_types(updates: list[dict[str, Any]], operations: Operations, execution_id: str) -> None:
    """Refuse (``UpdateError``) validated ``updates`` that the fold cannot apply: one naming
    an operation of another type (in ``operations``, or earlier in the same checkpoint), or
    naming the EXECUTION operation without being an EXECUTION update. Journaled, such an
    update would break every later fold of the execution (a STEP's details read from a WAIT)."""
    types: dict[str, str] = {}
    for n, update in enumerate(updates):
        op_id, kind = update["Id"], update["Type"]
        if kind == "EXECUTION":
            continue
        known = types.get(op_id) or (operations.get(op_id) or {}).get("Type")
        if op_id == execution_id:
            known = "EXECUTION"
        if known is not None and known != kind:
            raise UpdateError(f"Updates[{n}]: operation {op_id} is of type {known}, not {kind}")
        types[op_id] = kind


class Fold:
    """``operations(execution_id, entries, completions, started_ms)`` of a growing journal.

    ``operations`` is the folded result, updated in place by ``update``: a holder of it (a
    run's ``operations``) sees each update."""

    __slots__ = (
        "_completions",
        "_count",
        "_covered",
        "_entries",
        "_indices",
        "execution_id",
        "operations",
        "refolds",
        "started_ms",
    )

    def __init__(self, execution_id: str, started_ms: int) -> None:
        self.execution_id = execution_id
        self.started_ms = started_ms
        self.operations: Operations = {}
        #: how many times the journal was folded from scratch (the first time included)
        self.refolds = 0
        self._entries: list[str] | None = None
        self._completions: dict[int, str] | None = None
        #: entries folded (the input included); 0: nothing folded yet
        self._covered = 0
        #: completions seen when last updated
        self._count = 0
        #: each operation's entries folded so far (indices in journal order), by its id
        self._indices: dict[str, list[int]] = {}

    def update(self, entries: list[str], completions: dict[int, str]) -> Operations:
        """The operations of ``entries`` and ``completions`` (what ``operations`` gives)."""
        if not self._grown(entries, completions) or not self._completed(entries, completions):
            self._restart(entries, completions)
        for index in range(self._covered, len(entries)):
            self._fold(index, entries[index], completions)
        self._covered = len(entries)
        self._count = len(completions)
        return self.operations

    def _grown(self, entries: list[str], completions: dict[int, str]) -> bool:
        """Whether the journal is the one folded, only grown since."""
        return (
            self._covered > 0
            and entries is self._entries
            and completions is self._completions
            and len(entries) >= self._covered
            and len(completions) >= self._count
        )

    def _completed(self, entries: list[str], completions: dict[int, str]) -> bool:
        """Fold again the operations of folded entries that got a completion since the last
        update (False: one is the EXECUTION operation's id; fold from scratch)."""
        arrived = len(completions) - self._count
        if not arrived:
            return True
        touched: dict[str, None] = {}
        for index in islice(reversed(completions), arrived):
            if not 0 < index < self._covered:
                continue  # not folded yet (folded below with it), or no entry's
            update = loads(entries[index]).get("aws")
            if isinstance(update, dict):
                touched[update["Id"]] = None
        if self.execution_id in touched:
            return False
        for op_id in touched:
            fresh: Operations = {}
            for index in self._indices[op_id]:
                entry = loads(entries[index])
                done = completions.get(index)
                _apply(fresh, entry, entry["aws"], loads(done) if done is not None else None)
            self.operations[op_id] = fresh[op_id]  # in its place: the order stands
        return True

    def _restart(self, entries: list[str], completions: dict[int, str]) -> None:
        """Start again from the journal's input (its first entry)."""
        self.refolds += 1
        self._entries, self._completions = entries, completions
        self._indices = {}
        first = loads(entries[0]) if entries else {}
        self.operations.clear()  # in place: a holder sees the new fold
        self.operations[self.execution_id] = execution_operation(
            self.execution_id, first.get("value"), self.started_ms
        )
        self._covered = 1 if entries else 0

    def _fold(self, index: int, text: str, completions: dict[int, str]) -> None:
        entry = loads(text)
        update = entry.get("aws")
        if not isinstance(update, dict):
            return  # not an operation (a cancellation's marker, say)
        self._indices.setdefault(update["Id"], []).append(index)
        done = completions.get(index)
        _apply(self.operations, entry, update, loads(done) if done is not None else None)
