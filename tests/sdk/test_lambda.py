"""The Lambda adapter, fed the JSON events Lambda delivers (fixtures in tests/sdk/events/)."""

from __future__ import annotations

import asyncio
import base64
import collections
import gzip
import io
import json
import logging
import random
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from ritornello import Context, Endpoint, InProcessEndpoint, RetryPolicy, Service, step_retry
from ritornello.protocol import InvokeRequest, InvokeResponse
from ritornello.sdk import _invocation, _lambda

from ._driver import Driver
from ._handlers import ALL_SERVICES

EVENTS = Path(__file__).parent / "events"
MB = 1024 * 1024


def event(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return loaded


# -- services only these tests use -------------------------------------------------------------

lab = Service("LambdaLab")
LOOPS: list[asyncio.AbstractEventLoop] = []
WOBBLES: collections.Counter[str] = collections.Counter()


@lab.handler()
async def blob(ctx: Context, spec: dict[str, Any]) -> str:
    """A big output: ``"x" * size`` (compresses well) or random base64 text (does not)."""
    if spec["random"]:
        raw = random.Random(spec["size"]).randbytes(spec["size"] * 3 // 4)
        return base64.b64encode(raw).decode()
    return "x" * spec["size"]


@lab.handler()
async def where(ctx: Context) -> None:
    LOOPS.append(asyncio.get_running_loop())


@step_retry(RetryPolicy(max_attempts=3, initial_interval_ms=1))
def wobble(token: str) -> str:
    WOBBLES[token] += 1
    if WOBBLES[token] <= 2:  # the first attempt, on both twins
        raise ConnectionError("the first call fails")
    return "steady"


@lab.handler()
async def flaky(ctx: Context, token: str) -> str:
    # Logged on the SDK's logger from the handler, so it would repeat on every replay.
    ctx.time()  # an entry first, so the step is not at the index where new work starts
    logging.getLogger("ritornello.sdk").info("about to wobble")
    first = await ctx.run("wobble", wobble, token)
    return await ctx.run("after", str.upper, first)


@lab.handler()
async def chatty(ctx: Context, n: int) -> int:
    total = 0
    for i in range(n):
        ctx.logger.info("step %d of %d", i, n)  # once per invocation, however many replays
        total += await ctx.run(f"add {i}", lambda i=i: i)
        await ctx.sleep(0)
    return total


SERVICES = [*ALL_SERVICES, lab]


def invoke_event(target: str, value: Any, **fields: Any) -> dict[str, Any]:
    service, handler = target.split("/")
    journal = [{"kind": "input", "value": value}]
    request = InvokeRequest("inv_lambdatest", service, handler, None, 1, journal)  # type: ignore[list-item]
    return request.to_dict() | fields


def in_process(request: dict[str, Any]) -> dict[str, Any]:
    endpoint = Endpoint(SERVICES).inprocess()
    answer: dict[str, Any] = json.loads(asyncio.run(endpoint.invoke(json.dumps(request).encode())))
    return answer


def url_event(method: str, path: str, body: bytes | None = None) -> dict[str, Any]:
    raw = event("function_url_post_invoke.json")
    raw["rawPath"] = raw["requestContext"]["http"]["path"] = path
    raw["requestContext"]["http"]["method"] = method
    raw["body"] = None if body is None else base64.b64encode(body).decode()
    return raw


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def sdk_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A fresh once-per-process logging set-up for each test, and the loggers left as found
    (Powertools configures the "ritornello" logger and filters the root handlers)."""
    monkeypatch.setattr(_lambda, "SDK_LOGGING", _lambda.SdkLogging())
    package, sdk = logging.getLogger("ritornello"), logging.getLogger("ritornello.sdk")
    saved = {
        log: (log.level, list(log.handlers), list(log.filters), set(vars(log)))
        for log in (package, sdk)
    }
    root_filters = {h: list(h.filters) for h in logging.root.handlers}
    yield
    for log, (level, handlers, filters, attributes) in saved.items():
        log.setLevel(level)
        log.handlers[:] = handlers
        log.filters[:] = filters
        for added in set(vars(log)) - attributes:
            delattr(log, added)
    for handler, filters in root_filters.items():
        handler.filters[:] = filters


@pytest.fixture
def handler() -> _lambda.LambdaFunction:
    return Endpoint(SERVICES).lambda_handler()


# -- the three kinds of event ------------------------------------------------------------------


def test_discovery_event(handler: _lambda.LambdaFunction) -> None:
    answer = handler(event("discover.json"), None)
    inprocess = asyncio.run(Endpoint(SERVICES).inprocess().discover())
    # the same, and a Lambda takes a checkpoint channel (docs/protocol.md)
    assert answer == {**json.loads(inprocess), "channel": True}
    assert {s["name"] for s in answer["services"]} >= {"Greeter", "LambdaLab"}


def test_invoke_event_answers_as_in_process(handler: _lambda.LambdaFunction) -> None:
    request = event("invoke.json")
    answer = handler(request, None)
    assert answer == in_process(request)
    assert InvokeResponse.decode(answer).entries[0] == {
        "kind": "run", "name": "format", "value": "Hello, Ada!"
    }  # fmt: skip


def test_function_url_get_discover(handler: _lambda.LambdaFunction) -> None:
    answer = handler(event("function_url_get_discover.json"), None)
    assert answer["statusCode"] == 200 and answer["isBase64Encoded"] is False
    assert answer["headers"] == {"content-type": "application/json"}
    assert json.loads(answer["body"]) == Endpoint(SERVICES).discovery().to_dict()


def test_function_url_post_invoke(handler: _lambda.LambdaFunction) -> None:
    url = event("function_url_post_invoke.json")
    answer = handler(url, None)
    assert answer["statusCode"] == 200 and answer["isBase64Encoded"] is False
    assert answer["headers"] == {"content-type": "application/json"}
    assert json.loads(answer["body"]) == in_process(json.loads(base64.b64decode(url["body"])))
    assert json.loads(answer["body"]) == handler(event("invoke.json"), None)


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", "/health", None, 200),
        ("POST", "/invoke/Greeter/nope", b"{}", 404),
        ("POST", "/invoke/Nope/greet", b"{}", 404),
        ("GET", "/", None, 404),
        ("POST", "/invoke/Greeter/greet/extra", b"{}", 404),
        ("GET", "/invoke/Greeter/greet", None, 405),
        ("POST", "/discover", b"{}", 405),
        ("DELETE", "/health", None, 405),
        ("POST", "/invoke/Greeter/greet", b"{not json", 400),
        (
            "POST",
            "/invoke/Greeter/greet",
            json.dumps(invoke_event("Greeter/fail", "x")).encode(),
            400,
        ),
    ],
)
def test_function_url_routes_are_the_asgi_apps(
    handler: _lambda.LambdaFunction, method: str, path: str, body: bytes | None, status: int
) -> None:
    answer = handler(url_event(method, path, body), None)
    assert answer["statusCode"] == status
    assert answer["headers"]["content-type"] == "application/json"
    assert json.loads(answer["body"])
    if status == 405:
        assert answer["headers"]["allow"] in {"GET", "POST"}


def test_function_url_body_that_is_not_base64_is_a_400(handler: _lambda.LambdaFunction) -> None:
    url = event("function_url_post_invoke.json")
    url["body"] = "not base64 at all!"
    answer = handler(url, None)
    assert answer["statusCode"] == 400 and "base64" in json.loads(answer["body"])["message"]


def test_function_url_plain_text_body(handler: _lambda.LambdaFunction) -> None:
    url = event("function_url_post_invoke.json")
    url["body"], url["isBase64Encoded"] = base64.b64decode(url["body"]).decode(), False
    assert json.loads(handler(url, None)["body"]) == handler(event("invoke.json"), None)


# -- malformed events --------------------------------------------------------------------------


def _protocol_error(answer: dict[str, Any]) -> str:
    response = InvokeResponse.decode(answer)
    assert response.status == "error" and response.error is not None
    assert response.error["kind"] == "protocol"
    return response.error["message"]


@pytest.mark.parametrize(
    ("bad", "fragment"),
    [
        (event("malformed.json"), "keys Records"),
        ([1, 2], "got a JSON array"),
        ("discover", "got a JSON string"),
        (None, "got a JSON null"),
        (True, "got a JSON boolean"),
        ({"version": "2.0", "rawPath": "/discover"}, "Function URL"),
        (invoke_event("Greeter/greet", "Ada", version=2), "version"),
        (invoke_event("Greeter/greet", "Ada", journal=[]), "input"),
        (invoke_event("Greeter/nope", "Ada"), "no handler Greeter/nope"),
    ],
)
def test_a_malformed_event_is_answered_not_raised(
    handler: _lambda.LambdaFunction, bad: Any, fragment: str
) -> None:
    assert fragment in _protocol_error(handler(bad, None))


# -- the gzip envelope -------------------------------------------------------------------------


def test_gzip_envelope_event(handler: _lambda.LambdaFunction) -> None:
    assert handler(event("gzip_envelope.json"), None) == handler(event("invoke.json"), None)
    discover = _lambda.encode_envelope(event("discover.json"))
    assert handler(discover, None) == handler(event("discover.json"), None)


def _envelope(data: bytes, encoding: str = "gzip") -> dict[str, Any]:
    return {"ritornello_encoding": encoding, "data": base64.b64encode(data).decode()}


@pytest.mark.parametrize(
    ("bad", "fragment"),
    [
        (_envelope(gzip.compress(b"{}"), encoding="zstd"), "unknown ritornello_encoding"),
        ({"ritornello_encoding": "gzip", "data": 3}, "needs 'data'"),
        ({"ritornello_encoding": "gzip", "data": "@@@"}, "does not decode"),
        (_envelope(b"plain, not gzip"), "does not decode"),
        (_envelope(gzip.compress(b"{}")[:-4]), "truncated"),
        (_envelope(gzip.compress(b"{half")), "does not hold JSON"),
        (_envelope(gzip.compress(b"[1]")), "not hold a JSON object"),
        (_envelope(gzip.compress(b'{"hello": 1}')), "not a Ritornello Lambda event"),
    ],
)
def test_a_bad_envelope_is_a_protocol_error(
    handler: _lambda.LambdaFunction, bad: dict[str, Any], fragment: str
) -> None:
    assert fragment in _protocol_error(handler(bad, None))


def test_an_envelope_may_not_inflate_without_bound(
    handler: _lambda.LambdaFunction, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_lambda, "MAX_INFLATED", 1000)
    bomb = _envelope(gzip.compress(b" " * 5000 + b"{}"))
    assert "inflates beyond 1,000 bytes" in _protocol_error(handler(bomb, None))


def test_an_answer_past_5_mb_goes_out_enveloped(handler: _lambda.LambdaFunction) -> None:
    request = invoke_event("LambdaLab/blob", {"size": 5 * MB + MB // 2, "random": False})
    answer = handler(request, None)
    assert set(answer) == {"ritornello_encoding", "data"}
    assert _lambda.wire_size(answer) < 100_000
    decoded = _lambda.decode_envelope(answer)
    assert decoded == in_process(request)
    assert InvokeResponse.decode(decoded).entries[-1]["value"] == "x" * (5 * MB + MB // 2)


def test_an_answer_past_6_mb_even_compressed_is_an_error(
    handler: _lambda.LambdaFunction,
) -> None:
    request = invoke_event("LambdaLab/blob", {"size": 7 * MB + 4, "random": True})
    message = _protocol_error(handler(request, None))
    assert "exceeds Lambda's 6 MB limit (6291456 bytes) even compressed" in message
    size = len(json.dumps(in_process(request)))
    assert f"the answer of {size} bytes" in message
    url = handler(url_event("POST", "/invoke/LambdaLab/blob", json.dumps(request).encode()))
    assert url["statusCode"] == 500
    assert "exceeds Lambda's 6 MB response limit" in json.loads(url["body"])["message"]


def test_a_function_url_answer_between_5_and_6_mb_is_sent_as_is(
    handler: _lambda.LambdaFunction,
) -> None:
    request = invoke_event("LambdaLab/blob", {"size": 5 * MB + MB // 2, "random": False})
    url = handler(url_event("POST", "/invoke/LambdaLab/blob", json.dumps(request).encode()))
    assert url["statusCode"] == 200 and json.loads(url["body"]) == in_process(request)


# -- one event loop for the process ------------------------------------------------------------


def test_the_loop_lives_across_invocations(
    handler: _lambda.LambdaFunction, monkeypatch: pytest.MonkeyPatch
) -> None:
    LOOPS.clear()
    assert handler(invoke_event("LambdaLab/where", None), None)["status"] == "done"

    def no_new_loop() -> asyncio.AbstractEventLoop:
        raise AssertionError("a second invocation made a new event loop")

    monkeypatch.setattr(asyncio, "new_event_loop", no_new_loop)
    assert handler(invoke_event("LambdaLab/where", None), None)["status"] == "done"
    assert len(LOOPS) == 2 and LOOPS[0] is LOOPS[1] and not LOOPS[0].is_closed()
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()  # and it does not stay running between invocations


def test_a_call_that_finds_the_process_loop_busy_gets_its_own(
    handler: _lambda.LambdaFunction,
) -> None:
    LOOPS.clear()
    handler(invoke_event("LambdaLab/where", None), None)
    with _lambda.PROCESS_LOOP._busy:  # as if another thread were inside it
        assert handler(invoke_event("LambdaLab/where", None), None)["status"] == "done"
    assert LOOPS[0] is not LOOPS[1] and LOOPS[1].is_closed()


# -- whole invocations: the same answers as in process -----------------------------------------


class Twins:
    """An InProcessEndpoint look-alike that asks the Lambda and the in-process endpoint the
    same request and checks they answer the same bytes' worth of JSON."""

    def __init__(self, handler: _lambda.LambdaFunction) -> None:
        self.handler = handler
        self.inprocess = Endpoint(SERVICES).inprocess()
        self.answers = 0

    async def invoke(self, body: bytes) -> bytes:
        # Lambda calls the handler from a thread with no running loop: so do we.
        answer = await asyncio.to_thread(self.handler, json.loads(body), None)
        assert answer == json.loads(await self.inprocess.invoke(body))
        self.answers += 1
        return json.dumps(answer).encode()


@pytest.mark.parametrize(
    ("target", "value", "key"),
    [
        ("Greeter/greet", "Ada", None),
        ("Ledger/process", 6, "acct-1"),
        ("Orders/checkout", {"item": "book", "amount": 12}, None),
        ("Greeter/fail", "Bob", None),
    ],
)
def test_whole_invocations_through_lambda_answer_as_in_process(
    handler: _lambda.LambdaFunction,
    monkeypatch: pytest.MonkeyPatch,
    target: str,
    value: Any,
    key: str | None,
) -> None:
    monkeypatch.setattr(_invocation, "_wall_clock", lambda: 1_700_000_000.0)
    twins = Twins(handler)
    finished = asyncio.run(Driver(cast(InProcessEndpoint, twins)).run(target, value, key=key))
    assert finished.output["kind"] == "output" and twins.answers >= 1


# -- logging -----------------------------------------------------------------------------------


def _run_flaky(handler: _lambda.LambdaFunction, token: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(_invocation, "_wall_clock", lambda: 1_700_000_000.0)
    twins = Twins(handler)
    invocation_id = f"inv_{token}"
    finished = asyncio.run(
        Driver(cast(InProcessEndpoint, twins)).run(
            "LambdaLab/flaky", token, invocation_id=invocation_id
        )
    )
    assert finished.output == {"kind": "output", "value": "STEADY"}
    # the step's first attempt fails: suspended on the timer before its second one
    assert finished.statuses == ["suspended", "checkpoint", "done"]
    return invocation_id


def test_powertools_logs_carry_the_invocation_and_position_and_never_repeat_on_replay(
    handler: _lambda.LambdaFunction, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _lambda.SDK_LOGGING.powertools is not None
    stream = io.StringIO()
    powertools_handler = cast(
        logging.StreamHandler[Any], _lambda.SDK_LOGGING.powertools.registered_handler
    )
    powertools_handler.setStream(stream)
    # Twins also asks the in-process endpoint: outside a Lambda invocation, unstamped lines.
    invocation_id = _run_flaky(handler, "powertools", monkeypatch)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    mine = [line for line in lines if line.get("invocation_id") == invocation_id]
    assert all(line["service"] == "ritornello" for line in lines)
    retried = [line for line in mine if "retrying" in line["message"]]
    assert [line["journal_position"] for line in retried] == [2]  # the step's own index
    # The handler's own line: once at position 2 (new work), dropped on the replay that passes it.
    wobbles = [line["journal_position"] for line in mine if line["message"] == "about to wobble"]
    assert wobbles == [2]
    answers = [line for line in mine if "new entries" in line["message"]]
    assert [(line["message"].split(": ")[-1], line["journal_position"]) for line in answers] == [
        ("suspended, new entries 1..2", 3),
        ("checkpoint, new entries 3..3", 4),
        ("done, new entries 4..5", 6),
    ]


def test_without_powertools_the_standard_library_logs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "aws_lambda_powertools", None)  # import fails
    handlers_before = list(logging.getLogger("ritornello").handlers)
    handler = Endpoint(SERVICES).lambda_handler()
    assert _lambda.SDK_LOGGING.ready and _lambda.SDK_LOGGING.powertools is None
    assert logging.getLogger("ritornello").handlers == handlers_before

    records: list[logging.LogRecord] = []
    capture = logging.Handler(logging.DEBUG)
    capture.emit = records.append  # type: ignore[method-assign]
    sdk = logging.getLogger("ritornello.sdk")
    sdk.setLevel(logging.DEBUG)  # put back by the sdk_logging fixture
    sdk.addHandler(capture)
    try:
        invocation_id = _run_flaky(handler, "stdlib", monkeypatch)
    finally:
        sdk.removeHandler(capture)
    assert handler(event("invoke.json"), None) == in_process(event("invoke.json"))
    stamped = [r for r in records if getattr(r, "invocation_id", None) == invocation_id]
    retried = [r for r in stamped if "retrying" in r.getMessage()]
    assert [getattr(r, "journal_position", None) for r in retried] == [2]
    assert sum(r.getMessage() == "about to wobble" for r in stamped) == 1


def test_ctx_logger_logs_each_line_once_on_lambda_however_many_replays(
    handler: _lambda.LambdaFunction, monkeypatch: pytest.MonkeyPatch
) -> None:
    records: list[logging.LogRecord] = []
    capture = logging.Handler(logging.INFO)
    capture.emit = records.append  # type: ignore[method-assign]
    mine = logging.getLogger("ritornello.handler.LambdaLab")
    mine.setLevel(logging.INFO)
    mine.addHandler(capture)
    monkeypatch.setattr(_invocation, "_wall_clock", lambda: 1_700_000_000.0)

    class LambdaOnly:
        """Every attempt through the Lambda handler only (each one a fresh replay)."""

        async def invoke(self, body: bytes) -> bytes:
            answer = await asyncio.to_thread(handler, json.loads(body), None)
            return json.dumps(answer).encode()

    try:
        finished = asyncio.run(
            Driver(cast(InProcessEndpoint, LambdaOnly())).run(
                "LambdaLab/chatty", 4, invocation_id="inv_chatty"
            )
        )
    finally:
        mine.removeHandler(capture)
    assert finished.output == {"kind": "output", "value": 6}
    assert len(finished.statuses) >= 4  # every sleep suspends: the early lines replay often
    assert [r.getMessage() for r in records] == [f"step {i} of 4" for i in range(4)]
    assert {getattr(r, "invocation_id", None) for r in records} == {"inv_chatty"}
    assert [getattr(r, "journal_index", None) for r in records] == [1, 3, 5, 7]
