"""What the ingress accepts: bodies, delays, keys and idempotency keys, checked before anything
is stored (guarantee 5: bad input gets a clear 4xx and changes nothing)."""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from .._json import JsonInputError, json_input
from .._keys import CONTROL

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)")
_ISO = re.compile(r"P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?", re.I)
_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
#: The longest ``?delay=`` accepted (1000 years of 365.25 days): due times stay far inside
#: a 64-bit integer and a datetime in every store and view, and a longer one is a client bug.
MAX_DELAY_MS = 365_250 * 86_400_000


#: An ASGI ``receive``.
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]


async def read_body(
    receive: Receive,
    limit: int,
    too_large: Callable[[], Exception],
    gone: Callable[[], Exception] | None = None,
) -> bytes:
    """The whole request body. Raises ``too_large()`` as soon as it passes ``limit`` bytes (so
    a large body is never held whole) and ``gone()`` when the client disconnects first; without
    ``gone``, a disconnect ends the body there."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if gone is not None and message["type"] == "http.disconnect":
            raise gone()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise too_large()
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


class HttpError(Exception):
    """An ingress answer other than success."""

    def __init__(self, status: int, message: str, invocation_id: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.invocation_id = invocation_id


def parse_delay(raw: str, what: str = "delay") -> int:
    """Milliseconds from ``10s``, ``500ms``, ``1m30s``, ``PT10S``, ``P1DT2H``; at most
    ``MAX_DELAY_MS`` (a longer, negative or non-finite delay is a 400, never a store error).
    ``what`` names it in the messages (``delay``, ``debounce``)."""
    text = raw.strip()
    if len(text) > 64:
        raise HttpError(400, f"invalid {what}: longer than 64 characters")
    if text.upper().startswith("P"):
        m = _ISO.fullmatch(text)
        if m and any(m.groups()) and not text.upper().endswith("T"):
            d, h, mi, s = (float(g) if g else 0.0 for g in m.groups())
            return _finite_ms(raw, ((d * 24 + h) * 60 + mi) * 60_000 + s * 1000, what)
    else:
        pos, total, found = 0, 0.0, False
        for m in _DURATION.finditer(text):
            if m.start() != pos or text[pos : m.start()].strip():
                break
            total += float(m.group(1)) * _UNITS_MS[m.group(2)]
            pos, found = m.end(), True
            while pos < len(text) and text[pos] == " ":
                pos += 1
        else:
            if found and pos == len(text):
                return _finite_ms(raw, total, what)
    raise HttpError(400, f"invalid {what} {raw!r}: use e.g. 10s, 500ms, 1m30s or PT10S")


def _finite_ms(raw: str, total: float, what: str) -> int:
    if not math.isfinite(total) or total > MAX_DELAY_MS:
        raise HttpError(400, f"{what} {raw!r} is longer than the maximum of 1000 years")
    return int(total)


def json_text(body: bytes) -> str:
    """A request body as JSON text to embed in a journal entry (empty: null); 400 if it fails
    the engine's one check of values from outside (``_json.json_input``)."""
    if not body.strip():
        return "null"
    try:
        return json_input(body, "body")
    except JsonInputError as exc:
        raise HttpError(400, str(exc)) from None


def idempotency_key(headers: dict[bytes, bytes]) -> str | None:
    """The ``Idempotency-Key`` header as text: UTF-8 (strict: two different invalid byte
    strings must never become the same key), not blank, no control characters."""
    raw = headers.get(b"idempotency-key")
    if raw is None:
        return None
    try:
        idem = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise HttpError(400, "Idempotency-Key is not valid UTF-8") from None
    if not idem.strip():
        raise HttpError(400, "Idempotency-Key must not be empty")
    if CONTROL.search(idem):
        raise HttpError(400, "Idempotency-Key must not contain control characters")
    return idem


def check_priority(headers: dict[bytes, bytes]) -> None:
    """``x-ritornello-priority``, if sent, is a whole number from 0 to 10 (docs/limits.md):
    journaled with the input's headers, it orders the invocation's waits for permits."""
    raw = headers.get(b"x-ritornello-priority")
    if raw is not None and not (raw.isdigit() and len(raw) <= 2 and int(raw) <= 10):
        raise HttpError(
            400, "x-ritornello-priority must be a whole number from 0 to 10 (default 5)"
        )


def json_content_type(headers: dict[bytes, bytes]) -> bool:
    """Whether the body may be read as JSON: a JSON media type, or none at all from a client
    that is not a browser.

    A browser's request (every POST a browser sends carries ``Origin``; fetch metadata adds
    ``Sec-Fetch-Mode``) must say it is JSON. One without a content type is a "simple" request
    that needs no CORS preflight: any page a visitor opens could send it to an ingress on
    their machine. A JSON content type needs a preflight, and the ingress allows none."""
    ct = headers.get(b"content-type")
    if ct is None:
        return b"origin" not in headers and b"sec-fetch-mode" not in headers
    media = ct.split(b";")[0].strip().lower()
    return media in (b"application/json", b"text/json") or media.endswith(b"+json")


def not_json(headers: dict[bytes, bytes]) -> HttpError:
    """The 415 for a body ``json_content_type`` refused."""
    ct = headers.get(b"content-type")
    if ct is None:
        return HttpError(
            415, "a browser's request must send content-type: application/json (none was sent)"
        )
    shown = ct.decode("latin-1")
    return HttpError(415, f"content-type {shown!r} is not JSON; send application/json")


#: Content types a browser sends without a CORS preflight ("simple" requests), and none.
_SIMPLE_MEDIA = frozenset(
    {b"application/x-www-form-urlencoded", b"multipart/form-data", b"text/plain"}
)


def raw_content_type(headers: dict[bytes, bytes]) -> None:
    """A raw-bytes handler takes any content type, except from a browser one a page could
    send without a preflight (none, a form, text/plain): the same guard as
    ``json_content_type``, so no page a visitor opens can invoke it on their machine."""
    if b"origin" not in headers and b"sec-fetch-mode" not in headers:
        return
    ct = headers.get(b"content-type")
    if ct is None or ct.split(b";")[0].strip().lower() in _SIMPLE_MEDIA:
        shown = "none was sent" if ct is None else repr(ct.decode("latin-1"))
        raise HttpError(
            415,
            "a browser's request to a raw handler must send a content type that needs a "
            f"preflight, e.g. application/octet-stream ({shown})",
        )


def raw_text(body: bytes) -> str:
    """A raw body as JSON text to embed in a journal entry: the base64 string of its bytes."""
    return '"' + base64.b64encode(body).decode("ascii") + '"'


def raw_output(value: object) -> bytes | None:
    """The bytes of a raw handler's journaled output (base64 text; null is empty), or None
    when it is not base64 (then it is answered as JSON)."""
    if value is None:
        return b""
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:
        return None
