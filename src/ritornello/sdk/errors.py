"""SDK errors.

::

    Exception
    ├── TerminalError          fail without retry: the invocation ends with {code, message}
    │   └── InvocationCancelled   the invocation was cancelled (409), raised where it waited
    └── JournalMismatchError   replay diverged from the journal (answered as journal_mismatch)
    BaseException
    └── Suspended              the SDK ends this attempt here (suspension, checkpoint, failed
                               step); user code must let it through

Any other exception raised by a handler or a step fails the attempt, which the orchestrator
retries with backoff. ``Suspended`` is a ``BaseException`` so that ``except Exception`` in user
code cannot swallow it; even if user code does catch it, the attempt stays ended (the SDK keeps
that state itself, the exception is only the messenger).
"""

from __future__ import annotations


class TerminalError(Exception):
    """Fails the invocation (or a step, a call) without retry.

    ``status_code`` is the HTTP status the ingress answers the caller with (default 500).
    """

    def __init__(self, message: str, status_code: int = 500) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code

    def __repr__(self) -> str:
        return f"TerminalError({self.message!r}, status_code={self.status_code})"


class InvocationCancelled(TerminalError):
    """The invocation was cancelled: raised (once) at the await where it waited, as a
    ``TerminalError("cancelled", 409)``. Inside a fan-out branch, if the branch does not catch
    it, it ends the whole fan-out and is raised where the handler awaits it."""

    def __init__(self) -> None:
        super().__init__("cancelled", status_code=409)


class JournalMismatchError(Exception):
    """The handler's n-th action differs from journal entry n (kind, name, or key).

    The handler is not deterministic, or its code changed under an in-flight invocation. The
    attempt is answered with ``error.kind == "journal_mismatch"`` and no entries.
    """


class Suspended(BaseException):
    """The attempt ends now; the SDK answers the orchestrator.

    ``waiting`` names the journal indices of the incomplete ``call``/``sleep`` entries the
    handler waits on (the orchestrator resumes it when any completes). It is empty when the
    attempt ends for another reason: a checkpoint, or a step that failed.
    """

    def __init__(self, waiting: tuple[int, ...] = ()) -> None:
        super().__init__(f"suspended, waiting on {list(waiting)}" if waiting else "attempt ended")
        self.waiting = waiting
