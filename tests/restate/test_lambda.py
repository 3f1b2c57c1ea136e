"""Restate's service protocol over AWS Lambda: the Restate Python SDK's own Lambda handler
(``apps/lambda_app.py``, ``restate.app(...)`` with ``AWS_LAMBDA_FUNCTION_NAME`` set) behind
``ritornello lambda-emulator``, registered by ARN with a real ``ritornello serve`` and driven
through the ingress; and, in this process, the ``LambdaInvoker``'s side of it against the
emulator's app with a recording fake function: the API Gateway event it sends, how it reads the
answer, and how discovery tells a Restate function from a Ritornello one."""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import json
import os
import threading
import time
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from ritornello.cli._lambda_emulator import LambdaEmulator
from ritornello.orchestrator.invokers import InvokerError
from ritornello.orchestrator.invokers._lambda import (
    MAX_PAYLOAD,
    FunctionUrlInvoker,
    LambdaInvoker,
    gateway_event,
    read_gateway_answer,
)
from tests.procs import LambdaEmulatorProcess, Orchestrator, aws_env, http, uvicorn_thread

ARN = "arn:aws:lambda:us-east-1:123456789012:function:restate-app:1"
APP = "tests/restate/apps/lambda_app.py"
V5 = "application/vnd.restate.invocation.v5"


# ---------------------------------------------------------------- the SDK's handler, for real


def emulator_process(tmp: Path, counts: Path) -> LambdaEmulatorProcess:
    """``ritornello lambda-emulator apps/lambda_app.py`` with the environment Lambda gives a
    function (``AWS_LAMBDA_FUNCTION_NAME``: the SDK then builds a Lambda handler) and the
    step-count file."""
    return LambdaEmulatorProcess(
        tmp,
        APP,
        AWS_LAMBDA_FUNCTION_NAME="restate-app",
        AWS_LAMBDA_FUNCTION_VERSION="1",
        RESTATE_APP_COUNTS=str(counts),
        PYTHONUNBUFFERED="1",
    )


class World:
    def __init__(self, tmp: Path, emulator: LambdaEmulatorProcess, counts: Path) -> None:
        self.tmp, self.emulator, self.counts = tmp, emulator, counts
        self.orch = Orchestrator(tmp, **aws_env(emulator.port, tmp))

    def call(self, path: str, body: Any = None) -> tuple[int, Any, dict[str, str]]:
        return http("POST", f"{self.orch.ingress}/{path}", body)

    def send(self, path: str, body: Any = None) -> str:
        status, payload, _ = self.call(f"{path}/send", body)
        assert status == 202, payload
        return str(payload["invocationId"])

    def output(self, inv_id: str) -> tuple[int, Any]:
        url = f"{self.orch.ingress}/restate/invocation/{inv_id}/attach"
        status, payload, _ = http("GET", url, timeout=30)
        return status, payload

    def invocation(self, inv_id: str) -> dict[str, Any]:
        status, payload, _ = http("GET", f"{self.orch.admin}/invocations/{inv_id}")
        assert status == 200, payload
        return dict(payload)

    def all_counts(self) -> collections.Counter[tuple[str, str]]:
        found: collections.Counter[tuple[str, str]] = collections.Counter()
        with contextlib.suppress(FileNotFoundError):
            for line in self.counts.read_text(encoding="utf-8").splitlines():
                inv, _, step = line.partition(" ")
                found[inv, step] += 1
        return found

    def step_counts(self, inv_id: str) -> dict[str, int]:
        return {s: n for (i, s), n in sorted(self.all_counts().items()) if i == inv_id}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("restate-lambda")
    counts = tmp / "counts.txt"
    emulator = emulator_process(tmp, counts).start()
    w = World(tmp, emulator, counts)
    try:
        w.orch.start()
        status, body, _ = http("POST", f"{w.orch.admin}/deployments", {"arn": ARN})
        assert status == 201, (body, w.orch.output(), emulator.output())
        yield w
    finally:
        w.orch.terminate()
        emulator.terminate()


def test_registered_by_arn_from_the_sdks_manifest(world: World) -> None:
    status, deps, _ = http("GET", f"{world.orch.admin}/deployments")
    assert status == 200
    (dep,) = deps["deployments"]
    assert dep["uri"] == ARN
    kinds = {s["name"]: s["kind"] for s in dep["services"]}
    assert kinds == {
        "Greeter": "service",
        "Counter": "object",
        "Sleeper": "service",
        "Caller": "service",
    }
    handlers = {(s["name"], h["name"]): h["kind"] for s in dep["services"] for h in s["handlers"]}
    assert handlers["Counter", "get"] == "shared" and handlers["Counter", "add"] == "exclusive"


def test_one_run_and_ten_runs_each_run_once(world: World) -> None:
    inv = world.send("Greeter/greet", "Ann")
    assert world.output(inv) == (200, "Hello Ann!"), world.orch.output()
    assert world.step_counts(inv) == {"greet": 1}

    inv = world.send("Greeter/ten", "x")
    assert world.output(inv) == (200, 45), world.orch.output()
    assert world.step_counts(inv) == {f"step-{i}": 1 for i in range(10)}
    journal = world.invocation(inv)["journal"]
    runs = [e for e in journal if e["kind"] == "run"]
    assert [(e["name"], e["value"]) for e in runs] == [(f"step-{i}", i) for i in range(10)]
    assert journal[-1]["kind"] == "output" and journal[-1]["value"] == 45


def test_virtual_object_state(world: World) -> None:
    assert world.call("Counter/c1/add", 5)[:2] == (200, 5)
    assert world.call("Counter/c1/add", 2)[:2] == (200, 7)
    assert world.call("Counter/c1/get")[:2] == (200, 7)
    assert world.call("Counter/c2/get")[:2] == (200, 0)
    status, state, _ = http("GET", f"{world.orch.admin}/services/Counter/state/c1")
    assert status == 200 and state["state"] == {"count": 7}, state


def test_a_sleep_suspends_the_function_and_a_timer_wakes_it(world: World) -> None:
    started = time.monotonic()
    inv = world.send("Sleeper/sleep", 200)
    assert world.output(inv) == (200, "before 200 ms after"), world.orch.output()
    assert time.monotonic() - started >= 0.2
    assert world.step_counts(inv) == {"before": 1, "after": 1}
    kinds = [e["kind"] for e in world.invocation(inv)["journal"]]
    assert "sleep" in kinds


def test_a_call_between_two_services(world: World) -> None:
    before = world.all_counts()
    assert world.call("Caller/call_greet", "Bob")[:2] == (200, "Hello Bob!"), world.orch.output()
    new = world.all_counts() - before
    assert [(step, n) for (_, step), n in new.items()] == [("greet", 1)]  # the callee's step


def test_every_step_ran_once_and_a_restart_speaks_restate_again(world: World) -> None:
    assert world.all_counts() and set(world.all_counts().values()) == {1}
    world.orch.terminate()
    world.orch = Orchestrator(world.tmp, **aws_env(world.emulator.port, world.tmp)).start()
    inv = world.send("Greeter/greet", "again")
    assert world.output(inv) == (200, "Hello again!"), world.orch.output()
    assert world.step_counts(inv) == {"greet": 1}


# ---------------------------------------------------------------- the invoker's side, in process


MANIFEST = {
    "protocolMode": "REQUEST_RESPONSE",
    "minProtocolVersion": 5,
    "maxProtocolVersion": 7,
    "services": [{"name": "Svc", "ty": "SERVICE", "handlers": [{"name": "h"}]}],
}
RITORNELLO_DISCOVERY = {
    "version": 1,
    "protocol": {"min": 1, "max": 1},
    "services": [
        {"name": "R", "kind": "service", "handlers": [{"name": "h", "kind": "exclusive"}]}
    ],
}


class FakeFunction:
    """Records every event; answers as the function named in the ARN would:

    * ``restate``: as the Restate SDK's handler (raises on an event without ``httpMethod``;
      ``GET /discover`` -> the manifest; ``POST /invoke/...`` -> what ``reply`` says);
    * ``ritornello``: Ritornello's discovery event -> its discovery document;
    * ``broken``: raises on every event.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: list[tuple[str, Any]] = []
        self.reply: dict[str, Any] = {}

    def __call__(self, event: Any, context: Any) -> Any:
        with self.lock:
            self.events.append((context.function_name, event))
        name = context.function_name
        if name == "broken":
            raise RuntimeError("cannot import the app")
        if name == "ritornello":
            assert event == {"ritornello": "discover"}
            return RITORNELLO_DISCOVERY
        method = event["httpMethod"]  # KeyError on Ritornello's event, as the SDK's
        assert event["isBase64Encoded"] is True
        if method == "GET" and event["path"] == "/discover":
            body = json.dumps(MANIFEST).encode()
            ctype = "application/vnd.restate.endpointmanifest.v4+json"
            return {
                "statusCode": 200,
                "headers": {"content-type": ctype},
                "body": base64.b64encode(body).decode(),
                "isBase64Encoded": True,
            }
        if "raise" in self.reply:
            raise ValueError(self.reply["raise"])
        if "raw" in self.reply:
            return self.reply["raw"]
        echoed = b"echo:" + base64.b64decode(event["body"])
        return {
            "statusCode": self.reply.get("status", 200),
            "headers": {"content-type": event["headers"].get("content-type", "")},
            "body": base64.b64encode(echoed).decode(),
            "isBase64Encoded": True,
        }


FAKE = FakeFunction()


@pytest.fixture(scope="module")
def front() -> Iterator[str]:
    emulator = LambdaEmulator(FAKE)
    try:
        with uvicorn_thread(emulator, lifespan="off") as url:
            yield url
    finally:
        emulator.close()


@pytest.fixture
def aws(front: str, monkeypatch: pytest.MonkeyPatch) -> FakeFunction:
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", front)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    FAKE.events.clear()
    FAKE.reply = {}
    return FAKE


def arn(name: str) -> str:
    return f"arn:aws:lambda:us-east-1:123456789012:function:{name}:1"


def run(coro: Awaitable[Any]) -> Any:
    async def main() -> Any:
        return await asyncio.wait_for(coro, 30)

    return asyncio.run(main())


async def with_invoker(name: str, use: Any, **kw: Any) -> Any:
    invoker = LambdaInvoker(arn(name), timeout_s=10.0, **kw)
    try:
        return await use(invoker)
    finally:
        await invoker.close()


def test_discovery_tells_a_restate_function_from_a_ritornello_one(aws: FakeFunction) -> None:
    async def discover(invoker: LambdaInvoker) -> bytes:
        return await invoker.discover()

    assert json.loads(run(with_invoker("restate", discover))) == MANIFEST
    (_, first), (_, second) = aws.events
    assert first == {"ritornello": "discover"}
    assert set(second) == {"path", "httpMethod", "headers", "body", "isBase64Encoded"}
    assert (second["path"], second["httpMethod"], second["body"]) == ("/discover", "GET", "")
    assert second["isBase64Encoded"] is True  # even for an empty body: the PY SDK asserts it
    accept = second["headers"]["accept"]
    assert "application/vnd.restate.endpointmanifest.v4+json" in accept

    aws.events.clear()  # a Ritornello function: its answer, one Invoke as before
    assert json.loads(run(with_invoker("ritornello", discover))) == RITORNELLO_DISCOVERY
    assert [e for _, e in aws.events] == [{"ritornello": "discover"}]

    aws.events.clear()  # a function failing on both: the error says so, once
    with pytest.raises(InvokerError, match=r"RuntimeError: cannot import the app") as err:
        run(with_invoker("broken", discover))
    assert str(err.value).count("cannot import") == 1 and len(aws.events) == 2


def test_invoke_as_sends_an_api_gateway_event_with_the_body_in_base64(aws: FakeFunction) -> None:
    body = bytes(range(256)) * 3  # framed protocol bytes: binary, not UTF-8

    async def invoke(invoker: LambdaInvoker) -> bytes:
        assert invoker.carries_others
        invoker.speak({"Content-Type": V5, "accept": V5})
        return await invoker.invoke_as("My Svc", "h/1", body, {"x-restate-invocation-id": "i1"})

    assert run(with_invoker("restate", invoke)) == b"echo:" + body
    ((_, event),) = aws.events
    assert set(event) == {"path", "httpMethod", "headers", "body", "isBase64Encoded"}
    assert event["path"] == "/invoke/My%20Svc/h%2F1" and event["httpMethod"] == "POST"
    assert event["headers"] == {
        "content-type": V5,
        "accept": V5,
        "x-restate-invocation-id": "i1",
    }
    assert event["isBase64Encoded"] is True and base64.b64decode(event["body"]) == body


def test_a_non_200_status_and_other_failures_are_invoker_errors(aws: FakeFunction) -> None:
    async def invoke(invoker: LambdaInvoker) -> bytes:
        invoker.speak({"content-type": V5})
        return await invoker.invoke_as("Svc", "h", b"x", {})

    aws.reply = {"status": 500}
    with pytest.raises(InvokerError, match=r"answered HTTP 500 Internal Server Error to POST"):
        run(with_invoker("restate", invoke))
    aws.reply = {"status": 404}
    with pytest.raises(InvokerError, match=r"HTTP 404 Not Found"):
        run(with_invoker("restate", invoke))
    aws.reply = {"raise": "kaput"}
    with pytest.raises(InvokerError, match=r"function error \(Unhandled\): ValueError: kaput"):
        run(with_invoker("restate", invoke))
    aws.reply = {"raw": {"status": "done"}}
    with pytest.raises(InvokerError, match=r"not in API Gateway's shape"):
        run(with_invoker("restate", invoke))
    aws.reply = {"raw": {"statusCode": 200, "body": "!!", "isBase64Encoded": True}}
    with pytest.raises(InvokerError, match=r"not base64"):
        run(with_invoker("restate", invoke))
    zstd = {"statusCode": 200, "headers": {"content-encoding": "zstd"}, "body": ""}
    aws.reply = {"raw": zstd}
    with pytest.raises(InvokerError, match=r"encoded 'zstd'"):
        run(with_invoker("restate", invoke))
    aws.reply = {}
    calls = len(aws.events)

    async def too_big(invoker: LambdaInvoker) -> bytes:
        invoker.speak({"content-type": V5})
        return await invoker.invoke_as("Svc", "h", b"\0" * (MAX_PAYLOAD * 3 // 4), {})

    with pytest.raises(InvokerError, match=r"over the 6,291,456-byte payload limit"):
        run(with_invoker("restate", too_big))
    assert len(aws.events) == calls  # refused before invoking

    async def small_limit(invoker: LambdaInvoker) -> bytes:
        invoker.speak({"content-type": V5})
        return await invoker.invoke_as("Svc", "h", b"y" * 2000, {})

    with pytest.raises(InvokerError, match=r"answer larger than the max_answer_bytes limit"):
        run(with_invoker("restate", small_limit, max_answer_bytes=1000))


def test_gateway_shapes() -> None:
    event = json.loads(gateway_event("GET", "/discover", {"Accept": "a"}, b""))
    assert event == {
        "path": "/discover",
        "httpMethod": "GET",
        "headers": {"accept": "a"},
        "body": "",
        "isBase64Encoded": True,
    }
    plain = json.dumps({"statusCode": 202, "headers": None, "body": "hi"}).encode()
    answer = read_gateway_answer(plain)
    assert answer is not None and (answer.status, answer.headers, answer.body) == (202, {}, b"hi")
    assert read_gateway_answer(json.dumps(RITORNELLO_DISCOVERY).encode()) is None
    assert read_gateway_answer(b'{"statusCode": "200"}') is None


def test_a_function_url_signs_the_content_type_it_sends() -> None:
    """SigV4 covers content-type: after ``speak`` it must be Restate's, as sent."""
    invoker = FunctionUrlInvoker("https://abc123.lambda-url.eu-west-1.on.aws", timeout_s=5.0)
    invoker._credentials = Credentials("testing", "testing")
    invoker.speak({"content-type": V5, "accept": V5})
    body = b"\0framed"
    headers = invoker.signed_headers("POST", "/invoke/Svc/h", body)
    check = AWSRequest(
        method="POST",
        url=f"{invoker.uri}/invoke/Svc/h",
        data=body,
        headers={"content-type": V5, "X-Amz-Date": headers["x-amz-date"]},
    )
    check.context["timestamp"] = headers["x-amz-date"]
    signer = SigV4Auth(Credentials("testing", "testing"), "lambda", "eu-west-1")
    expected = signer.signature(
        signer.string_to_sign(check, signer.canonical_request(check)), check
    )
    assert headers["authorization"].endswith(f"Signature={expected}")
    run(invoker.close())
