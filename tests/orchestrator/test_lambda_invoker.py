"""The Lambda invoker against the real Lambda emulator over HTTP on loopback, through boto3.

The emulator (``ritornello lambda-emulator``'s ASGI app) runs under uvicorn on a thread and calls
a fake ``lambda_handler`` defined here that speaks the wire format (discovery, InvokeRequest in,
InvokeResponse out, the gzip envelope both ways), so these tests do not depend on the SDK. A small
ASGI wrapper in front of the emulator records request headers, answers STS ``AssumeRole`` and
throttles one function name, standing in for those AWS behaviours.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import gzip
import json
import os
import socket
import threading
import time
from collections.abc import Awaitable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from ritornello.cli._lambda_emulator import LambdaEmulator
from ritornello.orchestrator import Engine, InvalidRequestError, http_status
from ritornello.orchestrator.invokers import HttpInvoker, InvokerError, make_invoker
from ritornello.orchestrator.invokers._lambda import (
    GZIP_ABOVE,
    MAX_PAYLOAD,
    FunctionUrlInvoker,
    LambdaInvoker,
    decode_payload,
    encode_payload,
    lambda_uri,
    parse_function_arn,
)
from ritornello.orchestrator.invokers._pool import HttpPool
from ritornello.protocol import DiscoveryResponse, InvokeResponse
from ritornello.store.memory import MemoryStore
from tests.procs import uvicorn_thread

ARN = "arn:aws:lambda:us-east-1:123456789012:function:app:1"
ALIAS = ARN[:-2] + ":live"
ROLE = "arn:aws:iam::123456789012:role/ritornello-invoker"
DISCOVERY = {
    "version": 1,
    "protocol": {"min": 1, "max": 1},
    "services": [
        {"name": "Greeter", "kind": "service", "handlers": [{"name": "greet", "kind": "exclusive"}]}
    ],
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------- the fake function


def envelope(obj: Any) -> dict[str, str]:
    data = base64.b64encode(gzip.compress(json.dumps(obj).encode())).decode()
    return {"ritornello_encoding": "gzip", "data": data}


class FakeFunction:
    """A ``lambda_handler`` speaking the wire format; the input value says what to do:
    ``{"echo": v}``, ``{"sleep": s}``, ``{"raise": msg}``, ``{"big_answer": n}``."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.active = 0
        self.peak = 0
        self.calls = 0
        self.enveloped = 0
        self.contexts: list[Any] = []

    def reset(self) -> None:
        with self.lock:
            self.active = self.peak = self.calls = self.enveloped = 0
            self.contexts.clear()

    def __call__(self, event: Any, context: Any) -> Any:
        with self.lock:
            self.calls += 1
            self.active += 1
            self.peak = max(self.peak, self.active)
            self.contexts.append(context)
        try:
            return self._handle(event)
        finally:
            with self.lock:
                self.active -= 1

    def _handle(self, event: Any) -> Any:
        if event.get("ritornello_encoding") == "gzip":
            with self.lock:
                self.enveloped += 1
            event = json.loads(gzip.decompress(base64.b64decode(event["data"])))
        if event == {"ritornello": "discover"}:
            return DISCOVERY
        assert event["type"] == "invoke" and event["version"] == 1
        cmd = event["journal"][0]["value"]
        if "sleep" in cmd:
            time.sleep(cmd["sleep"])
        if "raise" in cmd:
            raise ValueError(cmd["raise"])
        if "big_answer" in cmd:
            value: Any = "y" * cmd["big_answer"]
        elif "echo" in cmd:
            value = cmd["echo"]
        else:
            value = {"id": event["id"], "size": len(json.dumps(cmd))}
        answer = {"version": 1, "status": "done", "entries": [{"kind": "output", "value": value}]}
        return envelope(answer) if "big_answer" in cmd else answer


FAKE = FakeFunction()


class AwsFront:
    """In front of the emulator: records headers, answers STS AssumeRole, throttles ``busy``."""

    def __init__(self, inner: LambdaEmulator) -> None:
        self.inner = inner
        self.headers: list[dict[str, str]] = []
        self.assumed: list[str] = []
        self.expiry_s = 3600

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
            self.headers.append(headers)
            if scope["path"] == "/":  # STS (query protocol: a form body)
                body = b""
                more = True
                while more:
                    msg = await receive()
                    body += msg.get("body", b"")
                    more = msg.get("more_body", False)
                await self._sts(parse_qs(body.decode()), send)
                return
            if "busy" in scope["path"]:
                out = b'{"Type":"User","message":"Rate Exceeded."}'
                await send(
                    {
                        "type": "http.response.start",
                        "status": 429,
                        "headers": [(b"x-amzn-errortype", b"TooManyRequestsException")],
                    }
                )
                await send({"type": "http.response.body", "body": out})
                return
        await self.inner(scope, receive, send)

    async def _sts(self, form: dict[str, list[str]], send: Any) -> None:
        assert form["Action"] == ["AssumeRole"], form
        self.assumed.append(form["RoleArn"][0])
        n = len(self.assumed)
        expires = (datetime.now(UTC) + timedelta(seconds=self.expiry_s)).strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        )
        xml = (
            '<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
            "<AssumeRoleResult><Credentials>"
            f"<AccessKeyId>ASIAASSUMED{n}</AccessKeyId><SecretAccessKey>s{n}</SecretAccessKey>"
            f"<SessionToken>token{n}</SessionToken><Expiration>{expires}</Expiration>"
            "</Credentials><AssumedRoleUser><AssumedRoleId>AROA:ritornello</AssumedRoleId>"
            "<Arn>arn:aws:sts::123456789012:assumed-role/ritornello-invoker/ritornello</Arn>"
            "</AssumedRoleUser></AssumeRoleResult>"
            "<ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></AssumeRoleResponse>"
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/xml")],
            }
        )
        await send({"type": "http.response.body", "body": xml})


@pytest.fixture(scope="module")
def front() -> Iterator[tuple[AwsFront, str]]:
    emulator = LambdaEmulator(FAKE)
    app = AwsFront(emulator)
    try:
        with uvicorn_thread(app, lifespan="off") as url:
            yield app, url
    finally:
        emulator.close()


@pytest.fixture
def aws(front: tuple[AwsFront, str], monkeypatch: pytest.MonkeyPatch) -> AwsFront:
    """Dummy credentials and the emulator as the Lambda (and STS) endpoint, nothing else."""
    app, url = front
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")  # the ARN's region wins
    monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", url)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    FAKE.reset()
    app.headers.clear()
    app.assumed.clear()
    app.expiry_s = 3600
    return app


def run(coro: Awaitable[Any], timeout: float = 30) -> Any:
    async def main() -> Any:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(main())


def request(cmd: Any, inv: str = "inv_1") -> bytes:
    return json.dumps(
        {
            "version": 1,
            "type": "invoke",
            "id": inv,
            "service": "Greeter",
            "handler": "greet",
            "key": None,
            "attempt": 1,
            "journal": [{"kind": "input", "value": cmd}],
            "completions": [],
            "state": None,
        }
    ).encode()


def output(raw: bytes) -> Any:
    answer = InvokeResponse.decode(raw)
    assert answer.status == "done"
    return answer.entries[-1]["value"]


async def invoke_once(cmd: Any, arn: str = ARN, **kw: Any) -> bytes:
    invoker = LambdaInvoker(arn, **{"timeout_s": 30.0, **kw})
    try:
        return await invoker.invoke("Greeter", "greet", request(cmd))
    finally:
        await invoker.close()


# ---------------------------------------------------------------- ARNs and URIs


def test_only_qualified_lambda_arns_are_accepted() -> None:
    target = parse_function_arn(ARN)
    assert (target.region, target.name, target.qualifier) == ("us-east-1", "app", "1")
    assert parse_function_arn(ALIAS).qualifier == "live"
    assert parse_function_arn("arn:aws-cn:lambda:cn-north-1:123456789012:function:f:2").region == (
        "cn-north-1"
    )
    for bad, why in [
        ("arn:aws:lambda:us-east-1:123456789012:function:app", "unqualified"),
        ("arn:aws:lambda:us-east-1:123456789012:function:app:$LATEST", "$LATEST"),
        ("arn:aws:lambda:us-east-1:123456789012:function:app:", "bad version or alias"),
        ("arn:aws:s3:::bucket", "not a Lambda function ARN"),
        ("arn:aws:lambda:us-east-1:1234:function:app:1", "not a Lambda function ARN"),
        (f"{ARN}?region=us-east-2", "unknown parameter"),
    ]:
        with pytest.raises(InvokerError, match=why.replace("$", r"\$")):
            parse_function_arn(bad)
    with pytest.raises(InvokerError, match="not an IAM role ARN"):
        parse_function_arn(ARN, "arn:aws:iam::123456789012:user/bob")
    with pytest.raises(InvokerError, match="more than once"):
        parse_function_arn(lambda_uri(ARN, ROLE), ROLE)


def test_the_role_to_assume_travels_in_the_uri() -> None:
    uri = lambda_uri(ARN, ROLE)
    assert (
        uri
        == f"{ARN}?assume_role_arn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fritornello-invoker"
    )
    assert parse_function_arn(uri).assume_role_arn == ROLE
    assert parse_function_arn(uri).uri == uri
    assert lambda_uri(ARN) == ARN


def test_make_invoker_dispatches_arns_and_function_urls() -> None:
    async def main() -> None:
        invoker = make_invoker(lambda_uri(ARN, ROLE), {}, timeout_s=12.0)
        assert isinstance(invoker, LambdaInvoker)
        assert invoker.target.assume_role_arn == ROLE and invoker.arn == ARN
        with pytest.raises(InvokerError, match="unqualified"):
            make_invoker(ARN.rsplit(":", 1)[0], {}, timeout_s=1.0)
        url = make_invoker("https://abc123.lambda-url.eu-west-1.on.aws", {}, timeout_s=1.0)
        assert isinstance(url, FunctionUrlInvoker) and url.region == "eu-west-1"
        plain = make_invoker("https://example.com/x.lambda-url.y", {}, timeout_s=1.0)
        assert type(plain) is HttpInvoker
        for inv in (invoker, url, plain):
            await inv.close()

    run(main())


def test_envelope_round_trip_and_limits() -> None:
    small = request({"echo": 1})
    assert encode_payload(small) is small and decode_payload(small) is small
    big = request({"echo": "z" * GZIP_ABOVE})
    wrapped = encode_payload(big)
    obj = json.loads(wrapped)
    assert set(obj) == {"ritornello_encoding", "data"} and len(wrapped) < MAX_PAYLOAD
    assert decode_payload(json.dumps(obj).encode()) == big
    assert decode_payload(json.dumps({"data": obj["data"], **obj}).encode()) == big
    with pytest.raises(InvokerError, match="does not decode"):
        decode_payload(b'{"ritornello_encoding": "gzip", "data": "bm90IGd6aXA="}')
    noise = base64.b64encode(os.urandom(5_000_000)).decode()
    with pytest.raises(InvokerError, match="request too large for Lambda"):
        encode_payload(request({"echo": noise}))


# ---------------------------------------------------------------- against the emulator


def test_discovery(aws: AwsFront) -> None:
    async def main() -> None:
        invoker = LambdaInvoker(ARN, timeout_s=10.0)
        try:
            found = DiscoveryResponse.decode(await invoker.discover())
        finally:
            await invoker.close()
        assert [s.name for s in found.services] == ["Greeter"]

    run(main())
    ctx = FAKE.contexts[0]
    assert (ctx.function_name, ctx.function_version, ctx.invoked_function_arn) == ("app", "1", ARN)
    # boto3 signed for the ARN's region, not AWS_DEFAULT_REGION
    assert "/us-east-1/lambda/aws4_request" in aws.headers[-1]["authorization"]


def test_invoke_success_returns_the_answer_bytes(aws: AwsFront) -> None:
    raw = run(invoke_once({"echo": {"hello": ["world", 1]}}))
    assert output(raw) == {"hello": ["world", 1]}
    assert FAKE.calls == 1 and FAKE.enveloped == 0
    assert FAKE.contexts[0].get_remaining_time_in_millis() > 0


def test_an_alias_is_invoked_as_named(aws: AwsFront) -> None:
    assert output(run(invoke_once({"echo": 5}, ALIAS))) == 5
    assert FAKE.contexts[0].invoked_function_arn == ALIAS


def test_function_error_is_a_failed_attempt_with_its_type_and_message(aws: AwsFront) -> None:
    with pytest.raises(InvokerError, match=r"function error \(Unhandled\): ValueError: kaput"):
        run(invoke_once({"raise": "kaput"}))


def test_large_request_travels_gzipped(aws: AwsFront) -> None:
    cmd = {"pad": "x" * (GZIP_ABOVE + 1000)}
    raw = run(invoke_once(cmd))
    assert output(raw)["size"] == len(json.dumps(cmd))
    assert FAKE.enveloped == 1


def test_large_answer_comes_back_gzipped_and_is_decoded(aws: AwsFront) -> None:
    raw = run(invoke_once({"big_answer": 7_000_000}))
    assert raw.startswith(b"{") and b"ritornello_encoding" not in raw[:200]
    assert output(raw) == "y" * 7_000_000


def test_too_large_even_gzipped_fails_the_attempt_without_invoking(aws: AwsFront) -> None:
    noise = base64.b64encode(os.urandom(5_000_000)).decode()
    with pytest.raises(InvokerError, match="over the 6,291,456-byte payload limit"):
        run(invoke_once({"echo": noise}))
    assert FAKE.calls == 0


def test_answers_past_the_limits_fail_naming_them(aws: AwsFront) -> None:
    """Lambda caps answers at 6 MiB, whatever stands at AWS_ENDPOINT_URL_LAMBDA may not: an
    answer is read only up to ``max_answer_bytes`` and inflated only up to it."""
    with pytest.raises(InvokerError, match=r"answer larger than the max_answer_bytes limit"):
        run(invoke_once({"echo": "x" * 2000}, max_answer_bytes=1000))
    with pytest.raises(InvokerError, match=r"inflates beyond 1,000,000 bytes \(max_answer_bytes\)"):
        run(invoke_once({"big_answer": 7_000_000}, max_answer_bytes=1_000_000))
    assert output(run(invoke_once({"echo": "x" * 900}, max_answer_bytes=1000))) == "x" * 900

    async def discover() -> bytes:
        invoker = LambdaInvoker(ARN, timeout_s=10.0, max_discovery_bytes=50)
        try:
            return await invoker.discover()
        finally:
            await invoker.close()

    with pytest.raises(InvokerError, match=r"discovery answer larger than the max_discovery_bytes"):
        run(discover())


def test_throttling_is_a_failed_attempt(aws: AwsFront) -> None:
    busy = "arn:aws:lambda:us-east-1:123456789012:function:busy:1"
    with pytest.raises(InvokerError, match=r"throttled: TooManyRequestsException \(HTTP 429\)"):
        run(invoke_once({"echo": 1}, busy))
    assert len(aws.headers) == 1  # botocore did not retry: the engine does


def test_unreachable_endpoint_and_read_timeout_are_failed_attempts(
    aws: AwsFront, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(InvokerError, match=r"did not answer within 0.5 s \(read timeout\)"):
        run(invoke_once({"sleep": 1.5}, timeout_s=0.5))
    monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(InvokerError, match="Lambda endpoint unreachable"):
        run(invoke_once({"echo": 1}))


def test_concurrency_is_bounded_by_max_concurrency(aws: AwsFront) -> None:
    async def main() -> list[Any]:
        invoker = LambdaInvoker(ARN, max_concurrency=4, timeout_s=30.0)
        try:
            raws = await asyncio.gather(
                *(
                    invoker.invoke("Greeter", "greet", request({"sleep": 0.1, "echo": i}))
                    for i in range(20)
                )
            )
        finally:
            await invoker.close()
        return [output(r) for r in raws]

    assert run(main()) == list(range(20))
    assert FAKE.calls == 20 and FAKE.peak == 4


def test_the_event_loop_keeps_running_during_an_invoke(aws: AwsFront) -> None:
    async def main() -> tuple[int, float]:
        ticks = 0
        gap = 0.0
        stop = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks, gap
            last = time.monotonic()
            while not stop.is_set():
                await asyncio.sleep(0.005)
                now = time.monotonic()
                gap, last, ticks = max(gap, now - last), now, ticks + 1

        task = asyncio.create_task(ticker())
        await asyncio.sleep(0.05)
        await invoke_once({"sleep": 0.5})
        stop.set()
        await task
        return ticks, gap

    # A full collection stops every thread of this crowded test process for 100+ ms: not what
    # this test measures.
    gc.collect()
    gc.disable()
    try:
        ticks, gap = run(main())
    finally:
        gc.enable()
    assert ticks >= 40 and gap < 0.1, (ticks, gap)


def test_assume_role_credentials_sign_the_invokes(aws: AwsFront) -> None:
    async def main(n: int) -> None:
        invoker = LambdaInvoker(ARN, assume_role_arn=ROLE, timeout_s=10.0)
        try:
            for i in range(n):
                assert output(await invoker.invoke("Greeter", "greet", request({"echo": i}))) == i
        finally:
            await invoker.close()

    run(main(3))
    assert aws.assumed == [ROLE]  # assumed once, credentials reused while valid
    lambda_calls = [h for h in aws.headers if "x-amz-security-token" in h]
    assert len(lambda_calls) == 3
    assert all("Credential=ASIAASSUMED1/" in h["authorization"] for h in lambda_calls)
    assert all(h["x-amz-security-token"] == "token1" for h in lambda_calls)
    # Credentials about to expire are refreshed (botocore re-assumes the role) before use.
    aws.assumed.clear()
    aws.headers.clear()
    aws.expiry_s = 300
    run(main(2))
    assert len(aws.assumed) >= 2
    last = [h for h in aws.headers if "x-amz-security-token" in h][-1]
    assert f"Credential=ASIAASSUMED{len(aws.assumed)}/" in last["authorization"]


def test_engine_registers_an_arn_and_keeps_the_role_across_restarts(aws: AwsFront) -> None:
    async def main() -> None:
        store = MemoryStore()
        await store.open()
        engine = Engine(store)
        await engine.start()
        with pytest.raises(InvalidRequestError, match=r"\$LATEST") as bad:
            await engine.register_deployment(ARN[:-2] + ":$LATEST")
        assert http_status(bad.value) == 400
        with pytest.raises(InvalidRequestError, match="Lambda ARNs only") as bad:
            await engine.register_deployment("http://127.0.0.1:1", assume_role_arn=ROLE)
        assert http_status(bad.value) == 400
        dep = await engine.register_deployment(ARN, assume_role_arn=ROLE)
        assert dep.uri == lambda_uri(ARN, ROLE)
        assert engine.registry.service("Greeter") is not None
        await engine.stop()

        again = Engine(store)  # a restart: the invoker is rebuilt from the stored URI
        await again.start()
        invoker = again.deployments.invokers[dep.id]
        assert isinstance(invoker, LambdaInvoker) and invoker.target.assume_role_arn == ROLE
        await again.stop()
        await store.close()

    run(main())
    assert aws.assumed == [ROLE]


# ---------------------------------------------------------------- the emulator as boto3 sees it


@pytest.fixture
def client(aws: AwsFront) -> Iterator[Any]:
    c = boto3.client("lambda", config=Config(retries={"max_attempts": 0}))
    yield c
    c.close()


def test_emulator_answers_like_lambda(client: Any) -> None:
    resp = client.invoke(FunctionName="app:7", Payload=request({"echo": 1}))
    assert resp["StatusCode"] == 200 and resp["ExecutedVersion"] == "7"
    assert output(resp["Payload"].read()) == 1
    resp = client.invoke(FunctionName="app", Qualifier="3", Payload=request({"echo": 2}))
    assert resp["ExecutedVersion"] == "3"
    ctx = FAKE.contexts[-1]
    assert ctx.invoked_function_arn.endswith(":function:app:3") and ctx.function_version == "3"
    assert ctx.aws_request_id and ctx.memory_limit_in_mb == 128

    resp = client.invoke(FunctionName=ARN, Payload=request({"raise": "bad thing"}))
    assert resp["StatusCode"] == 200 and resp["FunctionError"] == "Unhandled"
    err = json.loads(resp["Payload"].read())
    assert err["errorType"] == "ValueError" and err["errorMessage"] == "bad thing"
    assert isinstance(err["stackTrace"], list) and err["stackTrace"]

    resp = client.invoke(FunctionName=ARN, InvocationType="Event", Payload=request({"echo": 3}))
    assert resp["StatusCode"] == 202
    resp = client.invoke(FunctionName=ARN, InvocationType="DryRun", Payload=b"{}")
    assert resp["StatusCode"] == 204


def test_emulator_refuses_oversized_and_malformed_payloads(client: Any) -> None:
    with pytest.raises(ClientError) as exc:
        client.invoke(FunctionName=ARN, Payload=b'"' + b"a" * MAX_PAYLOAD + b'"')
    assert exc.value.response["Error"]["Code"] == "RequestEntityTooLargeException"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
    with pytest.raises(ClientError) as exc:
        client.invoke(FunctionName=ARN, Payload=b"{not json")
    assert exc.value.response["Error"]["Code"] == "InvalidRequestContentException"
    # the connection survived both: the next call works
    assert (
        output(client.invoke(FunctionName=ARN, Payload=request({"echo": 4}))["Payload"].read()) == 4
    )
    assert FAKE.calls == 1


# ---------------------------------------------------------------- Function URLs (AWS_IAM)

FUNCTION_URL = "https://abc123.lambda-url.eu-west-1.on.aws"


def test_function_url_requests_are_sigv4_signed_for_lambda(aws: AwsFront) -> None:
    invoker = FunctionUrlInvoker(FUNCTION_URL, timeout_s=5.0)
    body = request({"echo": 1})
    headers = invoker.signed_headers("POST", "/invoke/Greeter/greet", body)
    assert set(headers) == {"authorization", "x-amz-date"}
    auth = headers["authorization"]
    assert auth.startswith("AWS4-HMAC-SHA256 Credential=testing/")
    assert "/eu-west-1/lambda/aws4_request" in auth
    assert "SignedHeaders=content-type;host;x-amz-date" in auth
    # The same request signed independently gives the same signature: host, path, body, region.
    check = AWSRequest(
        method="POST",
        url=f"{FUNCTION_URL}/invoke/Greeter/greet",
        data=body,
        headers={"content-type": "application/json", "X-Amz-Date": headers["x-amz-date"]},
    )
    check.context["timestamp"] = headers["x-amz-date"]
    signer = SigV4Auth(Credentials("testing", "testing"), "lambda", "eu-west-1")
    expected = signer.signature(
        signer.string_to_sign(check, signer.canonical_request(check)), check
    )
    assert auth.endswith(f"Signature={expected}")


def test_function_url_invoker_sends_the_signature(
    aws: AwsFront, front: tuple[AwsFront, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = front[1]

    class Loopback(FunctionUrlInvoker):  # the URL's host does not resolve here: dial the front
        def _new_pool(self) -> HttpPool:
            return HttpPool(url, headers={"content-type": "application/json"})

    async def main() -> None:
        invoker = Loopback(FUNCTION_URL, timeout_s=5.0)
        try:
            with pytest.raises(InvokerError, match="HTTP 404"):
                await invoker.discover()
        finally:
            await invoker.close()

    run(main())
    assert "/eu-west-1/lambda/aws4_request" in aws.headers[-1]["authorization"]
    # No credentials at all: sent unsigned (a URL with AuthType NONE needs none).
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    assert FunctionUrlInvoker(FUNCTION_URL).signed_headers("GET", "/discover", None) == {}
