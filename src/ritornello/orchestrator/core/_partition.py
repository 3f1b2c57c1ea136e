"""Which partition an invocation belongs to (fixed at its creation)."""

from __future__ import annotations

import zlib


def partition_of(service: str, key: str | None, invocation_id: str, count: int) -> int:
    """The partition of an invocation among ``count``: by (service, key) when keyed, so a key's
    queue, state and promises live in one partition; else by id."""
    if count <= 1:
        return 0
    basis = f"{service}\x00{key}" if key is not None else invocation_id
    return zlib.crc32(basis.encode("utf-8", "surrogatepass")) % count
