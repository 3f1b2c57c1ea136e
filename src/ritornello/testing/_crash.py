"""Crash plans: end an invocation's attempt at a chosen journal position, as a dying process
would, so the next attempt must replay.

A plan names one position *N* of one invocation and fires once, on the first answer of the
endpoint that carries entry *N*:

* ``after=N``: entry *N* is committed and the attempt dies right after it. The answer is cut
  to the entries up to *N* and sent on as a ``checkpoint``; whatever the handler did after *N*
  in that attempt is lost, and the orchestrator invokes it again at once with the journal up
  to *N*, which the handler must replay without running any of it again. An answer that ends
  the invocation with *N* as its output has nothing after *N* to lose and is not cut (the
  plan does not fire: the harness says so).
* ``before=N``: the attempt ran up to *N* (a step at *N* executed its function) and died
  before *N* was committed. The answer is cut to the entries before *N* (possibly none) and
  sent on as a ``checkpoint``; the next attempt replays those and runs *N* again
  (at-least-once).

Why a cut ``checkpoint`` and not a failed attempt: it is what the engine does after any lost
attempt, replay from what was committed, without the retry's backoff, so no fake time has to
pass and ``ctx.attempt`` does not grow. Invariant: a plan never adds, changes or reorders an
entry; it only drops the tail of one answer.
"""

from __future__ import annotations

from dataclasses import dataclass

from ritornello.protocol import InvokeRequest, InvokeResponse

from .errors import HarnessError


@dataclass(frozen=True)
class Crash:
    """A crash that happened: of ``invocation_id``, ``point`` (``"after"`` or ``"before"``)
    entry ``index``; ``lost`` entries of that attempt's answer were never committed."""

    invocation_id: str
    point: str
    index: int
    lost: int


class CrashPlan:
    """One crash to come (see the module docstring)."""

    def __init__(self, *, after: int | None = None, before: int | None = None) -> None:
        if (after is None) == (before is None):
            raise HarnessError("a crash needs exactly one of after= and before=")
        index = after if after is not None else before
        assert index is not None
        if isinstance(index, bool) or not isinstance(index, int) or index < 1:
            raise HarnessError(f"a crash position is a journal index >= 1, not {index!r}")
        self.point = "after" if after is not None else "before"
        self.index = index
        self.fired: Crash | None = None

    def __repr__(self) -> str:
        return f"crash_{self.point}={self.index}"

    def cut(self, request: InvokeRequest, answer: InvokeResponse) -> InvokeResponse | None:
        """The answer to send on instead of ``answer``, if this plan fires on it; None to
        send ``answer`` unchanged."""
        if self.fired is not None:
            return None
        start, entries = len(request.journal), answer.entries
        if not start <= self.index < start + len(entries):
            return None  # this answer does not carry entry N
        keep = self.index - start + (1 if self.point == "after" else 0)
        if keep == len(entries) and answer.status == "done":
            return None  # N is the output: nothing after it to lose
        self.fired = Crash(request.id, self.point, self.index, len(entries) - keep)
        return InvokeResponse(status="checkpoint", entries=list(entries[:keep]))
