"""The opaque ``next_cursor`` of ``GET /invocations``.

A cursor names the last invocation a page examined by its (``seq``, ``id``): a pair unique to
one invocation and ordered as the store lists them, so the next page starts strictly past it
(the store's keyset paging) and no invocation is skipped or repeated, even where two processes
gave out the same ``seq``. In newest-first order the walk goes down from where it started, so
invocations created while a client pages never enter it (they sort before its first page).

The cursor also carries the order it was made for; using it with the other order is a 400,
as is anything that is not a cursor this module made. Clients treat it as opaque text.
"""

from __future__ import annotations

import base64
import binascii

NEWEST = "newest"
OLDEST = "oldest"
ORDERS = (NEWEST, OLDEST)
#: The stores hold 64-bit integers.
MAX_INT64 = 2**63 - 1


class CursorError(ValueError):
    """Not a cursor made by ``encode_cursor`` (the message says what is wrong)."""


def encode_cursor(order: str, seq: int, invocation_id: str) -> str:
    """The opaque text for the position (``seq``, ``invocation_id``) in ``order``."""
    raw = f"{order[0]}{seq}:{invocation_id}".encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(text: str, order: str) -> tuple[int, str]:
    """The (``seq``, ``id``) position ``text`` names; CursorError if it is malformed or was made
    for the other order."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise CursorError("cursor is not a next_cursor of this listing") from None
    seq_text, sep, invocation_id = raw[1:].partition(":")
    if not raw or raw[0] not in "no" or not sep or not invocation_id:
        raise CursorError("cursor is not a next_cursor of this listing")
    if not seq_text.isascii() or not seq_text.isdigit() or int(seq_text) > MAX_INT64:
        raise CursorError("cursor is not a next_cursor of this listing")
    seq = int(seq_text)
    if raw[0] != order[0]:
        raise CursorError(f"cursor was made for order={'newest' if raw[0] == 'n' else 'oldest'}")
    return seq, invocation_id
