"""Fast JSON for the orchestrator's hot path (orjson), producing the same JSON the protocol's
standard-library codec reads.

orjson reads an integer past 64 bits as a float (``2**64`` comes back ``1.8446744073709552e+19``):
anything the orchestrator parses and writes again would change silently. ``check_int64`` finds
such integers in raw JSON (cheaply: it parses again only when a run of 19+ digits is present) so
that the ingress refuses them (400) and an endpoint's answer carrying one is a failed attempt
with a clear message, never a stored float.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

#: 19 digits or more: an integer that may not fit in 64 bits (or digits inside a string).
_LONG_DIGITS = re.compile(rb"\d{19,}")


class IntegerRangeError(ValueError):
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
