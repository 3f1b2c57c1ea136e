"""The minimal admin API over loopback."""

from __future__ import annotations

from tests.integration.conftest import Stack


def test_health_version_services(stack: Stack) -> None:
    assert stack.admin("GET", "/health")[0] == 200
    assert stack.admin("GET", "/version")[0] == 200
    _, body, _ = stack.admin("GET", "/services")
    names = {s["name"]: s for s in body["services"]}  # type: ignore[index]
    assert {"Greeter", "Counter", "Checkout", "Inventory", "Payments"} <= set(names)
    assert names["Counter"]["ty"] == "VirtualObject"
    _, body, _ = stack.admin("GET", "/services/Counter/handlers")
    kinds = {h["name"]: h["ty"] for h in body["handlers"]}  # type: ignore[index]
    assert kinds == {"add": "Exclusive", "get": "Shared", "reset": "Exclusive"}
    assert stack.admin("GET", "/services/Nope")[0] == 404


def test_deployments(stack: Stack) -> None:
    status, body, _ = stack.admin("GET", "/deployments")
    (dep,) = body["deployments"]  # type: ignore[index]
    assert dep["uri"] == stack.endpoint.uri
    assert stack.admin("GET", f"/deployments/{dep['id']}")[1]["id"] == dep["id"]  # type: ignore[index]
    # Re-registering the same URI refreshes it in place.
    status, again, _ = stack.admin("POST", "/deployments", {"uri": stack.endpoint.uri})
    assert status == 201 and again["id"] == dep["id"]  # type: ignore[index]
    status, body, _ = stack.admin("POST", "/deployments", {"uri": "http://127.0.0.1:1"})
    assert status == 502
    assert stack.admin("POST", "/deployments", {"uri": "ftp://x"})[0] == 400
    assert stack.admin("POST", "/deployments", {"nope": 1})[0] == 422


def test_invocation_with_journal(stack: Stack) -> None:
    _, _, headers = stack.call("/restate/call/Checkout/place_order", {"items": ["pear"]})
    status, body, _ = stack.admin("GET", f"/invocations/{headers['x-restate-id']}")
    assert status == 200
    assert body["status"] == "succeeded"  # type: ignore[index]
    kinds = [e["kind"] for e in body["journal"]]  # type: ignore[index]
    assert kinds == ["input", "call", "call", "output"]
    completion = body["journal"][1]["completion"]  # type: ignore[index]
    assert completion["value"] == 70 and completion["at"] >= body["journal"][1]["at"]  # type: ignore[index]
    assert stack.admin("GET", "/invocations/inv_missing")[0] == 404
