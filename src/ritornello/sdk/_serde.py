"""Values in and out of the journal: typed JSON by default, or bytes from a serde.

Every value the SDK journals goes through :func:`encode`, and every journaled value handler
code sees comes out of :func:`decode` (docs/sdk.md, "Types and serdes"):

- ``encode(value, type_hint=None, serde=None)`` returns a *fresh* JSON value: nothing in it is
  shared with ``value``, so later mutations by user code never reach a journaled entry.
  Without a serde, Python values become typed JSON (:mod:`ritornello.sdk._typed_json` says
  how); with a serde (other than :class:`JsonSerde`), the value is journaled as the base64
  text of ``serde.serialize(value)``.
- ``decode(json, type_hint=None, serde=None)`` returns a fresh value built from the hint
  (or ``serde.deserialize`` of the base64-decoded bytes); with neither, a deep copy of the JSON.

Invariants: both are pure (same input, same output, no state), and for every value ``v`` of a
supported type ``T``, ``decode(encode(v, T), T) == v``. A replay decodes the journaled JSON,
so handler code that sees ``decode(encode(result))`` on the first execution sees the identical
value on every replay. A value that does not fit its hint is a TypeError or ValueError whose
message starts with the path to it (``Order.items[2].price: expected a decimal string, got a
number``).

Other SDK modules import from here alone: ``__all__`` re-exports the annotation helpers
(``type_hints``, ``return_hint``) of :mod:`ritornello.sdk._hints` and the JSON helpers
(``json_copy``, ``b64encode``, ``b64decode``) of :mod:`ritornello.sdk._typed_json`.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar, Protocol, runtime_checkable

from ritornello.sdk._hints import return_hint, type_hints
from ritornello.sdk._typed_json import (
    b64decode,
    b64encode,
    decode_json,
    dumps,
    encode_json,
    json_copy,
)

__all__ = [
    "OCTET_STREAM",
    "BytesSerde",
    "JsonSerde",
    "Serde",
    "b64decode",
    "b64encode",
    "check_serde",
    "content_type_of",
    "decode",
    "encode",
    "is_json_serde",
    "json_copy",
    "return_hint",
    "type_hints",
]

#: The content type of raw bytes when a serde names none.
OCTET_STREAM = "application/octet-stream"

# -- serdes ---------------------------------------------------------------------------------


@runtime_checkable
class Serde(Protocol):
    """Brings its own bytes: ``serialize(value) -> bytes`` and ``deserialize(bytes) -> value``.

    A value a serde encodes is journaled as the base64 text of its bytes. A serde may have a
    ``content_type`` attribute (a handler's raw input or output at the ingress; default
    ``application/octet-stream``): it is optional, so it is not part of this protocol."""

    def serialize(self, value: Any) -> bytes:
        """The bytes of ``value``."""
        ...

    def deserialize(self, data: bytes) -> Any:
        """The value of ``data``."""
        ...


class JsonSerde:
    """The default: JSON, typed by ``type_hint`` (when given, it wins over the call's own
    hint). Values it encodes are journaled as JSON itself, not as base64 bytes."""

    # plain classes, not dataclasses: each dataclass costs the handler's import ~0.5 ms
    __slots__ = ("type_hint",)
    content_type: ClassVar[str] = "application/json"

    def __init__(self, type_hint: Any = None) -> None:
        self.type_hint = type_hint

    def __repr__(self) -> str:
        return f"JsonSerde({self.type_hint!r})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.type_hint == self.type_hint

    def __hash__(self) -> int:
        return hash((type(self), repr(self.type_hint)))

    def serialize(self, value: Any) -> bytes:
        """UTF-8 JSON text of ``encode(value, type_hint)``."""
        return dumps(encode(value, self.type_hint)).encode()

    def deserialize(self, data: bytes) -> Any:
        """``decode`` of the JSON ``data`` (empty bytes: None)."""
        if not data:
            return None
        return decode(json.loads(data), self.type_hint)


class BytesSerde:
    """Raw bytes, as they are: ``serialize`` takes bytes (or a bytearray or memoryview),
    ``deserialize`` gives bytes; ``content_type`` is what the ingress says they are."""

    __slots__ = ("content_type",)

    def __init__(self, content_type: str = OCTET_STREAM) -> None:
        self.content_type = content_type

    def __repr__(self) -> str:
        return f"BytesSerde({self.content_type!r})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.content_type == self.content_type

    def __hash__(self) -> int:
        return hash((type(self), self.content_type))

    def serialize(self, value: Any) -> bytes:
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise TypeError(f"BytesSerde serializes bytes, not {type(value).__name__}")
        return bytes(value)

    def deserialize(self, data: bytes) -> bytes:
        return bytes(data)


def check_serde(serde: Any, what: str = "serde") -> None:
    """TypeError unless ``serde`` is None or implements :class:`Serde`."""
    if serde is None:
        return
    if not isinstance(serde, Serde):
        raise TypeError(
            f"{what} must have serialize(value) -> bytes and deserialize(bytes), "
            f"not {type(serde).__name__}"
        )
    declared = getattr(serde, "content_type", None)
    if declared is not None and not (
        isinstance(declared, str)
        and declared.strip()
        and declared.isascii()
        and declared.isprintable()
    ):
        raise ValueError(f"{what}.content_type must be a content type, not {declared!r}")


def is_json_serde(serde: Any) -> bool:
    """Whether values of ``serde`` are journaled as JSON (none, or an unchanged JsonSerde)."""
    return serde is None or (
        isinstance(serde, JsonSerde)
        and type(serde).serialize is JsonSerde.serialize
        and type(serde).deserialize is JsonSerde.deserialize
    )


def content_type_of(serde: Any) -> str:
    """A serde's ``content_type``, ``application/octet-stream`` when it names none."""
    declared = getattr(serde, "content_type", None)
    return declared if isinstance(declared, str) and declared else OCTET_STREAM


# -- the SDK's single entry points ----------------------------------------------------------


def encode(value: Any, type_hint: Any = None, serde: Any = None) -> Any:
    """The JSON value to journal for ``value`` (fresh: later mutations never reach it).

    Without a serde the value's own type decides its JSON (the hint is not needed to encode);
    with one, the base64 text of ``serde.serialize(value)``."""
    if not is_json_serde(serde):
        check_serde(serde)
        data = serde.serialize(value)
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(
                f"{type(serde).__name__}.serialize returned {type(data).__name__}, not bytes"
            )
        return b64encode(bytes(data))
    return encode_json(value)


def decode(value: Any, type_hint: Any = None, serde: Any = None) -> Any:
    """The value handler code sees for the journaled JSON ``value`` (identical on replay).

    ``type_hint=None`` is untyped: a deep copy of the JSON (pass ``type(None)`` to demand
    null). With a serde other than JsonSerde, ``value`` is base64 text (null is None)."""
    if serde is None:
        return decode_json(value, type_hint)
    if not is_json_serde(serde):
        check_serde(serde)
        if value is None:
            return None
        return serde.deserialize(b64decode(value, ""))
    if isinstance(serde, JsonSerde) and serde.type_hint is not None:
        type_hint = serde.type_hint
    return decode_json(value, type_hint)
