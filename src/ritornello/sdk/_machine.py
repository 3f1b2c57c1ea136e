"""The replay machine: the journal bookkeeping of one attempt, with no I/O.

The invocation context reports each action the handler takes; the machine gives it its journal
position, checks it against the journal while replaying, collects the new entries, and decides
the answer. It never awaits, reads a clock or touches the network: request in, response out.

Invariants:

- Action *n* (n >= 1; 0 is ``input``) takes position *n*. While *n* is inside the journal the
  action must match entry *n* by kind and name (and key for call/send); otherwise the attempt
  fails with ``journal_mismatch`` and answers no entries at all.
- New entries are contiguous from ``len(journal)``. A step (``run``) reserves its position when
  it starts and its entry is filled when it finishes; only the filled prefix is ever answered,
  so the orchestrator never sees a hole.
- The first ending wins (suspended, checkpoint, done, a handler error). A failed step overrides
  it, because its hole cuts the entries after it, and a mismatch overrides everything.
- Once ended, every further action raises the ending signal and records nothing.
- In a streamed attempt, new entries the orchestrator acknowledged as committed move into the
  journal (:meth:`persisted`); a step stopped before it ran gives its position back, with
  everything after it, and ends the attempt with a checkpoint (:meth:`abandon`).
- A step that failed and will be retried (run options) turns its position into the timer it
  waits on between attempts, cuts everything after it and ends the attempt suspended on that
  timer (:meth:`retry_step`).

Child contexts (docs/sdk.md, fan-out): the branches of ``ctx.map``/``ctx.parallel`` act
concurrently, so their actions cannot share one sequence of positions. Each branch is a
context with its own sequence: action *n* of context *c* matches the *n*-th journal entry
whose ``ctx`` field is *c* (the root's entries have none). Entries keep one global index
(completions name it) and new ones are still appended contiguously, whatever their context.
The context of an action is the :data:`BRANCH` context variable of the task taking it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextvars import ContextVar
from typing import Any

from ritornello.protocol import Completion, Entry, Failure, InvokeRequest, InvokeResponse
from ritornello.protocol._entries import CANCEL_ENTRY, CANCEL_INDEX, WAITING_KINDS
from ritornello.protocol._record import Record
from ritornello.sdk.errors import JournalMismatchError, Suspended

_KEYED_KINDS = frozenset({"call", "send"})
#: The child context whose sequence of positions the current task's actions take ("": the
#: root, the handler itself). Set by the fan-out's branches, inherited by their steps.
BRANCH: ContextVar[str] = ContextVar("ritornello_branch", default="")
#: The failure a cancellation raises (identity marks it: see ``_futures.raise_failure``).
CANCELLED: Failure = {"code": 409, "message": "cancelled"}


class _Ending(Record):
    """How the attempt ends (the answer's status, what it waits on, its error)."""

    _fields = ("status", "waiting", "error")
    __slots__ = _fields
    status: str
    waiting: tuple[int, ...]
    error: dict[str, str] | None

    def __init__(
        self, status: str, waiting: tuple[int, ...] = (), error: dict[str, str] | None = None
    ) -> None:
        self.status = status
        self.waiting = waiting
        self.error = error


def error_response(
    kind: str,
    message: str,
    entries: list[Entry] | None = None,
    *,
    detail: dict[str, str] | None = None,
) -> InvokeResponse:
    """A retryable failure answer; ``detail``: more fields of ``error`` (a mismatch's
    ``index``, ``journal_has`` and ``handler_did``, for tools that read it)."""
    return InvokeResponse(
        status="error",
        entries=entries or [],
        error={"kind": kind, "message": message, **(detail or {})},
    )


def describe(entry: Entry) -> str:
    """An entry as a mismatch message names it: ``run 'charge'``, ``call 'A/b' key='k'``."""
    text = str(entry.get("kind"))
    if entry.get("name"):
        text += f" {entry.get('name')!r}"
    if entry.get("kind") in _KEYED_KINDS:
        text += f" key={entry.get('key')!r}"
    return text


def _same_action(journaled: Entry, action: Entry) -> bool:
    if journaled.get("kind") != action.get("kind"):
        return False
    if (journaled.get("name") or "") != (action.get("name") or ""):
        return False
    return action.get("kind") not in _KEYED_KINDS or journaled.get("key") == action.get("key")


def check_request(request: InvokeRequest) -> str | None:
    """What is wrong with a decoded request beyond its shape, or None."""
    if request.attempt < 1:
        return f"attempt must be >= 1, got {request.attempt}"
    journal = request.journal
    for i, entry in enumerate(journal[1:], start=1):
        if entry.get("kind") == "input":
            return f"journal[{i}] is a second input entry"
        if entry.get("kind") == "output":
            return f"journal[{i}] is an output entry: the invocation is already complete"
    seen: set[int] = set()
    for c in request.completions:
        index = c["index"]
        if index in seen:
            return f"two completions for index {index}"
        seen.add(index)
        if index == CANCEL_INDEX:
            continue  # the cancellation signal
        if not 0 < index < len(journal) or journal[index].get("kind") not in WAITING_KINDS:
            return f"completion for index {index}, which is not a call or sleep entry"
        if ("value" in c) == ("failure" in c):
            return f"completion for index {index} needs exactly one of value and failure"
        failure: Any = c.get("failure")
        if "failure" in c and not (
            isinstance(failure, dict)
            and isinstance(failure.get("code"), int)
            and isinstance(failure.get("message"), str)
        ):
            return f"completion for index {index}: failure must be {{code: int, message: str}}"
    return None


class _Cursor:
    """One context's place in the journal: the indices of its journaled entries, and how
    many actions it took in this attempt (past the first ones: new entries)."""

    __slots__ = ("journaled", "taken")

    def __init__(self, journaled: list[int]) -> None:
        self.journaled = journaled
        self.taken = 0


class Machine:
    """Journal positions, replay checks, new entries and the ending of one attempt."""

    def __init__(self, request: InvokeRequest, *, always_replay: bool = False) -> None:
        self._journal = list(request.journal)
        self._completions = {c["index"]: c for c in request.completions}
        # positions of decisions journaled in this attempt and not persisted yet
        self._decisions: list[int] = []
        self._cancel_raised = any(e.get("name") == CANCEL_ENTRY for e in self._journal)
        self._always_replay = always_replay
        #: per context, its cursor: the global indices of its journaled entries (input
        #: excluded), in order, and how many actions it took in this attempt
        contexts = [entry.get("ctx") for entry in self._journal]
        if not any(contexts):  # (the usual journal: the handler's own entries only)
            self._root = _Cursor(list(range(1, len(contexts))))
            self._cursors: dict[str, _Cursor] = {}
        else:
            indices: dict[str, list[int]] = {}
            for i, branch in enumerate(contexts[1:], start=1):
                indices.setdefault(str(branch or ""), []).append(i)
            self._root = _Cursor(indices.pop("", []))
            self._cursors = {branch: _Cursor(at) for branch, at in indices.items()}
        #: the contexts of the holes reserved by branches' steps, by index
        self._hole_contexts: dict[int, str] = {}
        self._new: list[Entry | None] = []
        self._ending: _Ending | None = None
        self._step_failure: str | None = None
        self._mismatch: str | None = None
        self._mismatch_detail: dict[str, str] = {}
        self._abandoned = False

    # -- reading -------------------------------------------------------------------------------

    @property
    def unpersisted_decision(self) -> bool:
        """A decision was journaled in this attempt that a replay could not reproduce by
        itself (an awakeable id, a select choice) and is not persisted yet: no step may start
        before it is."""
        return bool(self._decisions)

    def decided(self, index: int) -> None:
        """The new entry at ``index`` is such a decision."""
        self._decisions.append(index)

    @property
    def input(self) -> Any:
        """The handler's input (the value of journal entry 0)."""
        return self._journal[0].get("value")

    def _cursor(self) -> _Cursor:
        """The current context's cursor (made on first use)."""
        branch = BRANCH.get()
        if not branch:
            return self._root
        cursor = self._cursors.get(branch)
        if cursor is None:
            cursor = self._cursors[branch] = _Cursor([])
        return cursor

    @property
    def next_index(self) -> int:
        """The position the next action of the current context will take."""
        cursor = self._cursor()
        if cursor.taken < len(cursor.journaled):
            return cursor.journaled[cursor.taken]
        return len(self._journal) + len(self._new)

    @property
    def replaying(self) -> bool:
        """Whether the current context's next action replays a journaled entry."""
        cursor = self._cursor()
        return cursor.taken < len(cursor.journaled)

    def peek(self) -> Entry | None:
        """The journaled entry the current context's next action will replay, if any."""
        cursor = self._cursor()
        if cursor.taken < len(cursor.journaled):
            return self._journal[cursor.journaled[cursor.taken]]
        return None

    def journaled_in(self, branch: str) -> list[Entry]:
        """The journaled entries of context ``branch``, in order."""
        cursor = self._cursors.get(branch) if branch else self._root
        return [self._journal[i] for i in cursor.journaled] if cursor is not None else []

    @property
    def journal_length(self) -> int:
        """How many entries the request's journal holds (positions below it replay)."""
        return len(self._journal)

    @property
    def ended(self) -> bool:
        """Whether the attempt is over: no action may record anything any more."""
        return (
            self._ending is not None or self._step_failure is not None or self._mismatch is not None
        )

    def completion(self, index: int) -> Completion | None:
        """The completion of the waiting entry at ``index``, if the request carries one."""
        return self._completions.get(index)

    # -- actions -------------------------------------------------------------------------------

    def signal(self) -> BaseException:
        """The exception that ends the handler's flow now that the attempt is over."""
        if self._mismatch is not None:
            return JournalMismatchError(self._mismatch)
        if self._ending is not None and self._ending.status == "suspended":
            return Suspended(self._ending.waiting)
        return Suspended()

    def check_open(self) -> None:
        """Raise the ending signal if the attempt is over."""
        if self.ended:
            raise self.signal()

    def record(self, action: Entry, *, final: bool = False) -> tuple[int, Entry | None]:
        """Take the next position for a complete ``action``.

        Returns ``(index, journaled)``: the journal's entry while replaying (after checking it
        matches), else None and the action becomes a new entry. In always-replay mode a new
        entry (other than the ``final`` output) ends the attempt with a checkpoint.
        """
        index, journaled = self._take(action)
        if journaled is None:
            self._new.append(action)
            if self._always_replay and not final:
                raise self.checkpoint()
        return index, journaled

    def reserve(self, action: Entry) -> tuple[int, Entry | None]:
        """Take the next position for a step whose entry is not known yet.

        Returns ``(index, journaled)`` like :meth:`record`; when not replaying, the position
        stays a hole until :meth:`fill` or :meth:`fail_step`.
        """
        index, journaled = self._take(action)
        if journaled is None:
            self._new.append(None)
            if "ctx" in action:
                self._hole_contexts[index] = action["ctx"]
        return index, journaled

    def after_new_entry(self) -> None:
        """In always-replay mode, end the attempt with a checkpoint (a step just started)."""
        if self._always_replay:
            raise self.checkpoint()

    def fill(self, index: int, entry: Entry) -> None:
        """Journal the result of the step that reserved ``index`` (dropped if an abandoned
        step before it gave the position back)."""
        slot = index - len(self._journal)
        if slot >= len(self._new) and self._abandoned:
            return
        if not 0 <= slot < len(self._new) or self._new[slot] is not None:
            raise RuntimeError(f"no step reserved index {index}")
        self._new[slot] = self._in_context(index, entry)

    def _in_context(self, index: int, entry: Entry) -> Entry:
        """``entry`` for the hole at ``index``, in the context that reserved it."""
        branch = self._hole_contexts.pop(index, None)
        if branch is not None:
            entry["ctx"] = branch
        return entry

    # -- streamed attempts ---------------------------------------------------------------------

    def reserved(self, index: int) -> bool:
        """Whether position ``index`` is a new entry of this attempt (not given back)."""
        return 0 <= index - len(self._journal) < len(self._new)

    def unsent(self, index: int) -> list[Entry] | None:
        """The new entries before position ``index`` that can be sent now: the filled ones up
        to the first step still executing. None when a filled entry lies beyond that step
        (it cannot be sent before the hole is filled)."""
        ahead = self._new[: index - len(self._journal)]
        for cut, entry in enumerate(ahead):
            if entry is None:
                if any(e is not None for e in ahead[cut:]):
                    return None
                return ahead[:cut]  # type: ignore[return-value]  # no None before cut
        return ahead  # type: ignore[return-value]  # no None in it

    def persisted(self, count: int) -> None:
        """The first ``count`` new entries are committed: they are journal from now on."""
        done = self._new[:count]
        if any(entry is None for entry in done):
            raise RuntimeError("only filled entries can be persisted")
        self._journal.extend(done)  # type: ignore[arg-type]  # no None in it
        del self._new[:count]
        self._decisions = [i for i in self._decisions if i >= len(self._journal)]

    def abandon(self, index: int) -> BaseException:
        """The step that reserved ``index`` will not run: drop its position and everything
        after it, and end the attempt with a checkpoint (overriding any other ending but a
        mismatch: the entries it answered are gone). Returns the signal to raise."""
        del self._new[max(0, index - len(self._journal)) :]
        self._abandoned = True
        if self._mismatch is None:
            self._ending = _Ending("checkpoint")
        return self.signal()

    def _take(self, action: Entry) -> tuple[int, Entry | None]:
        self.check_open()
        cursor = self._cursor()
        taken = cursor.taken
        cursor.taken = taken + 1
        if taken < len(cursor.journaled):
            index = cursor.journaled[taken]
            journaled = self._journal[index]
            if not _same_action(journaled, action):
                branch = BRANCH.get()
                where = f" (in child context {branch})" if branch else ""
                has, did = describe(journaled), describe(action)
                self._mismatch = (
                    f"journal mismatch at index {index}{where}: the journal has {has}, "
                    f"the handler did {did}"
                )
                self._mismatch_detail = {
                    "index": str(index),
                    "journal_has": has,
                    "handler_did": did,
                }
                raise JournalMismatchError(self._mismatch)
            return index, journaled
        if cursor is not self._root:
            action["ctx"] = BRANCH.get()
        return len(self._journal) + len(self._new), None

    def replayed_cancel(self, indices: Iterable[int]) -> Failure | None:
        """While replaying: the failure to raise again if the journal says a cancellation was
        raised here, at an await of one of ``indices`` (a ``ctx.cancelled`` run entry naming
        it); the entry is consumed. Past the journal's end, or elsewhere: None."""
        entry = self.peek()
        if entry is not None and (
            entry.get("name") == CANCEL_ENTRY and entry.get("value") in set(indices)
        ):
            self.record({"kind": "run", "name": CANCEL_ENTRY})
            return CANCELLED
        return None

    def cancel_point(self, index: int) -> Failure | None:
        """Where the handler would wait on entry ``index``: the failure to raise if the
        invocation is cancelled here, else None.

        Deterministic: replay raises it exactly where the journal says it was raised; past the
        journal's end it is raised (once per invocation), and journaled, when the signal is
        present and ``index`` has no result."""
        replayed = self.replayed_cancel((index,))
        if replayed is not None or self.replaying:
            return replayed
        if (
            CANCEL_INDEX in self._completions
            and index not in self._completions
            and not self._cancel_raised
        ):
            self._cancel_raised = True  # once: compensations may then await as usual
            self.record({"kind": "run", "name": CANCEL_ENTRY, "value": index})
            return CANCELLED
        return None

    # -- endings -------------------------------------------------------------------------------

    def diverge(self, index: int, message: str) -> JournalMismatchError:
        """Fail the attempt with ``journal_mismatch`` for a divergence that matching by kind and
        name cannot see (a journaled ``select`` choice the handler's code cannot honour any
        more). Like any mismatch, the answer carries no entries. Returns the error to raise."""
        if self._mismatch is None:
            self._mismatch = f"journal mismatch at index {index}: {message}"
            self._mismatch_detail = {"index": str(index)}
        return JournalMismatchError(self._mismatch)

    def suspend(self, waiting: Sequence[int]) -> BaseException:
        """End the attempt waiting on ``waiting``; returns the signal to raise. A second
        suspension of the same attempt (another branch) adds its indices."""
        if not self.ended:
            self._ending = _Ending("suspended", waiting=tuple(sorted(set(waiting))))
        elif (
            self._ending is not None
            and self._ending.status == "suspended"
            and not (self._step_failure or self._mismatch)
        ):
            merged = tuple(sorted(set(self._ending.waiting).union(waiting)))
            self._ending = _Ending("suspended", waiting=merged)
        return self.signal()

    def retry_step(self, index: int, timer: Entry) -> None:
        """The step that reserved ``index`` failed and will be tried again after a durable
        timer: ``timer`` (a ``sleep`` entry) takes its position, every new entry after it is
        cut (the next attempt redoes them after the replay), and the attempt ends suspended
        on the timer. The lowest such step wins; a mismatch or a crashed step overrides it.
        Ignored for a position already given back."""
        slot = index - len(self._journal)
        if not 0 <= slot < len(self._new) or self._mismatch is not None:
            return
        self._new[slot] = self._in_context(index, timer)
        del self._new[slot + 1 :]
        self._abandoned = True  # fills of steps after it are dropped
        self._ending = _Ending("suspended", waiting=(index,))

    def checkpoint(self) -> BaseException:
        """End the attempt so the new entries are persisted; returns the signal to raise."""
        if not self.ended:
            self._ending = _Ending("checkpoint")
        return self.signal()

    def finish(self, output: Entry) -> None:
        """The handler returned (or raised TerminalError): record its ``output`` entry."""
        self.record(output, final=True)
        self._ending = _Ending("done")

    def fail_handler(self, message: str) -> None:
        """The handler raised a retryable exception (ignored if the attempt already ended)."""
        if not self.ended:
            self._ending = _Ending("error", error={"kind": "handler", "message": message})

    def fail_step(self, message: str) -> None:
        """A step raised a retryable exception: its position stays a hole, the attempt fails."""
        if self._step_failure is None:
            self._step_failure = message

    # -- answer --------------------------------------------------------------------------------

    def response(self) -> InvokeResponse:
        """The answer for this attempt. Call it once every started step has finished."""
        if self._mismatch is not None:
            return error_response("journal_mismatch", self._mismatch, detail=self._mismatch_detail)
        entries: list[Entry] = []
        for entry in self._new:
            if entry is None:
                break
            entries.append(entry)
        if self._step_failure is not None:
            return error_response("handler", self._step_failure, entries)
        if len(entries) < len(self._new):
            return error_response("handler", "a step did not finish", entries)
        ending = self._ending
        if ending is None:
            return error_response("handler", "the handler ended without an answer", entries)
        if ending.status == "error":
            return InvokeResponse(status="error", entries=entries, error=ending.error)
        return InvokeResponse(status=ending.status, entries=entries, waiting=list(ending.waiting))
