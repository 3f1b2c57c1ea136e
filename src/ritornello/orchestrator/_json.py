"""Fast JSON for the orchestrator's hot path (orjson), producing the same JSON the protocol's
standard-library codec reads."""

from __future__ import annotations

from typing import Any

import orjson


def dumps(obj: Any) -> str:
    """Compact JSON text."""
    return orjson.dumps(obj).decode()


def dumpb(obj: Any) -> bytes:
    """Compact JSON bytes."""
    return orjson.dumps(obj)


def loads(raw: bytes | str) -> Any:
    """Parse JSON; raises ValueError on malformed input."""
    return orjson.loads(raw)
