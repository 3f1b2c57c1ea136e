"""The invoker seam: how the orchestrator reaches a handler endpoint.

``Invoker`` is to the engine what a transport is to httpx: one interface, several adapters
beside it (HTTP, Lambda's Invoke API, a Function URL, an endpoint in this process) and a fake
for tests. An invoker moves bytes: ``discover`` and ``invoke`` return the endpoint's answers
undecoded, and the engine interprets them (so a garbage answer is the engine's to judge, over
every invoker alike).

Errors: every failure to get an answer (unreachable, refused, non-200, a broken stream, a
payload too large for Lambda) is ``InvokerError``, and every ``InvokerError`` is a failed
attempt, retried by the engine's policy. Invokers never retry on their own, except an HTTP
request resent once when a reused keep-alive connection turns out closed before any answer.

Streamed attempts (docs/protocol.md): an invoker whose endpoint offered them (``offer_stream``)
sets ``streams``; the engine then calls ``open_stream`` and drives the ``InvokeStream``.

Limits: no invoker hands the engine an answer longer than its ``max_answer_bytes`` (an
invocation's answer, or one line of a streamed attempt) or a discovery answer longer than its
``max_discovery_bytes``; a longer one is an ``InvokerError`` naming the setting (``too_large``).
Over HTTP it is counted as it arrives and the connection closed past the limit, so an endpoint
cannot make the orchestrator hold more than that.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

#: Default ``max_answer_bytes``: an invocation's answer, or one streamed line (32 MiB: Lambda
#: caps answers at 6 MiB and the ingress request bodies at 10 MiB).
MAX_ANSWER_BYTES = 32 * 1024 * 1024
#: Default ``max_discovery_bytes``: a discovery answer (4 MiB: names, kinds and retry policies
#: of thousands of handlers).
MAX_DISCOVERY_BYTES = 4 * 1024 * 1024


def too_large(what: str, limit: int, setting: str) -> str:
    """The message of an answer refused for its size."""
    return f"{what} larger than the {setting} limit ({limit:,} bytes, RITORNELLO_{setting.upper()})"


class InvokerError(Exception):
    """The endpoint could not be reached or answered with a non-200 status (retryable)."""


class FunctionError(InvokerError):
    """The function ran and failed (Lambda's ``X-Amz-Function-Error``): ``error_type`` and
    ``error_message`` as its error payload names them (``Runtime.ExitError`` for a crash)."""

    def __init__(self, message: str, error_type: str, error_message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.error_message = error_message


class RefusedStatus(InvokerError):
    """The endpoint answered, with a status other than 200 (``status``): it speaks HTTP."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def throttled(exc: BaseException) -> bool:
    """Whether a failed attempt was throttled (a Lambda's ``TooManyRequestsException``, an
    HTTP endpoint's 429): the orchestrator backs off without counting it as an attempt."""
    return isinstance(exc, ThrottledError) or (isinstance(exc, RefusedStatus) and exc.status == 429)


class ThrottledError(InvokerError):
    """The endpoint refused the attempt for load (throttled, reserved concurrency reached)."""


class InvokeStream(ABC):
    """One streamed attempt: answers in, acknowledgements out (bytes; the engine decodes)."""

    @abstractmethod
    async def next(self, timeout_s: float | None = None) -> bytes:
        """The next answer; InvokerError if the exchange ended or broke first, TimeoutError
        if ``timeout_s`` seconds passed first (a stream bounds its waits itself: cheaper than
        an ``asyncio.timeout`` around every step)."""

    @abstractmethod
    def ack(self) -> None:
        """The last answer (a checkpoint) is committed: the endpoint goes on."""

    @abstractmethod
    def finish(self) -> None:
        """No more acknowledgements: end the exchange cleanly."""

    #: The exchange answered its last line (a checkpoint among them): no ack reaches it.
    ended = False

    @abstractmethod
    def abort(self) -> None:
        """End the exchange now (the endpoint sees the connection close)."""


class Duplex(ABC):
    """One full-duplex exchange (HTTP/2): request bytes out as they come, the answer's bytes
    in as they arrive, before either side has ended."""

    @abstractmethod
    def write(self, data: bytes) -> None:
        """Send ``data`` on the request (queued as flow control allows)."""

    @abstractmethod
    def end(self) -> None:
        """End the request; the answer may go on."""

    @abstractmethod
    async def read(self, timeout_s: float | None = None) -> bytes:
        """The answer's next bytes; ``b""`` once it ended. InvokerError if the exchange broke
        or the answer's status is not 200; TimeoutError after ``timeout_s``."""

    @abstractmethod
    def abort(self) -> None:
        """End the exchange now (idempotent)."""


class Invoker(ABC):
    """Sends one protocol message to an endpoint and returns its answer's bytes."""

    #: Whether ``open_stream`` may be used now (the endpoint offered it and it works).
    streams = False
    #: Whether a stream costs no more than a plain request (a Lambda's checkpoint channel):
    #: every attempt is streamed, not only those of handlers seen checkpointing.
    streams_free = False
    #: Whether it carries another wire protocol than Ritornello's (``speak``, ``invoke_as``).
    carries_others = False
    #: Whether it can reach its endpoint over HTTP/2 (``discover_h2``, ``open_duplex``).
    speaks_h2 = False

    @property
    def contended(self) -> bool:
        """Whether requests wait for a connection: an open stream should give its own up."""
        return False

    def offer_stream(self, offered: bool) -> None:  # noqa: B027 - optional hook
        """The deployment's discovery says whether the endpoint serves streamed attempts."""

    def offer_channel(self, channels: Any) -> None:  # noqa: B027 - optional hook
        """The deployment's discovery says it takes a checkpoint channel (``_channel``): the
        orchestrator's ``Channels``. Only a Lambda invoker uses one."""

    async def open_stream(
        self, service: str, handler: str, body: bytes, *, invocation_id: str = "", attempt: int = 0
    ) -> InvokeStream:
        """Start a streamed attempt with the InvokeRequest ``body`` (of attempt ``attempt`` of
        ``invocation_id``)."""
        raise InvokerError(f"{type(self).__name__} does not stream")

    @abstractmethod
    async def discover(self) -> bytes:
        """Ask the endpoint what it serves: the DiscoveryResponse's bytes, undecoded (the caller
        decodes them, as the engine decodes every answer)."""

    @abstractmethod
    async def invoke(self, service: str, handler: str, body: bytes) -> bytes:
        """POST one InvokeRequest; raise InvokerError on transport failure or non-200."""

    def speak(self, headers: dict[str, str], *, http2: bool = False) -> None:
        """The endpoint speaks another wire protocol: send ``headers`` (its content type)
        with every later request instead of Ritornello's, over HTTP/2 if ``http2``. Only
        HTTP and Lambda carry another protocol; others refuse (``InvokerError``)."""
        raise InvokerError(f"{type(self).__name__} carries only Ritornello's protocol")

    async def discover_h2(self) -> bytes:
        """``discover`` over HTTP/2 (an endpoint that serves nothing else)."""
        raise InvokerError(f"{type(self).__name__} does not speak HTTP/2")

    async def open_duplex(self, service: str, handler: str, headers: dict[str, str]) -> Duplex:
        """Start a full-duplex request to a handler (HTTP/2 only; ``speak(http2=True)``)."""
        raise InvokerError(f"{type(self).__name__} does not speak HTTP/2")

    async def invoke_as(
        self, service: str, handler: str, body: bytes, headers: dict[str, str]
    ) -> bytes:
        """POST one request of another wire protocol (``speak``) with ``headers`` of its own
        (ids); InvokerError as ``invoke``."""
        raise InvokerError(f"{type(self).__name__} carries only Ritornello's protocol")

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
