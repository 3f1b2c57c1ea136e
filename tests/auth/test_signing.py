"""The signing scheme itself (``ritornello.protocol.Signer`` / ``Verifier``): what verifies and
what does not. The transports that carry it are tested against real servers beside this."""

from __future__ import annotations

import json

import pytest

from ritornello.protocol import SignatureError, Signer, Verifier
from ritornello.protocol._signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, split_secrets

NOW = 1_712_345_678.0
BODY = b'{"version":1,"type":"invoke","id":"inv_1"}'
PATH = "/invoke/Echo/headers"


def check(verifier: Verifier, headers: dict[str, str], **change: object) -> None:
    args: dict[str, object] = {
        "method": "POST",
        "path": PATH.encode(),
        "body": BODY,
        "timestamp": headers.get(TIMESTAMP_HEADER),
        "signature": headers.get(SIGNATURE_HEADER),
        "now_s": NOW,
    }
    args.update(change)
    verifier.check(**args)  # type: ignore[arg-type]


def test_a_request_signed_with_the_secret_verifies() -> None:
    headers = Signer("s3cret").headers("POST", PATH, BODY, NOW)
    assert headers[SIGNATURE_HEADER].startswith("v1=")
    check(Verifier(["s3cret"]), headers)
    check(Verifier(["s3cret"]), headers, now_s=NOW + 299)  # inside the window


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"body": BODY + b" "}, "bad signature"),
        ({"path": b"/invoke/Echo/other"}, "bad signature"),
        ({"method": "GET"}, "bad signature"),
        ({"now_s": NOW + 301}, "stale signature"),
        ({"now_s": NOW - 301}, "stale signature"),
        ({"signature": None}, "unsigned request"),
        ({"timestamp": None}, "unsigned request"),
        ({"timestamp": "soon"}, "malformed"),
        ({"signature": "deadbeef"}, "malformed"),
    ],
)
def test_a_changed_request_does_not_verify(change: dict[str, object], why: str) -> None:
    headers = Signer("s3cret").headers("POST", PATH, BODY, NOW)
    with pytest.raises(SignatureError, match=why):
        check(Verifier(["s3cret"]), headers, **change)


def test_another_secret_does_not_verify_and_rotation_accepts_either() -> None:
    headers = Signer("old").headers("POST", PATH, BODY, NOW)
    with pytest.raises(SignatureError, match="bad signature") as info:
        check(Verifier(["new"]), headers)
    assert "old" not in str(info.value) and headers[SIGNATURE_HEADER] not in str(info.value)
    check(Verifier(["new", "old"]), headers)
    assert split_secrets(" new, old ,,") == ("new", "old")
    assert "new" not in repr(Verifier(["new"])) and "old" not in repr(Signer("old"))


def test_the_lambda_envelope_carries_the_exact_payload() -> None:
    payload = json.dumps({"text": 'quotes " and \\ and unicode é ☃', "n": 1.5}).encode()
    signed = json.loads(Signer("k").lambda_payload(payload, NOW))  # as Lambda parses it
    assert Verifier(["k"]).open_lambda(signed, NOW) == json.loads(payload)
    with pytest.raises(SignatureError, match="bad signature"):
        Verifier(["other"]).open_lambda(signed, NOW)
    tampered = {**signed, "body": signed["body"].replace("1.5", "2.5")}
    with pytest.raises(SignatureError, match="bad signature"):
        Verifier(["k"]).open_lambda(tampered, NOW)
    with pytest.raises(SignatureError, match="unsigned Lambda event"):
        Verifier(["k"]).open_lambda(json.loads(payload), NOW)
    with pytest.raises(SignatureError, match="stale"):
        Verifier(["k"]).open_lambda(signed, NOW + 3600)
