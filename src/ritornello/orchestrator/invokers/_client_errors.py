"""The errors of our HTTP client (``HttpPool``, ``HttpStream``).

::

    HttpClientError        the server can't be reached, or the exchange broke before a full answer
    ├── AnswerTooLarge     the answer (or a streamed line) passed its byte limit: connection closed
    ├── HttpStatusError    a streamed exchange was answered with another status than 200
    └── StreamHeadTimeout  a streamed request's answer did not even start in time

``Stale`` never leaves the client: the connection died before any answer byte arrived. The pool
sends the request once more on a fresh connection if the dead one was reused, else raises
``HttpClientError``.
"""

from __future__ import annotations

__all__ = ["AnswerTooLarge", "HttpClientError", "HttpStatusError", "Stale", "StreamHeadTimeout"]


class HttpClientError(Exception):
    """The server could not be reached, or the exchange broke before a full answer arrived."""


class AnswerTooLarge(HttpClientError):
    """More than ``limit`` bytes of an answer arrived (of a streamed exchange: since the last
    line read); the connection was closed at once, the rest never read."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"answer larger than {limit:,} bytes")
        self.limit = limit


class HttpStatusError(HttpClientError):
    """A streamed exchange was answered with another status than 200 (its whole body here)."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.headers = headers
        self.body = body


class StreamHeadTimeout(HttpClientError):
    """A streamed request's answer did not even start in time (a buffering proxy, say)."""


class Stale(Exception):
    """The connection died before any answer byte arrived (retryable on a reused connection)."""
