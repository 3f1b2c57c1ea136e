"""The signing scheme itself (``ritornello.protocol.Signer`` / ``Verifier``): what verifies and
what does not. The transports that carry it are tested against real servers beside this."""

from __future__ import annotations

import json

import pytest

from ritornello.protocol import SignatureError, Signer, Verifier
from ritornello.protocol._signing import (
    BINDING_HEADER,
    NONCE_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    AckCheck,
    split_secrets,
)

NOW = 1_712_345_678.0
BODY = b'{"version":1,"type":"invoke","id":"inv_1"}'
PATH = "/invoke/Echo/headers"


def check(verifier: Verifier, headers: dict[str, str], **change: object) -> AckCheck | None:
    args: dict[str, object] = {
        "method": "POST",
        "path": PATH.encode(),
        "body": BODY,
        "timestamp": headers.get(TIMESTAMP_HEADER),
        "signature": headers.get(SIGNATURE_HEADER),
        "now_s": NOW,
        "nonce": headers.get(NONCE_HEADER),
        "binding": headers.get(BINDING_HEADER),
    }
    args.update(change)
    return verifier.check(**args)  # type: ignore[arg-type]


def test_a_request_signed_with_the_secret_verifies() -> None:
    signer = Signer("s3cret")
    headers = signer.headers("POST", PATH, BODY, NOW)
    assert headers[SIGNATURE_HEADER].startswith("v1=")
    assert headers[BINDING_HEADER].startswith("v2=")
    check(Verifier(["s3cret"]), headers)
    check(Verifier(["s3cret"]), signer.headers("POST", PATH, BODY, NOW), now_s=NOW + 299)


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
        ({"stream": True}, "bad signature"),  # a plain request replayed as a stream
        ({"nonce": "another-nonce-0001"}, "bad signature"),
        ({"nonce": "no"}, "malformed"),
        ({"binding": "v2=abc"}, "malformed"),
        ({"binding": None}, "malformed"),
        ({"nonce": None, "binding": None}, "unbound signature"),  # an older orchestrator
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
    check(Verifier(["old", "new"]), headers)
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


def test_a_signed_request_is_accepted_once() -> None:
    verifier = Verifier(["k"])
    headers = Signer("k").headers("POST", PATH, BODY, NOW)
    check(verifier, headers)
    with pytest.raises(SignatureError, match="replayed request"):
        check(verifier, headers, now_s=NOW + 5)
    # a refused request is not remembered: it may come again once right (a wrong body here)
    other = Signer("k").headers("POST", PATH, BODY, NOW)
    with pytest.raises(SignatureError, match="bad signature"):
        check(verifier, other, body=b"{}")
    check(verifier, other)


def test_the_replay_cache_forgets_only_what_can_no_longer_verify() -> None:
    """Full, it forgets the oldest nonce early and refuses everything signed at or before its
    second; nonces older than the window are dropped as they come up."""
    verifier = Verifier(["k"], replay_cache=3)
    signer = Signer("k")
    sent = [signer.headers("POST", PATH, BODY, NOW + i) for i in range(4)]
    for i, headers in enumerate(sent):
        check(verifier, headers, now_s=NOW + i)
    with pytest.raises(SignatureError, match="replay cache"):  # forgotten: refused anyway
        check(verifier, sent[0], now_s=NOW + 4)
    with pytest.raises(SignatureError, match="replay cache"):  # signed in that second
        check(verifier, signer.headers("POST", PATH, BODY, NOW), now_s=NOW + 4)
    for headers in sent[1:]:
        with pytest.raises(SignatureError, match="replayed"):
            check(verifier, headers, now_s=NOW + 4)
    later = NOW + 1000  # everything remembered is stale now: dropped, the cache not full
    for i in range(3):
        check(verifier, signer.headers("POST", PATH, BODY, later), now_s=later + i)


def test_acks_are_bound_to_their_request_and_counted() -> None:
    signer, verifier = Signer("k"), Verifier(["k"])
    headers = signer.headers("POST", PATH, BODY, NOW, stream=True)
    acks = check(verifier, headers, stream=True)
    assert acks is not None
    binding = headers[BINDING_HEADER]
    first, second = signer.ack(binding, 1), signer.ack(binding, 2)
    assert acks(first) and acks(second + b"  ")
    assert not acks(second)  # sent again: the third is due
    other = signer.headers("POST", PATH, BODY, NOW, stream=True)
    other_acks = check(verifier, other, stream=True)
    assert other_acks is not None and not other_acks(first)  # another exchange's ack
    third = check(verifier, signer.headers("POST", PATH, BODY, NOW, stream=True), stream=True)
    assert third is not None and not third(b'{"type":"ack"}')  # the plain ack is not one


def test_v1_signatures_only_with_accept_v1() -> None:
    """An orchestrator from before the binding sends the timestamp and signature alone: refused,
    unless the endpoint accepts them for the upgrade (then as before: no replay protection,
    plain acks)."""
    headers = Signer("k").headers("POST", PATH, BODY, NOW)
    v1 = {TIMESTAMP_HEADER: headers[TIMESTAMP_HEADER], SIGNATURE_HEADER: headers[SIGNATURE_HEADER]}
    with pytest.raises(SignatureError, match="older than this endpoint's SDK"):
        check(Verifier(["k"]), v1)
    lenient = Verifier(["k"], accept_v1=True)
    assert check(lenient, v1, stream=True) is None and check(lenient, v1) is None
    with pytest.raises(SignatureError, match="bad signature"):
        check(lenient, v1, body=b"{}")
    check(lenient, headers)  # v2 requests still get all the checks
    with pytest.raises(SignatureError, match="replayed"):
        check(lenient, headers)


def test_a_lambda_envelope_is_accepted_once_and_an_old_one_only_with_accept_v1() -> None:
    signed = json.loads(Signer("k").lambda_payload(b'{"a":1}', NOW))
    verifier = Verifier(["k"])
    assert verifier.open_lambda(signed, NOW) == {"a": 1}
    with pytest.raises(SignatureError, match="replayed"):
        verifier.open_lambda(signed, NOW)
    old = {
        **signed,
        "ritornello_signed": {k: signed["ritornello_signed"][k] for k in ("v", "ts", "sig")},
    }
    with pytest.raises(SignatureError, match="unbound signature"):
        Verifier(["k"]).open_lambda(old, NOW)
    assert Verifier(["k"], accept_v1=True).open_lambda(old, NOW) == {"a": 1}
