"""Bearer tokens and header redaction for the orchestrator's HTTP edges (docs/auth.md).

Invariants:

* A token is compared in constant time (``hmac.compare_digest``) and never logged or echoed.
* ``redact`` runs before anything is journaled: a redacted header's value never reaches the
  store, only the marker ``[redacted]`` does (so an operator sees that it was sent).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

__all__ = [
    "REDACTED",
    "UNAUTHORIZED_HEADERS",
    "BearerToken",
    "authorization",
    "redact",
    "redact_names",
    "send_unauthorized",
]

REDACTED = "[redacted]"
#: The headers of every 401 (RFC 6750).
UNAUTHORIZED_HEADERS = ((b"www-authenticate", b'Bearer realm="ritornello"'),)


class BearerToken:
    """One expected bearer token; ``matches(Authorization header value)``."""

    __slots__ = ("_expected",)

    def __init__(self, token: str) -> None:
        if not token:
            raise ValueError("a bearer token must not be empty")
        self._expected = b"Bearer " + token.encode("utf-8")

    def __repr__(self) -> str:
        return "BearerToken(<token>)"

    def matches(self, authorization: bytes | str | None) -> bool:
        """Whether ``authorization`` is ``Bearer <the token>`` (scheme case-insensitive)."""
        if authorization is None:
            return False
        given = authorization.encode("latin-1") if isinstance(authorization, str) else authorization
        if given[:7].lower() == b"bearer ":
            given = b"Bearer " + given[7:].strip()
        return hmac.compare_digest(given, self._expected)


def redact(
    headers: Mapping[bytes, bytes],
    names: frozenset[bytes],
    drop: frozenset[bytes] = frozenset(),
) -> dict[str, str]:
    """Request headers as text (lower-case names), each one in ``names`` replaced by
    ``[redacted]``, those in ``drop`` left out. ``names`` and ``drop`` are lower-case bytes;
    ``headers`` keys lower-case already."""
    return {
        k.decode("latin-1"): REDACTED if k in names else v.decode("latin-1")
        for k, v in headers.items()
        if k not in drop
    }


def redact_names(names: Iterable[str]) -> frozenset[bytes]:
    """Setting names -> the lower-case bytes ``redact`` takes."""
    return frozenset(n.strip().lower().encode("latin-1") for n in names if n.strip())


def authorization(scope: Mapping[str, Any]) -> bytes | None:
    """The ``Authorization`` header of an ASGI HTTP scope (names are lower-case in ASGI)."""
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            return bytes(value)
    return None


async def send_unauthorized(send: Callable[[dict[str, Any]], Awaitable[None]], body: bytes) -> None:
    """A complete 401 answer with ``WWW-Authenticate: Bearer`` and a JSON ``body``."""
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *UNAUTHORIZED_HEADERS,
    ]
    await send({"type": "http.response.start", "status": 401, "headers": headers})
    await send({"type": "http.response.body", "body": body})
