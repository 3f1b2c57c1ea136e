"""Request signing, orchestrator -> handler endpoint: HMAC-SHA256 over a shared secret.

Standard library only (the SDK verifies inside a handler Lambda). Spec: docs/auth.md.

Over HTTP each request carries two headers::

    x-ritornello-timestamp: 1712345678            (Unix seconds, when it was signed)
    x-ritornello-signature: v1=<64 hex digits>    (HMAC-SHA256(secret, string to sign))

where the string to sign is ``b"ritornello-v1\\n" + timestamp + b"\\n" + METHOD + b"\\n" + path
+ b"\\n" + body`` (``path`` as sent on the wire, relative to the endpoint's base URL and without
the query; the body's exact bytes). One HMAC pass over the body, nothing else per request.

A Lambda Invoke payload has no headers, so a signed one is an envelope whose ``body`` is the
payload's JSON as a string (the bytes the signature covers, exactly, once UTF-8 encoded)::

    {"ritornello_signed": {"v": 1, "ts": 1712345678, "sig": "<64 hex digits>"}, "body": "..."}

signed with method ``LAMBDA`` and path ``/``.

Invariants:

* A verifier accepts a request only if its timestamp is within ``window_s`` (default 300 s) of
  its own clock, either way, and its signature matches one of its secrets (several: rotation).
  Comparison is constant-time (``hmac.compare_digest``).
* The checks that need no body come first and apart (``Verifier.admit``: both headers present,
  well formed, the timestamp in the window), so a transport refuses an unsigned or stale
  request before reading its body; ``Verifier.verify`` then checks the HMAC over the body.
* Nothing here logs, and no error message repeats a secret or a signature.
* A signature binds method, path, time and body: it cannot be moved to another request. It can
  be replayed unchanged within the window (no nonce store: endpoints scale out); TLS between
  orchestrator and endpoints keeps signed requests from being captured.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable
from typing import Any

__all__ = [
    "LAMBDA_METHOD",
    "LAMBDA_PATH",
    "REPLAY_WINDOW_S",
    "SIGNATURE_HEADER",
    "SIGNED_KEY",
    "TIMESTAMP_HEADER",
    "Admission",
    "SignatureError",
    "Signer",
    "Verifier",
    "split_secrets",
]

SIGNATURE_HEADER = "x-ritornello-signature"
TIMESTAMP_HEADER = "x-ritornello-timestamp"
SIGNED_KEY = "ritornello_signed"
LAMBDA_METHOD = "LAMBDA"
LAMBDA_PATH = "/"
REPLAY_WINDOW_S = 300
_PREFIX = b"ritornello-v1\n"
_VERSION = "v1="


class SignatureError(Exception):
    """A request is unsigned, badly signed, or signed too long ago (answered with 401)."""


def split_secrets(raw: str | Iterable[str] | None) -> tuple[str, ...]:
    """Secrets from a setting: a comma-separated string (env) or a sequence; blanks dropped."""
    if raw is None:
        return ()
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    return tuple(s.strip() for s in items if s and s.strip())


def _keyed(secret: str) -> Any:
    if not secret:
        raise ValueError("a signing secret must not be empty")
    return hmac.new(secret.encode("utf-8"), digestmod=hashlib.sha256)


def _digest(base: Any, ts: bytes, method: str, path: bytes, body: bytes) -> str:
    mac = base.copy()  # the key's inner and outer pads are computed once, in the constructor
    mac.update(b"".join((_PREFIX, ts, b"\n", method.encode("ascii"), b"\n", path, b"\n")))
    mac.update(body)
    digest: str = mac.hexdigest()
    return digest


class Signer:
    """Signs requests with one secret (the orchestrator's side)."""

    __slots__ = ("_base",)

    def __init__(self, secret: str) -> None:
        self._base = _keyed(secret)

    def __repr__(self) -> str:
        return "Signer(<secret>)"

    def headers(self, method: str, path: str, body: bytes | None, now_s: float) -> dict[str, str]:
        """The two headers that sign one HTTP request."""
        ts = str(int(now_s))
        sig = _digest(self._base, ts.encode(), method, path.encode("latin-1"), body or b"")
        return {TIMESTAMP_HEADER: ts, SIGNATURE_HEADER: _VERSION + sig}

    def lambda_payload(self, payload: bytes, now_s: float) -> bytes:
        """A Lambda Invoke payload (JSON bytes) wrapped in the signed envelope."""
        ts = int(now_s)
        sig = _digest(self._base, str(ts).encode(), LAMBDA_METHOD, LAMBDA_PATH.encode(), payload)
        body = json.dumps(payload.decode("utf-8"), ensure_ascii=False)
        head = f'{{"{SIGNED_KEY}":{{"v":1,"ts":{ts},"sig":"{sig}"}},"body":'
        return head.encode() + body.encode("utf-8") + b"}"


class Admission:
    """A request's signature headers, found well formed and in the window by
    :meth:`Verifier.admit`: what :meth:`Verifier.verify` checks the body against."""

    __slots__ = ("given", "ts")

    def __init__(self, ts: bytes, given: bytes) -> None:
        self.ts = ts
        self.given = given


class Verifier:
    """Checks signatures against one or more secrets (the endpoint's side)."""

    __slots__ = ("_bases", "window_s")

    def __init__(self, secrets: Iterable[str], *, window_s: float = REPLAY_WINDOW_S) -> None:
        self._bases = [_keyed(s) for s in secrets]
        if not self._bases:
            raise ValueError("a Verifier needs at least one secret")
        self.window_s = window_s

    def __repr__(self) -> str:
        return f"Verifier(<{len(self._bases)} secret(s)>, window_s={self.window_s:g})"

    def check(
        self,
        method: str,
        path: bytes,
        body: bytes,
        timestamp: str | bytes | None,
        signature: str | bytes | None,
        now_s: float,
    ) -> None:
        """Raise :class:`SignatureError` unless the request is signed by one of the secrets,
        within the replay window (:meth:`admit`, then :meth:`verify`)."""
        self.verify(self.admit(timestamp, signature, now_s), method, path, body)

    def admit(
        self, timestamp: str | bytes | None, signature: str | bytes | None, now_s: float
    ) -> Admission:
        """The checks that need no body: both headers present and well formed, the timestamp
        within the window. :class:`SignatureError` otherwise."""
        if timestamp is None or signature is None:
            raise SignatureError(
                "unsigned request: this endpoint requires the orchestrator's signature "
                f"({TIMESTAMP_HEADER} and {SIGNATURE_HEADER}); configure the same "
                "signing secret on both sides"
            )
        ts = timestamp.encode("latin-1") if isinstance(timestamp, str) else timestamp
        if not ts.isdigit() or len(ts) > 12:
            raise SignatureError(f"malformed {TIMESTAMP_HEADER}: expected Unix seconds")
        age = now_s - int(ts)
        if abs(age) > self.window_s:
            raise SignatureError(
                f"stale signature: signed {age:+.0f} s from this endpoint's clock, outside the "
                f"{self.window_s:g} s window (replayed request, or clocks out of sync)"
            )
        sig = signature.encode("latin-1") if isinstance(signature, str) else signature
        if not sig.startswith(b"v1=") or len(sig) != 67:
            raise SignatureError(f"malformed {SIGNATURE_HEADER}: expected v1=<64 hex digits>")
        return Admission(ts, sig[3:])

    def verify(self, admission: Admission, method: str, path: bytes, body: bytes) -> None:
        """Raise :class:`SignatureError` unless the admitted signature is one of the secrets'
        HMAC over method, path, time and ``body``."""
        ts, given = admission.ts, admission.given
        matched = False
        for base in self._bases:  # every secret is tried: no early exit on a match
            expected = _digest(base, ts, method, path, body).encode()
            matched |= hmac.compare_digest(expected, given)
        if not matched:
            raise SignatureError(
                "bad signature: the request was not signed with this endpoint's secret "
                "(the orchestrator's signing_secret differs from RITORNELLO_SIGNING_SECRET "
                "here, or the request was altered)"
            )

    def open_lambda(self, event: dict[str, Any], now_s: float) -> Any:
        """The payload inside a signed Lambda envelope, parsed; :class:`SignatureError` if the
        event is not such an envelope or does not verify."""
        meta = event.get(SIGNED_KEY)
        body = event.get("body")
        if not isinstance(meta, dict) or not isinstance(body, str):
            raise SignatureError(
                "unsigned Lambda event: this endpoint requires the orchestrator's signed "
                f"envelope ({{{SIGNED_KEY!r}: ..., 'body': ...}}); configure the same signing "
                "secret on both sides"
            )
        ts, sig = meta.get("ts"), meta.get("sig")
        if meta.get("v") != 1 or not isinstance(ts, int) or not isinstance(sig, str):
            raise SignatureError(f"malformed {SIGNED_KEY}: expected {{v: 1, ts: int, sig: hex}}")
        raw = body.encode("utf-8", "surrogatepass")
        self.check(LAMBDA_METHOD, LAMBDA_PATH.encode(), raw, str(ts), _VERSION + sig, now_s)
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise SignatureError(f"the signed envelope's body is not JSON: {exc}") from None
