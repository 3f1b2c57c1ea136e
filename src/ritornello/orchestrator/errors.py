"""The orchestrator's errors: what it refuses or cannot do, by kind, not by HTTP status.

::

    OrchestratorError           anything the orchestrator refuses or cannot do (message says why)
    ├── InvalidRequestError     malformed, or naming what cannot be (a key on a service, a bad ARN)
    ├── NotFoundError           no such invocation, awakeable, deployment, service or handler
    ├── StateConflictError      not in a state that allows it: finished, already paused or
    │                           completed, a key held, a service kind redeclared
    ├── TryAgainError           not now: the orchestrator is shutting down, leadership is
    │   │                       moving, or another orchestrator leads what was asked for
    │   └── NotLeaderError      another orchestrator leads it (``leader`` names it)
    └── EndpointError           an endpoint failed to answer discovery

The ingress and the admin API map these kinds to HTTP status codes (400, 404, 409, 503, 502);
the engine knows nothing of HTTP. Store failures are the store's own errors
(``ritornello.store.errors``); transport failures to an endpoint are ``InvokerError``.
"""

from __future__ import annotations


class OrchestratorError(Exception):
    """A request the orchestrator refuses or cannot serve; the message says why."""


class InvalidRequestError(OrchestratorError):
    """The request is malformed or names something that cannot be."""


class NotFoundError(OrchestratorError):
    """No such invocation, awakeable, deployment, service or handler."""


class StateConflictError(OrchestratorError):
    """What the request targets is not in a state that allows it."""


class TryAgainError(OrchestratorError):
    """Not now: shutting down, leadership moving, or another orchestrator leads it."""

    def __init__(self, message: str, invocation_id: str | None = None) -> None:
        super().__init__(message)
        #: The invocation the request concerned, when there is one (a client may attach to
        #: it after the restart).
        self.invocation_id = invocation_id


class NotLeaderError(TryAgainError):
    """Another orchestrator leads the partition the request concerns."""


class EndpointError(OrchestratorError):
    """An endpoint did not answer discovery as an endpoint must."""
