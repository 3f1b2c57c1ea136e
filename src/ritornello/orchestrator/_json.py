"""Fast JSON for the orchestrator's hot path (orjson), producing the same JSON the protocol's
standard-library codec reads, and the one check every value entering the engine passes.

orjson reads an integer past 64 bits as a float (``2**64`` comes back ``1.8446744073709552e+19``):
anything the orchestrator parses and writes again would change silently. ``check_int64`` finds
such integers in raw JSON (cheaply: it parses again only when a run of 19+ digits is present) so
that the ingress refuses them (400) and an endpoint's answer carrying one is a failed attempt
with a clear message, never a stored float.

``json_input`` is that one check, for every way a value enters from outside: ingress bodies
and awakeable resolutions, schedule inputs, state writes, the CLI's arguments (docs/orchestrator.md,
"Bad input"). A value passes if orjson reads it (strict: no ``NaN``, no infinities such as
``1e999``, UTF-8 with no lone surrogates), its integers fit in 64 bits and it nests at most
``MAX_JSON_DEPTH`` levels. ``json_input_of`` is the same check for a value already parsed by the
standard library (FastAPI's bodies, the CLI), which reads ``NaN`` and ``1e999`` as floats and
``"\\ud800"`` as a lone surrogate: it writes the value out and checks that text, refusing what
has no JSON text. Invariant: a text ``json_input`` returned is stored and sent as is, and the
standard library, orjson and every Restate SDK read it back as the same value.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

#: 19 digits or more: an integer that may not fit in 64 bits (or digits inside a string).
_LONG_DIGITS = re.compile(rb"\d{19,}")
#: How deep a JSON value from outside may nest. orjson reads 1024 levels, but the handler side
#: parses with the standard library (about 1000, fewer inside a call stack) and the admin API's
#: pydantic serializer stops near 255 levels of its whole response, the journal's own nesting
#: included: a deeper value would be accepted and then fail every attempt or break the admin
#: views (a schedule listing, a state read).
MAX_JSON_DEPTH = 128


class JsonInputError(ValueError):
    """A value from outside that is not JSON the engine stores; the message says why (a 400)."""


class IntegerRangeError(JsonInputError):
    """A JSON integer outside what 64 bits hold (signed or unsigned)."""


def dumps(obj: Any) -> str:
    """Compact JSON text."""
    return orjson.dumps(obj).decode()


def dumpb(obj: Any) -> bytes:
    """Compact JSON bytes."""
    return orjson.dumps(obj)


def loads(raw: bytes | str) -> Any:
    """Parse JSON; raises ValueError on malformed input."""
    return orjson.loads(raw)


def json_input(
    raw: bytes | str, what: str = "value", max_depth: int | None = MAX_JSON_DEPTH
) -> str:
    """``raw`` as the JSON text to store, if it passes the checks every value entering the
    engine passes (module doc); else ``JsonInputError`` naming ``what`` (``invalid JSON body:
    ...``, ``JSON input nested deeper than 128 levels``, ``integer ... is out of range``).
    ``max_depth`` None: orjson's own limit (the checker, reading texts that wrap a value)."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    try:
        value = loads(data)
    except ValueError as exc:
        raise JsonInputError(f"invalid JSON {what}: {exc}") from None
    if (
        max_depth is not None
        and data.count(b"[") + data.count(b"{") > max_depth
        and _depth(value) > max_depth
    ):
        raise JsonInputError(f"JSON {what} nested deeper than {max_depth} levels")
    try:
        check_int64(data)
    except IntegerRangeError as exc:
        raise IntegerRangeError(f"{exc} (in the JSON {what})") from None
    return raw if isinstance(raw, str) else data.decode("utf-8")


def json_input_of(value: Any, what: str = "value") -> str:
    """A value parsed by the standard library (or built in Python) as the JSON text to store,
    checked as ``json_input`` checks text: ``NaN``, infinities, lone surrogates and nesting
    past the standard library's own reach are refused with ``JsonInputError``."""
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except RecursionError:
        raise JsonInputError(f"JSON {what} nested deeper than {MAX_JSON_DEPTH} levels") from None
    except (TypeError, ValueError) as exc:  # NaN, an infinity; a type JSON has no text for
        reason = "NaN and infinities are not JSON numbers" if "float" in str(exc) else str(exc)
        raise JsonInputError(f"invalid JSON {what}: {reason}") from None
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        raise JsonInputError(
            f"invalid JSON {what}: a string is not valid UTF-8 (a lone surrogate)"
        ) from None
    return json_input(data, what)


def _depth(value: Any) -> int:
    """How deep ``value``'s arrays and objects nest (iterative: no recursion limit)."""
    if not isinstance(value, dict | list):
        return 0
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        deepest = max(deepest, level)
        stack.extend((c, level + 1) for c in children if isinstance(c, dict | list))
    return deepest


def check_int64(raw: bytes) -> None:
    """Raise ``IntegerRangeError`` if JSON text ``raw`` (valid JSON) holds an integer outside
    [-2**63, 2**64)."""
    if _LONG_DIGITS.search(raw):  # rare: only then parse again to check every integer
        json.loads(raw, parse_int=_int64)


def _int64(text: str) -> int:
    n = int(text) if len(text) <= 21 else 2**64  # no int() of thousands of digits
    if not -(2**63) <= n < 2**64:
        shown = text if len(text) <= 40 else text[:37] + "..."
        raise IntegerRangeError(
            f"integer {shown} is out of range: JSON integers must fit in 64 bits"
        )
    return n
