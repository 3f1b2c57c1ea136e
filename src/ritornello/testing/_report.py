"""What a replay found: ``ReplayReport``, and ``Divergence`` when the code and the journal part.

Actions are named as the SDK's journal mismatches name them (docs/sdk.md, "Replay"): the kind,
the name quoted, the key of a call or send (``run 'charge'``, ``call 'Counter/add' key='a'``,
``output``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import ReplayDivergenceError


@dataclass(frozen=True)
class Divergence:
    """Where a replay left the journal.

    ``kind``: ``mismatch`` (the handler's action at ``index`` is not the journal's: what the
    SDK answers as ``journal_mismatch``), ``error`` (the handler raised while replaying;
    ``index`` is None), or ``output`` (it finished where the journal did, with another
    result: ``check_replay`` only)."""

    kind: str
    index: int | None
    #: the journal's entry at ``index``
    journal_has: str | None
    #: what the handler did there
    handler_did: str
    #: the SDK's own words, when it said something
    message: str = ""

    def __str__(self) -> str:
        if self.kind == "error":
            return f"the handler failed while replaying: {self.handler_did}"
        return (
            f"at journal index {self.index} the journal has {self.journal_has}, "
            f"the handler did {self.handler_did}"
        )


@dataclass(frozen=True)
class ReplayReport:
    """The outcome of replaying one invocation's journal against the current code."""

    invocation_id: str
    #: ``Service/handler``
    target: str
    key: str | None
    #: entries in the journal replayed against, the input (and output) included
    journal_length: int
    #: whether that journal ended with the invocation's output
    finished: bool
    #: None: the code did what the journal says, action for action
    divergence: Divergence | None
    #: past the end of an unfinished journal: what the code would do next (``run 'ship'``,
    #: ``output``, ``wait on entries [3]``), computed without running it; None otherwise
    next: str | None = None
    #: ``check_replay``: the output the replay produced (``{"value"}``/``{"failure"}``)
    output: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        """Whether the replay followed the journal to its end."""
        return self.divergence is None

    def raise_for_divergence(self) -> ReplayReport:
        """Raise ``ReplayDivergenceError`` if the replay diverged; else return self."""
        if self.divergence is not None:
            raise ReplayDivergenceError(self)
        return self

    def __str__(self) -> str:
        who = f"{self.target}" + (f" (key {self.key!r})" if self.key is not None else "")
        head = f"replay of {self.invocation_id} {who}, {self.journal_length} journal entries"
        if self.divergence is not None:
            return f"{head}: diverged {self.divergence}"
        if self.finished:
            return f"{head}: replayed cleanly to its output"
        return f"{head}: replayed cleanly; next it would do {self.next}"
