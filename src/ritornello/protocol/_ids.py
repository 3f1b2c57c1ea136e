"""Identifiers.

Invocation ids are ``inv_`` + 26 lowercase base32 characters (130 bits). A callee's id is
*derived* from its caller's id and the journal index of the call, so a replayed call names the
same callee and creating it again is a no-op.
"""

from __future__ import annotations

import base64
import hashlib
import secrets

_ID_CHARS = 26


def _b32(raw: bytes) -> str:
    return base64.b32encode(raw).decode("ascii").lower().rstrip("=")[:_ID_CHARS]


def new_id() -> str:
    """A fresh random invocation id."""
    return "inv_" + _b32(secrets.token_bytes(17))


def derive_id(parent_id: str, index: int) -> str:
    """The id of the invocation created by entry ``index`` of invocation ``parent_id``."""
    digest = hashlib.sha256(f"{parent_id}:{index}".encode()).digest()
    return "inv_" + _b32(digest[:17])


def new_awakeable_id() -> str:
    """An unguessable awakeable id (256 random bits)."""
    return "sign_" + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")


def new_deployment_id() -> str:
    """A fresh deployment id."""
    return "dp_" + _b32(secrets.token_bytes(17))
