"""Request headers at the orchestrator's HTTP edges: how many and how large they may be, and
which of them the ingress journals for the handler (``ctx.headers``).

uvicorn's HTTP parser (httptools) reads a request's whole head into memory, with no limit of
its own on its size or on how many headers it holds, and hands them to the app in the ASGI
scope. ``HeaderLimits`` is checked first thing: a request past either limit is answered 431
before its token is checked, its body read or anything stored. The ingress and the admin API
(``ritornello.admin._limits``) apply the same limits (``max_header_bytes``, ``max_headers``).

What is journaled is exactly what a handler sees: the request's headers less those about the
connection and its framing rather than the request (``TRANSPORT``, as Restate's ingress drops
``host``, ``connection`` and the idempotency key, which the invocation keeps in its own
field), the redacted ones holding ``[redacted]`` (``_auth.redact``). So an input entry holds at
most ``max_header_bytes`` of headers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .._config import DEFAULT_MAX_HEADER_BYTES, DEFAULT_MAX_HEADERS
from ._auth import redact

#: Headers not journaled: the connection's and the framing's, and the idempotency key.
TRANSPORT = frozenset(
    {
        b"host",
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"upgrade",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"content-length",
        b"expect",
        b"idempotency-key",
    }
)


@dataclass(frozen=True, slots=True)
class HeaderLimits:
    """At most ``max_count`` request headers of at most ``max_bytes`` together (names and
    values, as the ASGI scope holds them)."""

    max_bytes: int = DEFAULT_MAX_HEADER_BYTES
    max_count: int = DEFAULT_MAX_HEADERS

    def problem(self, headers: Sequence[tuple[bytes, bytes]]) -> str | None:
        """Why ``headers`` (an ASGI scope's) are refused (431), or None. Run on every
        request: a plain loop (a generator costs twice as much)."""
        if len(headers) > self.max_count:
            return (
                f"too many request headers: {len(headers)}, at most {self.max_count} (max_headers)"
            )
        size = 0
        for name, value in headers:
            size += len(name) + len(value)
        if size > self.max_bytes:
            return (
                f"request headers too large: {size} bytes, at most {self.max_bytes} "
                "(max_header_bytes)"
            )
        return None


def handler_headers(headers: Mapping[bytes, bytes], redacted: frozenset[bytes]) -> dict[str, str]:
    """The headers a handler sees, as journaled: ``headers`` (lower-case names) less
    ``TRANSPORT``, each one in ``redacted`` holding ``[redacted]``."""
    return redact(headers, redacted, TRANSPORT)
