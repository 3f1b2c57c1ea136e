"""Fuzzing the ingress of one running ``ritornello dev`` (examples, SQLite, 4 KiB body limit):
random methods, paths (known names, random text, random bytes, percent-encoded), query
strings, headers and bodies (random bytes, random JSON, oversized). Whatever comes in, the
answer is never a 5xx, no exception reaches the server log, and a normal call still answers.

Bounded: 200 examples (a few seconds). Handlers that wait on the outside world (Approvals,
Signup) are never named, so no request can hang by design; every request has a timeout.
"""

from __future__ import annotations

import json
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from http.client import HTTPResponse
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.procs import ROOT, Proc, free_port, http, wait_port

MAX_BODY = 4096


@dataclass
class Dev:
    proc: Proc
    ingress: int
    admin: int
    calls: int = 0

    def assert_serving(self) -> None:
        self.calls += 1
        name = f"fuzz-{self.calls}"
        url = f"http://127.0.0.1:{self.ingress}/restate/call/Greeter/greet"
        assert http("POST", url, name)[:2] == (200, f"Hello, {name}!")

    def crashes_logged(self) -> str:
        log = self.proc.log.read_text(errors="replace")
        return log if "Exception in ASGI application" in log or "Traceback" in log else ""


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dev]:
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    ingress, admin = free_port(), free_port()
    args = [sys.executable, "-m", "ritornello", "dev", str(ROOT / "examples" / "app.py")]
    args += ["--store", f"sqlite:///{tmp / 'fuzz.db'}"]
    args += ["--ingress-port", str(ingress), "--admin-port", str(admin)]
    proc = Proc(args, tmp / "dev.log", {"RITORNELLO_MAX_BODY_BYTES": str(MAX_BODY)}).start()
    try:
        wait_port(admin, proc.proc)
        wait_port(ingress, proc.proc)
        yield Dev(proc, ingress, admin)
    finally:
        proc.terminate()


def _encode(segment: str) -> str:
    return quote(segment.encode("utf-8", "surrogatepass"), safe="")


NAMES = ["Greeter", "Counter", "Checkout", "Nope", "greet", "add", "get", "reset", "send"]
NAMES += ["place_order", "run", "k", "", "resolve", "reject", "attach", "output"]
NAMES += ["inv_aaaaaaaaaaaaaaaaaaaaaaaaaa", "sign_aaaaaaaaaaaaaaaaaaaaaaaaaa_1_bbbbbbbbbbbbbb"]
PREFIXES = [[], ["restate"], ["restate", "call"], ["restate", "send"], ["restate", "attach"]]
PREFIXES += [["restate", "output"], ["restate", "awakeables"], ["restate", "a"]]
PREFIXES += [["restate", "invocation"], ["restate", "workflow"], ["restate", "lookup"]]

segments = st.one_of(
    st.sampled_from(NAMES),
    st.text(max_size=10).map(_encode),
    st.binary(max_size=8).map(lambda b: quote(b, safe="")),
)
# Paths that name a real handler (with a random key) reach the deeper checks: key, delay,
# idempotency key and body validation.
TARGETS = ["/restate/call/Greeter/greet", "/restate/send/Greeter/greet", "/Greeter/greet/send"]
TARGETS += ["/restate/call/Counter/{}/add", "/restate/send/Counter/{}/get", "/Counter/{}/add"]
TARGETS += ["/Counter/{}/reset/send", "/restate/send/Checkout/place_order"]
TARGETS += ["/restate/awakeables/{}/resolve", "/restate/a/{}/reject", "/restate/attach/{}"]
TARGETS += ["/restate/invocation/Counter/{}/add/key/output", "/restate/workflow/Counter/{}/output"]
paths = st.one_of(
    st.builds(
        lambda prefix, rest: "/" + "/".join(prefix + rest),
        st.sampled_from(PREFIXES),
        st.lists(segments, max_size=5),
    ),
    st.builds(lambda t, key: t.format(key), st.sampled_from(TARGETS), segments),
)
delays = st.one_of(
    st.sampled_from(["10ms", "1s", "PT0.1S", "-1s", "P1Y", "", "1e9s", "nan", "PT-1S"]),
    st.builds(  # numbers of every size, up to overflowing a float or a 64-bit integer
        lambda digits, unit, iso: f"PT{digits}S" if iso else f"{digits}{unit}",
        st.integers(1, 400).map(lambda n: "9" * n),
        st.sampled_from(["ms", "s", "m", "h", "d"]),
        st.booleans(),
    ),
    st.text(max_size=12),
)
queries = st.one_of(
    st.just(""),
    delays.map(lambda d: "?delay=" + _encode(d)),
    st.tuples(st.text(max_size=5), st.text(max_size=8)).map(
        lambda kv: f"?{_encode(kv[0])}={_encode(kv[1])}"
    ),
)
header_values = st.binary(max_size=24).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))
content_types = st.one_of(
    st.sampled_from([b"application/json", b"text/plain", b"application/json; charset=utf-8"]),
    st.sampled_from(
        [b"application/x-www-form-urlencoded", b"*/*", b"application/cloudevents+json"]
    ),
    header_values,
)
headers = st.lists(
    st.one_of(
        st.tuples(st.just(b"content-type"), content_types),
        st.tuples(st.just(b"idempotency-key"), header_values),
        st.tuples(st.just(b"content-encoding"), st.sampled_from([b"gzip", b"identity", b"br"])),
        st.tuples(st.sampled_from([b"x-restate-id", b"authorization", b"accept"]), header_values),
    ),
    max_size=3,
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=12,
)
bodies = st.one_of(
    st.just(b""),
    st.binary(max_size=64),
    json_values.map(lambda v: json.dumps(v).encode()),
    json_values.map(lambda v: json.dumps(v, ensure_ascii=False).encode("utf-8", "surrogatepass")),
    st.integers(MAX_BODY - 8, MAX_BODY + 64).map(lambda n: b"[" + b"1," * (n // 2) + b"1]"),
    st.integers(1, 400).map(lambda n: b"[" * n + b"]" * n),
)
methods = st.sampled_from(["POST", "POST", "POST", "GET", "PUT", "DELETE", "PATCH", "OPTIONS"])


def send(port: int, method: str, target: str, hdrs: list[tuple[bytes, bytes]], body: bytes) -> int:
    lines = [f"{method} {target} HTTP/1.1".encode("ascii"), b"host: 127.0.0.1"]
    lines += [b"connection: close", b"content-length: %d" % len(body)]
    lines += [k + b": " + v for k, v in hdrs]
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        sock.sendall(b"\r\n".join(lines) + b"\r\n\r\n" + body)
        resp = HTTPResponse(sock)
        try:
            resp.begin()
            resp.read()
            return resp.status
        finally:
            resp.close()


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(method=methods, path=paths, query=queries, hdrs=headers, body=bodies)
def test_no_request_gets_a_5xx(
    dev: Dev, method: str, path: str, query: str, hdrs: list[Any], body: bytes
) -> None:
    status = send(dev.ingress, method, path + query, hdrs, body)
    assert status < 500, (status, method, path + query, hdrs, body[:200])
    assert not dev.crashes_logged(), dev.crashes_logged()[-3000:]
    dev.assert_serving()


def test_still_serving_after_the_fuzz(dev: Dev) -> None:
    dev.assert_serving()
    assert not dev.crashes_logged(), dev.crashes_logged()[-3000:]
