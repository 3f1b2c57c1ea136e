"""Keys from outside: the rule an object key or workflow id obeys however it arrives (an ingress
path, a schedule, a state write), so that a key stored one way is one the others can reach.

A key is any text without control characters (C0 and DEL, NUL included) that is valid UTF-8: a
string from the standard library's JSON parser may hold a lone surrogate (``"\\udc80"``), which
no store, log or HTTP path can carry. Nothing is normalised or trimmed: keys compare exactly.
"""

from __future__ import annotations

import re

#: Characters a key or an idempotency key must not hold (C0 controls and DEL, NUL included).
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def key_problem(key: str, what: str = "the key") -> str | None:
    """Why ``key`` is refused (a sentence naming ``what``), or None if it is a key."""
    if CONTROL.search(key):
        return f"{what} must not contain control characters (NUL included)"
    if not is_utf8(key):
        return f"{what} is not valid UTF-8 (a lone surrogate)"
    return None


def is_utf8(text: str) -> bool:
    """Whether ``text`` has a UTF-8 encoding (no lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
