"""The ingress over loopback: every path form, results, errors, idempotency, delays."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from tests.integration.conftest import Stack


def test_call_service_all_path_forms(stack: Stack) -> None:
    for path in ("/restate/call/Greeter/greet", "/Greeter/greet"):
        status, body, headers = stack.call(path, "Ada")
        assert (status, body) == (200, "Hello, Ada!")
        assert headers["x-restate-id"].startswith("inv_")


def test_object_calls_and_shared_reads(stack: Stack) -> None:
    assert stack.call("/restate/call/Counter/c1/add", 2)[:2] == (200, 2)
    assert stack.call("/Counter/c1/add", 3)[:2] == (200, 5)
    assert stack.call("/restate/call/Counter/c1/get")[:2] == (200, 5)
    assert stack.call("/restate/call/Counter/other/get")[:2] == (200, 0)


def test_exclusive_handlers_serialise_per_key(stack: Stack) -> None:
    def add(_: int) -> object:
        return stack.call("/restate/call/Counter/race/add", 1)[1]

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(add, range(60)))
    # One at a time: every intermediate value is seen exactly once.
    assert sorted(results) == list(range(1, 61))  # type: ignore[type-var]
    assert stack.call("/restate/call/Counter/race/get")[:2] == (200, 60)


def test_checkout_calls_two_services(stack: Stack) -> None:
    status, body, _ = stack.call(
        "/restate/call/Checkout/place_order", {"items": ["apple", "fig"], "customer": "ada"}
    )
    assert status == 200
    assert body["total"] == 170 and body["status"] == "confirmed"  # type: ignore[index]
    assert str(body["payment"]).startswith("pay-")  # type: ignore[index]


def test_terminal_error_status_and_message(stack: Stack) -> None:
    status, body, _ = stack.call("/restate/call/Checkout/place_order", {"items": ["durian"]})
    assert (status, body) == (400, {"message": "unknown items: durian"})


def test_send_attach_output(stack: Stack) -> None:
    status, body, headers = stack.call("/restate/send/Greeter/greet", "Bo")
    assert status == 202 and body["status"] == "Accepted"  # type: ignore[index]
    inv = body["invocationId"]  # type: ignore[index]
    assert headers["x-restate-id"] == inv
    assert stack.get(f"/restate/attach/{inv}")[:2] == (200, "Hello, Bo!")
    assert stack.get(f"/restate/output/{inv}")[:2] == (200, "Hello, Bo!")
    assert stack.get(f"/restate/invocation/{inv}/output")[:2] == (200, "Hello, Bo!")
    assert stack.get(f"/restate/invocation/{inv}/attach")[:2] == (200, "Hello, Bo!")
    # Legacy send forms.
    assert stack.call("/Greeter/greet/send", "Cy")[0] == 202
    assert stack.call("/Counter/c9/add/send", 1)[0] == 202


def test_output_not_ready_and_not_found(stack: Stack) -> None:
    _, body, _ = stack.call("/restate/send/Greeter/greet?delay=2s", "Later")
    inv = body["invocationId"]  # type: ignore[index]
    assert stack.get(f"/restate/output/{inv}")[:2] == (470, {"message": "not ready"})
    assert stack.get("/restate/output/inv_doesnotexist")[0] == 404
    assert stack.get("/restate/attach/inv_doesnotexist")[0] == 404


def test_delayed_send_fires_after_delay(stack: Stack) -> None:
    start = time.monotonic()
    status, body, _ = stack.call("/restate/send/Greeter/greet?delay=PT0.5S", "Del")
    assert status == 202
    inv = body["invocationId"]  # type: ignore[index]
    assert stack.get(f"/restate/attach/{inv}")[:2] == (200, "Hello, Del!")
    assert time.monotonic() - start >= 0.5
    status, body, _ = stack.call("/Greeter/greet/send?delay=300ms", "Ms")
    assert status == 202


def test_idempotency_key_same_invocation(stack: Stack) -> None:
    hdr = {"Idempotency-Key": "order-42"}
    s1, b1, h1 = stack.call("/restate/call/Counter/idem/add", 5, headers=hdr)
    s2, b2, h2 = stack.call("/restate/call/Counter/idem/add", 5, headers=hdr)
    assert (s1, b1) == (s2, b2) == (200, 5)
    assert h1["x-restate-id"] == h2["x-restate-id"]
    s3, b3, _ = stack.call("/restate/send/Counter/idem/add", 5, headers=hdr)
    assert s3 == 202 and b3["status"] == "PreviouslyAccepted"  # type: ignore[index]
    assert b3["invocationId"] == h1["x-restate-id"]  # type: ignore[index]
    assert stack.call("/restate/call/Counter/idem/get")[:2] == (200, 5)


def _count(stack: Stack) -> int:
    status, body, _ = stack.admin("GET", "/invocations?limit=1000")
    assert status == 200
    return len(body["invocations"])  # type: ignore[index]


def test_bad_input_is_a_clear_4xx_and_stores_nothing(stack: Stack) -> None:
    before = _count(stack)
    cases = [
        ("/restate/call/Greeter/greet", b"{not json", {}, 400),
        ("/restate/call/Greeter/greet", b'"x"', {"content-type": "text/html"}, 415),
        ("/restate/call/Nope/greet", b'"x"', {}, 404),
        ("/restate/call/Greeter/nope", b'"x"', {}, 404),
        ("/restate/call/Counter/add", b"1", {}, 400),  # keyed service without a key
        ("/restate/call/Greeter/greet", b'"' + b"x" * 70_000 + b'"', {}, 413),
        ("/restate/send/Greeter/greet?delay=soon", b'"x"', {}, 400),
        ("/restate/call/Greeter/greet?delay=1s", b'"x"', {}, 400),
        ("/restate/call/Greeter/greet", b'"\xff\xfe"', {}, 400),
        ("/restate/call/Greeter/greet", b'"x"', {"Idempotency-Key": " "}, 400),
        ("/restate/nothing/here", b"", {}, 404),
    ]
    for path, raw, headers, expected in cases:
        status, body, _ = stack.call(path, raw=raw, headers=headers)
        assert status == expected, (path, status, body)
        assert isinstance(body, dict) and isinstance(body.get("message"), str), body
    assert stack.get("/restate/call/Greeter/greet")[0] == 405
    assert _count(stack) == before
    # Still serving.
    assert stack.call("/restate/call/Greeter/greet", "ok")[:2] == (200, "Hello, ok!")


def test_unicode_keys_and_payloads(stack: Stack) -> None:
    key = "k%C3%A9y%2Fwith%20slash"
    assert stack.call(f"/restate/call/Counter/{key}/add", 1)[:2] == (200, 1)
    status, body, _ = stack.call("/restate/call/Greeter/greet", "Zoë \u2603 \x00")
    assert (status, body) == (200, "Hello, Zoë \u2603 \x00!")


def test_idempotency_key_reused_concurrently_is_one_invocation(stack: Stack) -> None:
    hdr = {"Idempotency-Key": "burst-1"}

    def add(_: int) -> tuple[int, object, str]:
        status, body, headers = stack.call("/restate/call/Counter/burst/add", 7, headers=hdr)
        return status, body, headers["x-restate-id"]

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(add, range(20)))
    assert {r[:2] for r in results} == {(200, 7)}
    assert len({r[2] for r in results}) == 1
    assert stack.call("/restate/call/Counter/burst/get")[:2] == (200, 7)


def test_attach_and_output_by_idempotency_key_and_target(stack: Stack) -> None:
    hdr = {"Idempotency-Key": "look-me-up"}
    _, _, headers = stack.call("/restate/call/Greeter/greet", "Idem", headers=hdr)
    inv = headers["x-restate-id"]
    _, _, oheaders = stack.call("/restate/call/Counter/ik/add", 2, headers=hdr)
    assert stack.get("/restate/invocation/Greeter/greet/look-me-up/attach")[:2] == (
        200,
        "Hello, Idem!",
    )
    assert stack.get("/restate/invocation/Greeter/greet/look-me-up/output")[:2] == (
        200,
        "Hello, Idem!",
    )
    assert stack.get("/restate/invocation/Counter/ik/add/look-me-up/output")[:2] == (200, 2)
    assert stack.get("/restate/invocation/Greeter/greet/unknown-key/attach")[0] == 404
    target = {
        "target": "idempotentInvocation",
        "service": "Greeter",
        "handler": "greet",
        "idempotencyKey": "look-me-up",
    }
    assert stack.call("/restate/lookup", target)[:2] == (200, {"invocationId": inv})
    assert stack.call("/restate/attach", target)[:2] == (200, "Hello, Idem!")
    by_id = {"target": "invocation", "invocationId": oheaders["x-restate-id"]}
    assert stack.call("/restate/output", by_id)[:2] == (200, 2)
    assert stack.call("/restate/attach", {"target": "nonsense"})[0] == 400
    assert (
        stack.call("/restate/lookup", {"target": "invocation", "invocationId": "inv_x"})[0] == 404
    )
