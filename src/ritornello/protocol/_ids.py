"""Identifiers.

Invocation ids are ``inv_`` + 26 lowercase base32 characters: a 48-bit millisecond timestamp
then 82 random bits, so ids created close in time sort close together (B-tree pages of the store
stay hot instead of every insert touching a random page). A callee's id is *derived* from its
caller's id and the journal index of the call: the caller's time prefix plus a hash, so a
replayed call names the same callee and creating it again is a no-op.
"""

from __future__ import annotations

import base64
import os
import threading
import time
from types import SimpleNamespace

from ritornello.protocol._entries import FIRST_SIGNAL_AWAKEABLE

_ID_CHARS = 26


def _b32(raw: bytes) -> str:
    return base64.b32encode(raw).decode("ascii").lower().rstrip("=")[:_ID_CHARS]


_PREFIX = 10  # base32 characters holding the 48-bit timestamp (50 bits)


_B32_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"  # RFC 4648 base32, lower case
#: Every pair of base32 characters, indexed by the 10 bits they encode.
_B32_PAIRS = [a + b for a in _B32_ALPHABET for b in _B32_ALPHABET]
_SHIFTS = tuple(range(120, -1, -10))  # 13 pairs: 130 bits, the 26 characters of an id


#: The OS's CSPRNG: ``secrets.token_bytes`` is ``os.urandom``, without importing ``secrets``
#: (and with it ``random``, ``hashlib`` and ``hmac``) when a handler module is imported. A
#: module attribute so that the simulation can swap in a seeded source.
secrets = SimpleNamespace(token_bytes=os.urandom)

_RANDOM_BATCH = 11 * 372  # random bytes read at once: 372 ids' worth, one getrandom call
_random = b""
_random_at = 0
_random_lock = threading.Lock()


def _random_11() -> bytes:
    """11 bytes from the OS's CSPRNG (``secrets.token_bytes``, which is ``os.urandom``), read a
    batch at a time: one system call per 372 ids instead of one per id. No two calls get the
    same bytes (the lock; and a forked child throws away what it inherited from its parent).
    The simulation replaces ``secrets`` with a seeded source and calls ``_forget_random``."""
    global _random, _random_at
    with _random_lock:
        at = _random_at
        if at + 11 > len(_random):
            _random, at = secrets.token_bytes(_RANDOM_BATCH), 0
        _random_at = at + 11
        return _random[at : at + 11]


def _forget_random() -> None:
    global _random, _random_at, _random_lock
    _random, _random_at, _random_lock = b"", 0, threading.Lock()


os.register_at_fork(after_in_child=_forget_random)


def new_id() -> str:
    """A fresh invocation id: time prefix plus 82 random bits.

    The same text as ``"inv_" + _b32(stamp_6_bytes + random_11_bytes)`` (the top 130 of those
    136 bits, base32), built from one integer with 13 table lookups: ids are made on every
    request, and ``base64.b32encode`` is Python code."""
    bits = ((time.time_ns() // 1_000_000) << 82) | (int.from_bytes(_random_11(), "big") >> 6)
    return "inv_" + "".join([_B32_PAIRS[(bits >> s) & 1023] for s in _SHIFTS])


def derive_id(parent_id: str, index: int) -> str:
    """The id of the invocation created by entry ``index`` of invocation ``parent_id``."""
    import hashlib  # imported on first use: not at a handler module's import

    digest = hashlib.sha256(f"{parent_id}:{index}".encode()).digest()
    prefix = parent_id[4 : 4 + _PREFIX] if parent_id.startswith("inv_") else ""
    return "inv_" + (prefix + _b32(digest[:17]))[:_ID_CHARS]


def new_awakeable_id(invocation_id: str, index: int) -> str:
    """An awakeable id: it names its invocation and journal index (so the orchestrator finds
    the entry) plus 130 random bits (so nobody can guess it): ``sign_{inv}_{index}_{secret}``."""
    if not invocation_id.startswith("inv_"):
        raise ValueError(f"{invocation_id!r} is not an invocation id")
    return f"sign_{invocation_id[4:]}_{index}_{_b32(secrets.token_bytes(17))}"


#: Restate's awakeable ids (its service protocol V5+): ``sign_1`` + base64url, unpadded, of the
#: invocation's id bytes (Ritornello sends the ASCII invocation id) and the u32 big-endian
#: signal index. Signals 1-16 are reserved (1 is cancel); awakeables start at 17.
RESTATE_AWAKEABLE_PREFIX = "sign_1"


def restate_awakeable_id(invocation_id: str, signal: int) -> str:
    """The id a Restate SDK makes for awakeable ``signal`` of ``invocation_id``."""
    raw = invocation_id.encode("ascii") + signal.to_bytes(4, "big")
    return RESTATE_AWAKEABLE_PREFIX + base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _parse_restate_awakeable(text: str) -> tuple[str, int] | None:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError:
        return None
    inv, signal = raw[:-4], int.from_bytes(raw[-4:], "big")
    if len(inv) != 4 + _ID_CHARS or not inv.startswith(b"inv_") or not inv.isascii():
        return None
    if not FIRST_SIGNAL_AWAKEABLE <= signal < 2**31:
        return None
    return inv.decode("ascii"), -signal


def parse_awakeable_id(awakeable_id: str) -> tuple[str, int] | None:
    """(invocation id, entry index) named by an awakeable id, or None if it is malformed.
    The secret is checked against the journaled entry by the orchestrator.

    A Restate SDK's id (``sign_1...``) names a *signal*, not an entry: its index is the
    negative signal number (-17, -18, ...), the completion index the signal is stored under
    (as cancel, signal 1, is stored under -1)."""
    if awakeable_id.startswith(RESTATE_AWAKEABLE_PREFIX):  # base32 ids never hold a "1"
        return _parse_restate_awakeable(awakeable_id[len(RESTATE_AWAKEABLE_PREFIX) :])
    parts = awakeable_id.split("_")
    if len(parts) != 4 or parts[0] != "sign" or not parts[2].isdigit():
        return None
    if len(parts[1]) != _ID_CHARS or len(parts[3]) != _ID_CHARS or len(parts[2]) > 9:
        return None
    return "inv_" + parts[1], int(parts[2])


def new_deployment_id() -> str:
    """A fresh deployment id."""
    return "dp_" + _b32(secrets.token_bytes(17))
