"""The harness's errors.

::

    Exception
    ├── HarnessError               the harness cannot do what was asked (the engine refused
    │   │                          it, an unknown target, a crash that never happened, the
    │   │                          engine never became idle)
    │   └── NotFinished            the invocation cannot finish until time passes or something
    │                              arrives from outside (``advance``, resolve an awakeable)
    └── AssertionError
        └── ReplayDivergenceError  a replay diverged from the journal (``check_replay``,
                                   ``ReplayReport.raise_for_divergence``)

A handler's own terminal failure is not a harness error: ``call`` and ``result`` raise it as
the SDK's ``TerminalError`` (code and message), as ``ctx.call`` does in a handler.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._report import ReplayReport
    from ._status import InvocationStatus


class HarnessError(Exception):
    """The harness cannot do what was asked; the message says why."""


class NotFinished(HarnessError):
    """The engine is idle and the invocation has not finished: only time passing or an event
    from outside can move it on. ``status`` says where it stands (suspended on what, backing
    off until when, the last failure)."""

    def __init__(self, status: InvocationStatus) -> None:
        super().__init__(f"{status.invocation_id} has not finished: {status.describe()}")
        self.status = status

    @property
    def invocation_id(self) -> str:
        return self.status.invocation_id


class ReplayDivergenceError(AssertionError):
    """A replay of a journal against the current code diverged; ``report`` says where."""

    def __init__(self, report: ReplayReport) -> None:
        super().__init__(str(report))
        self.report = report
