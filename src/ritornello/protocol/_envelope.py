"""The gzip envelope both sides of a Lambda invocation use for payloads near Lambda's 6 MB
limit: ``{"ritornello_encoding": "gzip", "data": "<base64 of the gzipped JSON>"}``.

Standard library only (the SDK uses it). Inflating is bounded: a payload may not inflate past
the caller's limit, so a small "zip bomb" cannot exhaust memory; every failure is an
``EnvelopeError`` with a message the caller wraps in its own error type.
"""

from __future__ import annotations

import base64
import binascii
import json

#: The envelope's marker member; its value names the encoding (only ``gzip`` exists).
ENCODING_KEY = "ritornello_encoding"
#: The Lambda payload that asks a function for its discovery answer.
DISCOVER_EVENT = {"ritornello": "discover"}


class EnvelopeError(ValueError):
    """A gzip envelope whose data does not decode, is truncated or inflates too far."""


def gzip_base64(raw: bytes) -> bytes:
    """``raw`` gzipped (level 6, no timestamp: the same input packs the same) and base64'd."""
    import gzip  # (on first use: most payloads never travel enveloped)

    return base64.b64encode(gzip.compress(raw, compresslevel=6, mtime=0))


def gzip_envelope(raw: bytes) -> bytes:
    """The envelope holding ``raw`` (JSON bytes) gzipped: what a payload near Lambda's limit
    travels as."""
    data = gzip_base64(raw).decode("ascii")
    return json.dumps({ENCODING_KEY: "gzip", "data": data}, separators=(",", ":")).encode()


def inflate_base64(data: str | bytes, limit: int) -> bytes:
    """The bytes packed by ``gzip_base64``; ``EnvelopeError`` if they do not decode, are
    truncated, or would inflate beyond ``limit`` bytes."""
    import zlib

    try:
        inflater = zlib.decompressobj(wbits=31)  # gzip framing
        raw = inflater.decompress(base64.b64decode(data, validate=True), limit)
    except (binascii.Error, zlib.error) as exc:
        raise EnvelopeError(f"does not decode: {exc}") from None
    if inflater.unconsumed_tail:
        raise EnvelopeError(f"inflates beyond {limit:,} bytes")
    if not inflater.eof:
        raise EnvelopeError("does not decode: truncated")
    return raw
