"""Discovery of the Restate Python SDK test app (``apps/py_app.py``) as a real process: over
HTTP/1.1 it announces REQUEST_RESPONSE, over h2c (prior knowledge) BIDI_STREAM, and its manifest
lists every service and handler of the app with their kinds."""

from __future__ import annotations

import json
import socket
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.procs import http
from tests.restate.conftest import PyApp

ACCEPT = (
    "application/vnd.restate.endpointmanifest.v4+json, "
    "application/vnd.restate.endpointmanifest.v3+json, "
    "application/vnd.restate.endpointmanifest.v2+json"
)
MANIFEST_V4 = "application/vnd.restate.endpointmanifest.v4+json"

# service -> (ty, {handler: handler ty}); a plain service's handlers carry no "ty"
EXPECTED: dict[str, tuple[str, dict[str, str | None]]] = {
    "Greeter": (
        "SERVICE",
        {"greet": None, "ten": None, "fail_terminal": None, "flaky": None},
    ),
    "Counter": (
        "VIRTUAL_OBJECT",
        {
            "add": "EXCLUSIVE",
            "get": "SHARED",
            "reset": "EXCLUSIVE",
            "clear_all": "EXCLUSIVE",
            "keys": "SHARED",
            "set_many": "EXCLUSIVE",
        },
    ),
    "Sleeper": ("SERVICE", {"sleep": None}),
    "Caller": (
        "SERVICE",
        {
            "call_greet": None,
            "send_greet": None,
            "call_counter": None,
            "call_idempotent": None,
            "sleep_idempotent": None,
            "call_ritornello": None,
            "send_ritornello": None,
        },
    ),
    "AwakeableBox": ("VIRTUAL_OBJECT", {"put": "EXCLUSIVE", "get": "SHARED"}),
    "Awaiter": ("SERVICE", {"wait_awakeable": None, "resolve": None, "reject": None}),
    "Signup": ("WORKFLOW", {"run": "WORKFLOW", "confirm": "SHARED", "peek": "SHARED"}),
    "Canceller": ("SERVICE", {"long_sleep": None, "cancel": None, "start_and_cancel": None}),
    "Attacher": ("SERVICE", {"attach": None, "send_and_attach": None}),
    "Racer": ("SERVICE", {"race": None, "first_of": None, "both": None}),
    "Signaller": ("SERVICE", {"wait_signal": None, "send_signal": None}),
}


def check_manifest(manifest: dict[str, Any], mode: str) -> None:
    assert manifest["protocolMode"] == mode
    assert (manifest["minProtocolVersion"], manifest["maxProtocolVersion"]) == (5, 7)
    found = {
        s["name"]: (s["ty"], {h["name"]: h.get("ty") for h in s["handlers"]})
        for s in manifest["services"]
    }
    assert found == EXPECTED
    greeter = next(s for s in manifest["services"] if s["name"] == "Greeter")
    greet = next(h for h in greeter["handlers"] if h["name"] == "greet")
    assert greet["input"]["contentType"] == "application/json"
    assert greet["output"]["contentType"] == "application/json"
    fail = next(h for h in greeter["handlers"] if h["name"] == "fail_terminal")
    assert fail["input"] == {}  # no input parameter


def h2c_request(
    url: str, method: str, path: str, headers: dict[str, str], body: bytes = b""
) -> tuple[int, dict[str, str], bytes]:
    """One request over cleartext HTTP/2 with prior knowledge: (status, headers, body)."""
    import h2.connection
    import h2.events

    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        conn = h2.connection.H2Connection()
        conn.initiate_connection()
        stream = conn.get_next_available_stream_id()
        request = [
            (":method", method),
            (":path", path),
            (":scheme", "http"),
            (":authority", parts.netloc),
            *headers.items(),
        ]
        conn.send_headers(stream, request, end_stream=not body)
        if body:
            conn.send_data(stream, body, end_stream=True)
        sock.sendall(conn.data_to_send())
        status, got, data, ended = 0, {}, bytearray(), False
        while not ended:
            chunk = sock.recv(65536)
            assert chunk, "connection closed before the response ended"
            for event in conn.receive_data(chunk):
                if isinstance(event, h2.events.ResponseReceived):
                    got = {_text(k): _text(v) for k, v in event.headers}
                    status = int(got.pop(":status"))
                elif isinstance(event, h2.events.DataReceived):
                    data += event.data
                    conn.acknowledge_received_data(event.flow_controlled_length, stream)
                elif isinstance(event, h2.events.StreamEnded | h2.events.StreamReset):
                    ended = True
            sock.sendall(conn.data_to_send())
        conn.close_connection()
        sock.sendall(conn.data_to_send())
    return status, got, bytes(data)


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def test_discovery_over_http1_is_request_response(restate_py_app: PyApp) -> None:
    status, body, headers = http("GET", f"{restate_py_app.url}/health")
    assert (status, body) == (200, {"status": "ok"})

    status, manifest, headers = http(
        "GET", f"{restate_py_app.url}/discover", headers={"accept": ACCEPT}
    )
    assert status == 200, manifest
    assert headers["content-type"] == MANIFEST_V4
    assert headers["x-restate-server"].startswith("restate-sdk-python/1.2.")
    check_manifest(manifest, "REQUEST_RESPONSE")


def test_http1_endpoint_refuses_http2(restate_py_app: PyApp) -> None:
    pytest.importorskip("h2")
    status, _, body = h2c_request(restate_py_app.url, "GET", "/discover", {"accept": ACCEPT})
    assert status == 505, body


def test_discovery_over_h2c_is_bidi_stream(restate_py_app_h2: PyApp) -> None:
    pytest.importorskip("h2")
    status, headers, body = h2c_request(
        restate_py_app_h2.url, "GET", "/discover", {"accept": ACCEPT}
    )
    assert status == 200, body
    assert headers["content-type"] == MANIFEST_V4
    check_manifest(json.loads(body), "BIDI_STREAM")


def test_h2_endpoint_refuses_http1_but_for_health(restate_py_app_h2: PyApp) -> None:
    status, body, _ = http("GET", f"{restate_py_app_h2.url}/discover", headers={"accept": ACCEPT})
    assert status == 505, body
    status, body, _ = http("GET", f"{restate_py_app_h2.url}/health")
    assert (status, body) == (200, {"status": "ok"})


def test_step_counts_start_empty(restate_py_app: PyApp) -> None:
    assert restate_py_app.all_counts() == {}
    assert restate_py_app.step_counts("inv_none") == {}
