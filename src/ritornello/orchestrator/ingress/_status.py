"""The HTTP status of each kind of orchestrator error: the ingress and the admin API answer
with it (the engine knows nothing of HTTP)."""

from __future__ import annotations

from ..errors import (
    EndpointError,
    InvalidRequestError,
    NotFoundError,
    OrchestratorError,
    StateConflictError,
    TryAgainError,
)

_STATUS: tuple[tuple[type[OrchestratorError], int], ...] = (
    (InvalidRequestError, 400),
    (NotFoundError, 404),
    (StateConflictError, 409),
    (TryAgainError, 503),
    (EndpointError, 502),
)


def http_status(exc: OrchestratorError) -> int:
    """400, 404, 409, 503 or 502 by the error's kind (500 for one of no known kind)."""
    for kind, status in _STATUS:
        if isinstance(exc, kind):
            return status
    return 500
