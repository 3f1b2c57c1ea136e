"""Request signing, orchestrator -> handler endpoint: HMAC-SHA256 over a shared secret.

Standard library only (the SDK verifies inside a handler Lambda). Spec: docs/auth.md.

Over HTTP each request carries four headers::

    x-ritornello-timestamp: 1712345678            (Unix seconds, when it was signed)
    x-ritornello-signature: v1=<64 hex digits>    (HMAC-SHA256(secret, string to sign))
    x-ritornello-nonce: 3f9c0a1b2c3d4e5f1a        (unique per signer: random prefix + counter)
    x-ritornello-binding: v2=<64 hex digits>      (HMAC-SHA256(secret, binding string))

where the string to sign is ``b"ritornello-v1\\n" + timestamp + b"\\n" + METHOD + b"\\n" + path
+ b"\\n" + body`` (``path`` as sent on the wire, relative to the endpoint's base URL and without
the query; the body's exact bytes), and the binding string ``b"ritornello-v2-bind\\n" +
signature hex + b"\\n" + nonce + b"\\n" + (b"1" for a streamed request, else b"0")``. The
signature covers the body (one HMAC pass over it, as before); the binding ties that signature
to one nonce and to whether the exchange is streamed (``x-ritornello-stream``), a short HMAC
more. Signature v1 is the first two headers alone (orchestrators before the binding sent only
those); v2 is all four.

A streamed request's acknowledgements are bound to it: the n-th ack line (from 1) is exactly
``{"type":"ack","n":N,"mac":"<HMAC-SHA256(secret, "ritornello-v2-ack\\n" + binding hex + "\\n"
+ N)>"}``, and an endpoint that checks them says so on its answer (``x-ritornello-ack: v2``).

A Lambda Invoke payload has no headers, so a signed one is an envelope whose ``body`` is the
payload's JSON as a string (the bytes the signature covers, exactly, once UTF-8 encoded)::

    {"ritornello_signed": {"v": 1, "ts": 1712345678, "sig": "<64 hex>", "nonce": "...",
                           "bind": "<64 hex>"}, "body": "..."}

signed with method ``LAMBDA`` and path ``/`` (never streamed). ``"v": 1`` names the envelope's
shape, which ``nonce`` and ``bind`` only extend.

Invariants:

* A verifier accepts a request only if its timestamp is within ``window_s`` (default 300 s) of
  its own clock, either way, its signature matches one of its secrets (several: rotation), its
  binding matches that signature, its nonce and whether it is streamed, and its nonce was not
  seen within the window. Comparison is constant-time (``hmac.compare_digest``).
* A request signed v1 only (no nonce, no binding) is refused unless the verifier was built with
  ``accept_v1=True`` (an upgrade window): then it is accepted as before, without replay
  protection, and its acks are the plain ``{"type":"ack"}``.
* The checks that need no body come first and apart (``Verifier.admit``: headers present, well
  formed, the timestamp in the window), so a transport refuses an unsigned or stale request
  before reading its body; ``Verifier.verify`` then checks the HMACs over the body and the
  binding, and remembers the nonce.
* The replay cache (``_replay.ReplayCache``) holds every nonce accepted within the window, up to
  ``replay_cache`` of them. When full it forgets the oldest early and refuses, from then on,
  every request signed at or before that one's second: a forgotten nonce can never be replayed,
  at the cost of refusing requests delayed longer than the cache spans. It is per process:
  endpoints that scale out each keep their own (a request replayed to another instance runs
  there once more; its acks only as far as the captured ones go).
* Nothing here logs, and no error message repeats a secret or a signature.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from typing import Any

from ritornello.protocol._replay import ReplayCache

__all__ = [
    "ACK_HEADER",
    "BINDING_HEADER",
    "LAMBDA_METHOD",
    "LAMBDA_PATH",
    "NONCE_HEADER",
    "REPLAY_CACHE_SIZE",
    "REPLAY_WINDOW_S",
    "SIGNATURE_HEADER",
    "SIGNED_KEY",
    "TIMESTAMP_HEADER",
    "AckCheck",
    "Admission",
    "SignatureError",
    "Signer",
    "Verifier",
    "split_secrets",
]

SIGNATURE_HEADER = "x-ritornello-signature"
TIMESTAMP_HEADER = "x-ritornello-timestamp"
NONCE_HEADER = "x-ritornello-nonce"
BINDING_HEADER = "x-ritornello-binding"
#: On a streamed answer: ``v2``, the endpoint checks the acks' MACs (else it wants plain acks).
ACK_HEADER = "x-ritornello-ack"
SIGNED_KEY = "ritornello_signed"
LAMBDA_METHOD = "LAMBDA"
LAMBDA_PATH = "/"
REPLAY_WINDOW_S = 300
#: Nonces an endpoint process remembers (about 200 bytes each).
REPLAY_CACHE_SIZE = 100_000
_PREFIX = b"ritornello-v1\n"
_BIND_PREFIX = b"ritornello-v2-bind\n"
_ACK_PREFIX = b"ritornello-v2-ack\n"
_VERSION = "v1="
_BIND_VERSION = "v2="
_NONCE = re.compile(rb"[0-9A-Za-z_-]{8,64}")
_UPGRADE = (
    "the orchestrator is older than this endpoint's SDK (it signs without "
    f"{NONCE_HEADER} and {BINDING_HEADER}): upgrade it, or accept its signatures during the "
    "upgrade with RITORNELLO_ACCEPT_V1_SIGNATURES=1 (Endpoint(accept_v1_signatures=True))"
)


class SignatureError(Exception):
    """A request is unsigned, badly signed, signed too long ago or replayed (answered with 401)."""


def split_secrets(raw: str | Iterable[str] | None) -> tuple[str, ...]:
    """Secrets from a setting: a comma-separated string (env) or a sequence; blanks dropped."""
    if raw is None:
        return ()
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    return tuple(s.strip() for s in items if s and s.strip())


def _keyed(secret: str) -> Any:
    if not secret:
        raise ValueError("a signing secret must not be empty")
    # hashlib and hmac are imported when a key is made, not at a handler module's import;
    # every comparison below runs with a key made, so finds them imported.
    import hashlib
    import hmac

    return hmac.new(secret.encode("utf-8"), digestmod=hashlib.sha256)


def _mac(base: Any, *parts: bytes) -> str:
    mac = base.copy()  # the key's inner and outer pads are computed once, in the constructor
    for part in parts:
        mac.update(part)
    digest: str = mac.hexdigest()
    return digest


def _digest(base: Any, ts: bytes, method: str, path: bytes, body: bytes) -> str:
    head = b"".join((_PREFIX, ts, b"\n", method.encode("ascii"), b"\n", path, b"\n"))
    return _mac(base, head, body)


def _bind(base: Any, sig: bytes, nonce: bytes, stream: bool) -> str:
    return _mac(base, b"".join((_BIND_PREFIX, sig, b"\n", nonce, b"\n", b"1" if stream else b"0")))


def _ack(base: Any, binding: bytes, n: int) -> bytes:
    mac = _mac(base, b"%s%s\n%d" % (_ACK_PREFIX, binding, n))
    return b'{"type":"ack","n":%d,"mac":"%s"}' % (n, mac.encode())


class Signer:
    """Signs requests with one secret (the orchestrator's side)."""

    __slots__ = ("_base", "_count", "_prefix")

    def __init__(self, secret: str) -> None:
        self._base = _keyed(secret)
        self._prefix = os.urandom(8).hex()  # 64 random bits: nonces unique across signers
        self._count = 0

    def __repr__(self) -> str:
        return "Signer(<secret>)"

    def _nonce(self) -> str:
        self._count += 1
        return f"{self._prefix}{self._count:x}"

    def headers(
        self, method: str, path: str, body: bytes | None, now_s: float, *, stream: bool = False
    ) -> dict[str, str]:
        """The headers that sign one HTTP request (``stream``: sent with
        ``x-ritornello-stream: 1``)."""
        ts = str(int(now_s))
        sig = _digest(self._base, ts.encode(), method, path.encode("latin-1"), body or b"")
        nonce = self._nonce()
        bind = _bind(self._base, sig.encode(), nonce.encode(), stream)
        return {
            TIMESTAMP_HEADER: ts,
            SIGNATURE_HEADER: _VERSION + sig,
            NONCE_HEADER: nonce,
            BINDING_HEADER: _BIND_VERSION + bind,
        }

    def ack(self, binding: str, n: int) -> bytes:
        """The ``n``-th ack line (from 1, no newline) of the streamed request whose
        ``x-ritornello-binding`` header was ``binding``."""
        return _ack(self._base, binding.removeprefix(_BIND_VERSION).encode(), n)

    def lambda_payload(self, payload: bytes, now_s: float) -> bytes:
        """A Lambda Invoke payload (JSON bytes) wrapped in the signed envelope."""
        return self.lambda_envelope(payload, now_s)[0]

    def lambda_ack(self, bind: str, n: int) -> bytes:
        """The ``n``-th ack (from 1) of a checkpoint channel (docs/protocol.md, "Checkpoint
        channel") of the Lambda payload whose envelope's ``bind`` was ``bind``: the same line
        as a streamed request's v2 ack, bound to the envelope instead of the headers."""
        return _ack(self._base, bind.encode(), n)

    def lambda_envelope(self, payload: bytes, now_s: float) -> tuple[bytes, str]:
        """``lambda_payload``, and the envelope's ``bind`` (what its channel's acks are bound
        to)."""
        ts = int(now_s)
        sig = _digest(self._base, str(ts).encode(), LAMBDA_METHOD, LAMBDA_PATH.encode(), payload)
        nonce = self._nonce()
        bind = _bind(self._base, sig.encode(), nonce.encode(), False)
        body = json.dumps(payload.decode("utf-8"), ensure_ascii=False)
        head = (
            f'{{"{SIGNED_KEY}":{{"v":1,"ts":{ts},"sig":"{sig}","nonce":"{nonce}",'
            f'"bind":"{bind}"}},"body":'
        )
        return head.encode() + body.encode("utf-8") + b"}", bind


class Admission:
    """A request's signature headers, found well formed and in the window by
    :meth:`Verifier.admit`: what :meth:`Verifier.verify` checks the body against. ``nonce``
    and ``binding`` are None for a request signed v1 only."""

    __slots__ = ("binding", "given", "nonce", "now_s", "ts")

    def __init__(
        self, ts: bytes, given: bytes, nonce: bytes | None, binding: bytes | None, now_s: float
    ) -> None:
        self.ts = ts
        self.given = given
        self.nonce = nonce
        self.binding = binding
        self.now_s = now_s


class AckCheck:
    """The acks of one streamed request signed v2: called with each ack line in turn, True if
    it is the next one the orchestrator would send (so a replayed ack, or one from another
    exchange, is not)."""

    __slots__ = ("_base", "_binding", "_n")

    def __init__(self, base: Any, binding: bytes) -> None:
        self._base = base
        self._binding = binding
        self._n = 0

    def __call__(self, line: bytes) -> bool:
        self._n += 1
        import hmac

        return hmac.compare_digest(line.strip(), _ack(self._base, self._binding, self._n))


class Verifier:
    """Checks signatures against one or more secrets (the endpoint's side)."""

    __slots__ = ("_bases", "_nonces", "accept_v1", "window_s")

    def __init__(
        self,
        secrets: Iterable[str],
        *,
        window_s: float = REPLAY_WINDOW_S,
        accept_v1: bool = False,
        replay_cache: int = REPLAY_CACHE_SIZE,
    ) -> None:
        self._bases = [_keyed(s) for s in secrets]
        if not self._bases:
            raise ValueError("a Verifier needs at least one secret")
        self.window_s = window_s
        #: Requests signed v1 only (no nonce, no binding) are accepted, unprotected.
        self.accept_v1 = accept_v1
        self._nonces = ReplayCache(replay_cache)

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
        *,
        nonce: str | bytes | None = None,
        binding: str | bytes | None = None,
        stream: bool = False,
    ) -> AckCheck | None:
        """Raise :class:`SignatureError` unless the request is signed by one of the secrets,
        within the replay window and not seen before (:meth:`admit`, then :meth:`verify`)."""
        admission = self.admit(timestamp, signature, now_s, nonce, binding)
        return self.verify(admission, method, path, body, stream=stream)

    def admit(
        self,
        timestamp: str | bytes | None,
        signature: str | bytes | None,
        now_s: float,
        nonce: str | bytes | None = None,
        binding: str | bytes | None = None,
    ) -> Admission:
        """The checks that need no body: the headers present and well formed, the timestamp
        within the window. :class:`SignatureError` otherwise."""
        if timestamp is None or signature is None:
            raise SignatureError(
                "unsigned request: this endpoint requires the orchestrator's signature "
                f"({TIMESTAMP_HEADER} and {SIGNATURE_HEADER}); configure the same "
                "signing secret on both sides"
            )
        ts = _bytes(timestamp)
        if not ts.isdigit() or len(ts) > 12:
            raise SignatureError(f"malformed {TIMESTAMP_HEADER}: expected Unix seconds")
        age = now_s - int(ts)
        if abs(age) > self.window_s:
            raise SignatureError(
                f"stale signature: signed {age:+.0f} s from this endpoint's clock, outside the "
                f"{self.window_s:g} s window (replayed request, or clocks out of sync)"
            )
        sig = _bytes(signature)
        if not sig.startswith(b"v1=") or len(sig) != 67:
            raise SignatureError(f"malformed {SIGNATURE_HEADER}: expected v1=<64 hex digits>")
        if nonce is None and binding is None:
            if not self.accept_v1:
                raise SignatureError(f"unbound signature: {_UPGRADE}")
            return Admission(ts, sig[3:], None, None, now_s)
        if nonce is None or binding is None:
            raise SignatureError(
                f"malformed signature: {NONCE_HEADER} and {BINDING_HEADER} go together"
            )
        once, bound = _bytes(nonce), _bytes(binding)
        if not _NONCE.fullmatch(once):
            raise SignatureError(f"malformed {NONCE_HEADER}: expected 8 to 64 of [0-9A-Za-z_-]")
        if not bound.startswith(b"v2=") or len(bound) != 67:
            raise SignatureError(f"malformed {BINDING_HEADER}: expected v2=<64 hex digits>")
        if int(ts) <= self._nonces.floor:
            raise SignatureError(
                "signed too long ago for this endpoint's replay cache (full: "
                f"{len(self._nonces):,} requests within {self.window_s:g} s): refused as possibly "
                "replayed; check the clocks, or spread the load over more endpoint processes"
            )
        return Admission(ts, sig[3:], once, bound[3:], now_s)

    def verify(
        self, admission: Admission, method: str, path: bytes, body: bytes, *, stream: bool = False
    ) -> AckCheck | None:
        """Raise :class:`SignatureError` unless the admitted signature is one of the secrets'
        HMAC over method, path, time and ``body``, its binding ties it to its nonce and to
        ``stream``, and its nonce is new. Returns the check for a streamed request's acks
        (None for one signed v1 only: plain acks)."""
        import hmac  # imported by the verifier's keys already (_keyed): a dict lookup

        ts, given = admission.ts, admission.given
        matched = None
        for base in self._bases:  # every secret is tried: no early exit on a match
            expected = _digest(base, ts, method, path, body).encode()
            if hmac.compare_digest(expected, given) and matched is None:
                matched = base
        if matched is None:
            raise SignatureError(
                "bad signature: the request was not signed with this endpoint's secret "
                "(the orchestrator's signing_secret differs from RITORNELLO_SIGNING_SECRET "
                "here, or the request was altered)"
            )
        nonce, binding = admission.nonce, admission.binding
        if nonce is None or binding is None:
            return None  # v1 only, accepted by accept_v1
        if not hmac.compare_digest(_bind(matched, given, nonce, stream).encode(), binding):
            raise SignatureError(
                f"bad signature: {BINDING_HEADER} does not match the request (its "
                f"{NONCE_HEADER}, or whether it is streamed, was changed)"
            )
        if not self._nonces.add(nonce, int(ts), admission.now_s - self.window_s):
            raise SignatureError(
                "replayed request: this signature's nonce was already used within the "
                f"{self.window_s:g} s window"
            )
        return AckCheck(matched, binding)

    def open_lambda(self, event: dict[str, Any], now_s: float) -> Any:
        """The payload inside a signed Lambda envelope, parsed; :class:`SignatureError` if the
        event is not such an envelope or does not verify."""
        return self.open_lambda_acked(event, now_s)[0]

    def open_lambda_acked(self, event: dict[str, Any], now_s: float) -> tuple[Any, AckCheck | None]:
        """``open_lambda``, and the check of the acks of the payload's checkpoint channel
        (bound to the envelope's ``bind``; None for an envelope signed v1 only: plain acks)."""
        meta = event.get(SIGNED_KEY)
        body = event.get("body")
        if not isinstance(meta, dict) or not isinstance(body, str):
            raise SignatureError(
                "unsigned Lambda event: this endpoint requires the orchestrator's signed "
                f"envelope ({{{SIGNED_KEY!r}: ..., 'body': ...}}); configure the same signing "
                "secret on both sides"
            )
        ts, sig = meta.get("ts"), meta.get("sig")
        nonce, bind = meta.get("nonce"), meta.get("bind")
        if (
            meta.get("v") != 1
            or not isinstance(ts, int)
            or not isinstance(sig, str)
            or not isinstance(nonce, str | None)
            or not isinstance(bind, str | None)
        ):
            raise SignatureError(
                f"malformed {SIGNED_KEY}: expected {{v: 1, ts: int, sig: hex, nonce, bind}}"
            )
        raw = body.encode("utf-8", "surrogatepass")
        binding = None if bind is None else _BIND_VERSION + bind
        admission = self.admit(str(ts), _VERSION + sig, now_s, nonce, binding)
        acks = self.verify(admission, LAMBDA_METHOD, LAMBDA_PATH.encode(), raw)
        try:
            return json.loads(raw), acks
        except ValueError as exc:
            raise SignatureError(f"the signed envelope's body is not JSON: {exc}") from None


def _bytes(value: str | bytes) -> bytes:
    return value.encode("latin-1") if isinstance(value, str) else value
