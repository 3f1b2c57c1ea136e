"""The SDK's side of the checkpoint channel (``sdk/_channel.py``, docs/protocol.md "Checkpoint
channel"): ``Endpoint(...).lambda_handler()`` given an InvokeRequest that names a channel POSTs
its checkpoints to a real HTTP server on loopback (``http.server``, scripted answers) and goes
on, stops, falls back or gives up as the answers say."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from ritornello import Context, Endpoint, Service
from ritornello.protocol import InvokeResponse, Signer
from ritornello.sdk._channel import FELL_BACK, TOKEN_HEADER

SECRET = "channel-test-secret"
steps = Service("Steps")
ran_steps: list[str] = []


def _effect(name: str) -> str:
    ran_steps.append(name)
    return name.upper()


@steps.handler()
async def ten(ctx: Context, n: int) -> list[str]:
    return [await ctx.run(f"step-{i}", _effect, f"step-{i}") for i in range(n)]


#: What the server answers the n-th checkpoint (from 1): (status, body, close after it)
Script = Callable[[int, dict[str, Any]], tuple[int, bytes, bool]]


class Server:
    """An HTTP/1.1 server on loopback answering checkpoints by ``script``, recording them."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.received: list[dict[str, Any]] = []
        self.tokens: list[str] = []
        self.peers: set[int] = set()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers["content-length"])
                body = json.loads(self.rfile.read(length))
                outer.received.append(body)
                outer.tokens.append(self.headers.get(TOKEN_HEADER, ""))
                outer.peers.add(self.client_address[1])
                status, data, close = outer.script(len(outer.received), body)
                self.send_response(status)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                self.close_connection = close  # without saying so: a kept connection dies

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = (
            f"http://127.0.0.1:{self.httpd.server_address[1]}/ritornello/v1/lambda/checkpoint"
        )
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def __enter__(self) -> Server:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _acks(n: int, body: dict[str, Any]) -> tuple[int, bytes, bool]:
    return 200, b'{"type":"ack"}', False


def request(inv: str, n: int, url: str, token: str = "tok") -> dict[str, Any]:
    return {
        "version": 1,
        "type": "invoke",
        "id": inv,
        "service": "Steps",
        "handler": "ten",
        "key": None,
        "attempt": 1,
        "journal": [{"kind": "input", "value": n}],
        "completions": [],
        "state": None,
        "channel": {"url": url, "token": token},
    }


@pytest.fixture(autouse=True)
def _clean() -> Iterator[None]:
    ran_steps.clear()
    yield
    ran_steps.clear()


def test_a_ten_step_handler_runs_in_one_lambda_run_with_acked_checkpoints() -> None:
    handler = Endpoint([steps]).lambda_handler()
    with Server(_acks) as server:
        answer = handler(request("inv_chan_ten", 10, server.url, "t-1"))
    assert answer["status"] == "done"
    assert ran_steps == [f"step-{i}" for i in range(10)]  # every step once, in this one run
    # nine checkpoints, each step's result before the next step starts
    assert len(server.received) == 9
    for i, body in enumerate(server.received):
        assert body["status"] == "checkpoint"
        assert [e["name"] for e in body["entries"]] == [f"step-{i}"]
    assert set(server.tokens) == {"t-1"}
    # the answer is relative to the journal as acknowledged: the last step and the output
    assert [e["kind"] for e in answer["entries"]] == ["run", "output"]
    assert answer["channel_acks"] == 9  # every ack sent: the orchestrator reads the answer
    assert answer["entries"][1]["value"] == [f"STEP-{i}" for i in range(10)]
    assert len(server.peers) == 1  # one keep-alive connection for every checkpoint


def test_discovery_offers_the_channel_unless_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Endpoint([steps]).lambda_handler()({"ritornello": "discover"})["channel"] is True
    monkeypatch.setenv("RITORNELLO_CHANNEL", "0")
    handler = Endpoint([steps]).lambda_handler()
    assert "channel" not in handler({"ritornello": "discover"})
    with Server(_acks) as server:  # named anyway: not used, one checkpoint answer as before
        answer = handler(request("inv_chan_off", 3, server.url))
    assert server.received == []
    assert answer["status"] == "checkpoint" and ran_steps == ["step-0"]


def test_a_stop_ends_the_run_starting_nothing_more() -> None:
    def script(n: int, body: dict[str, Any]) -> tuple[int, bytes, bool]:
        return (200, b'{"type":"ack"}', False) if n < 3 else (409, b'{"message":"stop"}', False)

    with Server(script) as server:
        answer = Endpoint([steps]).lambda_handler()(request("inv_chan_stop", 10, server.url))
    assert len(server.received) == 3
    assert ran_steps == [
        "step-0",
        "step-1",
        "step-2",
    ]  # the step after the refused checkpoint: never
    # committed already: nothing to answer; and the acks it saw, for the orchestrator to check
    assert answer == {"version": 1, "status": "checkpoint", "entries": [], "channel_acks": 2}
    assert "inv_chan_stop" not in FELL_BACK


@pytest.mark.parametrize("status", [500, 503, 400, 413])
def test_an_error_status_falls_back_to_answering_the_checkpoint(status: int) -> None:
    inv = f"inv_chan_status_{status}"

    def script(n: int, body: dict[str, Any]) -> tuple[int, bytes, bool]:
        return (200, b'{"type":"ack"}', False) if n < 2 else (status, b'{"message":"no"}', False)

    handler = Endpoint([steps]).lambda_handler()
    with Server(script) as server:
        answer = handler(request(inv, 10, server.url))
        assert ran_steps == ["step-0", "step-1"]
        # the refused checkpoint is the Lambda's answer, relative to the acknowledged journal
        assert answer["status"] == "checkpoint"
        assert [e["name"] for e in answer["entries"]] == ["step-1"]
        assert inv in FELL_BACK
        # the next request of that invocation does not try the channel again
        again = request(inv, 10, server.url)
        again["journal"] += [
            {"kind": "run", "name": "step-0", "value": "STEP-0"},
            {"kind": "run", "name": "step-1", "value": "STEP-1"},
        ]
        answer = handler(again)
    assert len(server.received) == 2
    assert answer["status"] == "checkpoint"
    assert [e["name"] for e in answer["entries"]] == ["step-2"]


def test_an_unreachable_orchestrator_falls_back_at_once() -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/ritornello/v1/lambda/checkpoint"
    started = time.monotonic()
    answer = Endpoint([steps]).lambda_handler()(request("inv_chan_refused", 10, url))
    assert time.monotonic() - started < 5
    assert answer["status"] == "checkpoint"
    assert [e["name"] for e in answer["entries"]] == ["step-0"]  # as without a channel
    assert ran_steps == ["step-0"]
    assert "inv_chan_refused" in FELL_BACK


def test_a_connect_timeout_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    # a listening socket whose backlog is full: connections hang (SYNs dropped) on loopback
    monkeypatch.setenv("RITORNELLO_CHANNEL_CONNECT_TIMEOUT_S", "0.3")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers = []
    try:
        for _ in range(8):
            f = socket.socket()
            f.setblocking(False)
            f.connect_ex(listener.getsockname())
            fillers.append(f)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/ritornello/v1/lambda/checkpoint"
        started = time.monotonic()
        answer = Endpoint([steps]).lambda_handler()(request("inv_chan_timeout", 3, url))
        assert time.monotonic() - started < 5
    finally:
        for f in fillers:
            f.close()
        listener.close()
    # unreachable (timed out connecting) or refused: either way the checkpoint is the answer
    assert answer["status"] == "checkpoint"
    assert [e["name"] for e in answer["entries"]] == ["step-0"]


def test_a_server_that_closes_a_kept_connection_is_retried_on_a_fresh_one() -> None:
    with Server(lambda n, b: (200, b'{"type":"ack"}', True)) as server:
        answer = Endpoint([steps]).lambda_handler()(request("inv_chan_close", 5, server.url))
    assert answer["status"] == "done"
    assert len(server.received) == 4 and ran_steps == [f"step-{i}" for i in range(5)]
    assert len(server.peers) == 4  # a new connection each time


def test_an_answer_that_is_not_an_ack_ends_the_run_without_entries() -> None:
    with Server(lambda n, b: (200, b'{"type":"nack"}', False)) as server:
        answer = Endpoint([steps]).lambda_handler()(request("inv_chan_nack", 5, server.url))
    assert ran_steps == ["step-0"]
    # whether it was committed is unknown: nothing is answered twice
    assert answer["status"] == "error" and answer["entries"] == []
    assert "not the ack due" in answer["error"]["message"]


def test_no_ack_in_time_ends_the_run_without_entries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RITORNELLO_CHANNEL_ACK_TIMEOUT_S", "0.3")

    def slow(n: int, body: dict[str, Any]) -> tuple[int, bytes, bool]:
        time.sleep(1.0)  # committed or not: the SDK cannot tell
        return 200, b'{"type":"ack"}', False

    with Server(slow) as server:
        answer = Endpoint([steps]).lambda_handler()(request("inv_chan_slow", 5, server.url))
    assert ran_steps == ["step-0"]
    assert answer["status"] == "error" and answer["entries"] == []
    assert "broke after sending" in answer["error"]["message"]
    assert "inv_chan_slow" not in FELL_BACK


def _signed(body: dict[str, Any]) -> tuple[dict[str, Any], str]:
    payload, bind = Signer(SECRET).lambda_envelope(json.dumps(body).encode(), time.time())
    return json.loads(payload), bind


def test_signed_requests_take_only_acks_bound_to_them() -> None:
    signer = Signer(SECRET)
    bind: list[str] = []

    def script(n: int, body: dict[str, Any]) -> tuple[int, bytes, bool]:
        return 200, signer.lambda_ack(bind[0], n), False

    handler = Endpoint([steps], signing_secret=SECRET).lambda_handler()
    with Server(script) as server:
        event, b = _signed(request("inv_chan_signed", 6, server.url))
        bind.append(b)
        answer = handler(event)
    assert answer["status"] == "done" and len(server.received) == 5
    assert ran_steps == [f"step-{i}" for i in range(6)]

    ran_steps.clear()
    for wrong in (
        lambda n, b: (200, b'{"type":"ack"}', False),  # unauthenticated
        lambda n, b: (200, signer.lambda_ack("0" * 64, n), False),  # another request's
        lambda n, b: (200, signer.lambda_ack(bind[0], n + 1), False),  # not the one due
        lambda n, b: (200, Signer("other").lambda_ack(bind[0], n), False),  # another secret
    ):
        ran_steps.clear()
        with Server(wrong) as server:
            event, b = _signed(request("inv_chan_forged", 6, server.url))
            bind[0] = b
            answer = handler(event)
        assert ran_steps == ["step-0"], answer  # never a step after an unauthenticated ack
        assert answer["status"] == "error" and answer["entries"] == []


def test_the_sdk_imports_no_http_client_until_a_channel_is_used() -> None:
    code = (
        "import sys; import ritornello; from ritornello.sdk import _lambda; "
        "_lambda.lambda_handler(ritornello.Endpoint([]))({'ritornello': 'discover'}); "
        "print('ritornello.sdk._channel' in sys.modules); "
        "print('http.client' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.split() == ["False", "False"], out.stderr


def test_the_response_of_a_stop_is_a_valid_answer() -> None:
    # (what the orchestrator would read, were it still listening: nothing to commit)
    assert (
        InvokeResponse.decode({"version": 1, "status": "checkpoint", "entries": []}).entries == []
    )
