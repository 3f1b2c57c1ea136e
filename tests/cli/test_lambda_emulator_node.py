"""``ritornello lambda-emulator APP.mjs``: the Node twin of the Lambda emulator, as a real process
(the CLI hands itself over to ``node`` running lambda_emulator.mjs), answering as Lambda and as
the Python emulator do (status codes, function errors, sizes, Event and DryRun invocations), and
running each function in worker processes of its own as the Python emulator does (a runtime
exit answered and its worker replaced, concurrent invokes, no worker left after a kill -9).

The handler modules are written here (Node's standard library only: no npm packages needed).
Without ``node`` the tests skip locally and fail in CI (``CI`` set)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.cli.test_lambda_emulator_workers import kill9_mid_invoke, wait_gone
from tests.procs import LambdaEmulatorProcess, http

APP = """
import { appendFileSync } from "node:fs";
const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));
export const handler = async (event, context) => {
  if (event.mode === "context") {
    return {
      name: context.functionName, version: context.functionVersion,
      arn: context.invokedFunctionArn, id: context.awsRequestId,
      remaining: context.getRemainingTimeInMillis() > 0, region: process.env.AWS_REGION,
    };
  }
  if (event.mode === "throw") { const e = new TypeError("bad order"); throw e; }
  if (event.mode === "undefined") return undefined;
  if (event.mode === "big") return "x".repeat(event.size);
  if (event.mode === "cycle") { const a = {}; a.a = a; return a; }
  if (event.mode === "slow") { await sleep(event.ms); }
  if (event.mode === "record") { appendFileSync(event.file, "ran\\n"); }
  if (event.mode === "exit") process.exit(event.code);
  if (event.mode === "signal") process.kill(process.pid, event.signal);
  if (event.mode === "pid") { if (event.ms) await sleep(event.ms); return { pid: process.pid }; }
  return { echo: event };
};
"""

CALLBACK_APP = """
exports.handler = function (event, context, callback) {
  if (event.fail) callback(new Error("callback failure"));
  else setTimeout(() => callback(null, { via: "callback" }), 10);
};
"""

INVOKE = "/2015-03-31/functions/{}/invocations"


def _node_or_skip() -> None:
    if shutil.which("node") is None:
        if os.environ.get("CI"):
            pytest.fail("node is not installed (CI must have it)")
        pytest.skip("node is not installed")


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LambdaEmulatorProcess]:
    _node_or_skip()
    tmp = tmp_path_factory.mktemp("node-emulator")
    (tmp / "app.mjs").write_text(APP)
    proc = LambdaEmulatorProcess(
        tmp, str(tmp / "app.mjs"), "--reserved-concurrency", "2", AWS_DEFAULT_REGION="eu-west-3"
    )
    proc.env.pop("AWS_REGION", None)
    try:
        yield proc.start()
    finally:
        proc.terminate()


def invoke(
    emulator: LambdaEmulatorProcess,
    event: Any,
    *,
    name: str = "orders",
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any, dict[str, str]]:
    url = f"http://127.0.0.1:{emulator.port}{INVOKE.format(name)}"
    if raw is None:
        raw = json.dumps(event).encode()
    return http("POST", url, raw=raw, headers=headers or {})


def test_answers_with_the_handlers_result_and_lambdas_headers(
    emulator: LambdaEmulatorProcess,
) -> None:
    status, body, headers = invoke(emulator, {"n": 1})
    assert (status, body) == (200, {"echo": {"n": 1}})
    assert headers["x-amz-executed-version"] == "$LATEST" and headers["x-amzn-requestid"]
    # undefined is null, as Lambda's Node runtime answers it; an empty body is the event {}
    assert invoke(emulator, {"mode": "undefined"})[:2] == (200, None)
    assert invoke(emulator, None, raw=b"")[:2] == (200, {"echo": {}})


def test_the_context_names_the_function_as_invoked(emulator: LambdaEmulatorProcess) -> None:
    arn = "arn:aws:lambda:us-west-2:111122223333:function:orders:7"
    status, body, headers = invoke(emulator, {"mode": "context"}, name=arn)
    assert status == 200 and headers["x-amz-executed-version"] == "7", body
    assert body["name"] == "orders" and body["version"] == "7" and body["arn"] == arn
    assert body["remaining"] is True and body["id"] == headers["x-amzn-requestid"]
    # AWS_REGION is set as Lambda sets it (from AWS_DEFAULT_REGION here)
    assert body["region"] == "eu-west-3"
    url = f"http://127.0.0.1:{emulator.port}{INVOKE.format('orders')}?Qualifier=live"
    status, body, headers = http("POST", url, {"mode": "context"})
    assert body["arn"] == "arn:aws:lambda:us-east-1:123456789012:function:orders:live"
    assert body["version"] == "live" and headers["x-amz-executed-version"] == "$LATEST"


def test_a_thrown_error_is_an_unhandled_function_error(emulator: LambdaEmulatorProcess) -> None:
    status, body, headers = invoke(emulator, {"mode": "throw"})
    assert status == 200 and headers["x-amz-function-error"] == "Unhandled", body
    assert body["errorType"] == "TypeError" and body["errorMessage"] == "bad order"
    assert isinstance(body["trace"], list) and "TypeError: bad order" in body["trace"][0]
    status, body, headers = invoke(emulator, {"mode": "cycle"})
    assert headers["x-amz-function-error"] == "Unhandled"
    assert body["errorType"] == "Runtime.MarshalError", body


def test_sizes_and_malformed_requests_are_refused_as_lambda_does(
    emulator: LambdaEmulatorProcess,
) -> None:
    limit = 6 * 1024 * 1024
    status, body, headers = invoke(emulator, None, raw=b'"' + b"x" * limit + b'"')
    assert status == 413 and headers["x-amzn-errortype"] == "RequestEntityTooLargeException"
    status, body, headers = invoke(emulator, {"mode": "big", "size": limit})
    assert status == 200 and headers["x-amz-function-error"] == "Unhandled"
    assert body["errorType"] == "Function.ResponseSizeTooLarge", body
    status, body, headers = invoke(emulator, None, raw=b"{not json")
    assert status == 400 and headers["x-amzn-errortype"] == "InvalidRequestContentException"
    assert "Could not parse request body" in body["message"], body
    status, body, headers = http("GET", f"http://127.0.0.1:{emulator.port}/2015-03-31/functions")
    assert status == 404 and headers["x-amzn-errortype"] == "ResourceNotFoundException"
    # the emulator is still serving after all of it
    assert invoke(emulator, {"n": 2})[:2] == (200, {"echo": {"n": 2}})


def test_event_dry_run_and_throttling(emulator: LambdaEmulatorProcess, tmp_path: Path) -> None:
    record = tmp_path / "record.txt"
    status, body, _ = invoke(
        emulator,
        {"mode": "record", "file": str(record)},
        headers={"x-amz-invocation-type": "Event"},
    )
    assert status == 202
    deadline = time.monotonic() + 5
    while not record.exists():
        assert time.monotonic() < deadline, "the Event invocation did not run"
        time.sleep(0.02)
    status, _, _ = invoke(
        emulator,
        {"mode": "record", "file": str(record)},
        headers={"x-amz-invocation-type": "DryRun"},
    )
    assert status == 204 and record.read_text() == "ran\n"
    # two slow ones running (the reserved concurrency): a third is throttled
    for _ in range(2):
        invoke(emulator, {"mode": "slow", "ms": 800}, headers={"x-amz-invocation-type": "Event"})
    status, body, headers = invoke(emulator, {"n": 3})
    assert status == 429 and headers["x-amzn-errortype"] == "TooManyRequestsException", body
    # once they end, it is served again (and the other tests, in any order, are not throttled)
    deadline = time.monotonic() + 5
    while invoke(emulator, {"n": 4})[0] == 429:
        assert time.monotonic() < deadline, "still throttled"
        time.sleep(0.05)


def test_boto3_invokes_it_unchanged(emulator: LambdaEmulatorProcess) -> None:
    import boto3

    client = boto3.client(
        "lambda",
        endpoint_url=f"http://127.0.0.1:{emulator.port}",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    answer = client.invoke(FunctionName="orders:3", Payload=b'{"a": 1}')
    assert json.loads(answer["Payload"].read()) == {"echo": {"a": 1}}
    assert answer["ExecutedVersion"] == "3" and "FunctionError" not in answer
    answer = client.invoke(FunctionName="orders", Payload=b'{"mode": "throw"}')
    assert answer["FunctionError"] == "Unhandled"


def test_a_callback_style_handler(tmp_path: Path) -> None:
    _node_or_skip()
    (tmp_path / "cb.js").write_text(CALLBACK_APP)  # CommonJS, as a .js without "type"
    proc = LambdaEmulatorProcess(tmp_path, str(tmp_path / "cb.js")).start()
    try:
        assert invoke(proc, {})[:2] == (200, {"via": "callback"})
        status, body, headers = invoke(proc, {"fail": True})
        assert status == 200
        assert headers["x-amz-function-error"] == "Unhandled"
        assert body["errorMessage"] == "callback failure", body
    finally:
        proc.terminate()


def test_a_module_without_a_handler_export_is_refused(tmp_path: Path) -> None:
    _node_or_skip()
    (tmp_path / "none.mjs").write_text("export const other = 1;\n")
    done = subprocess.run(
        [sys.executable, "-m", "ritornello", "lambda-emulator", str(tmp_path / "none.mjs")],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert done.returncode == 2 and "export a function named `handler`" in done.stderr


def test_a_missing_module_or_node_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _node_or_skip()
    done = subprocess.run(
        [sys.executable, "-m", "ritornello", "lambda-emulator", str(tmp_path / "absent.mjs")],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert done.returncode == 1 and "absent.mjs" in done.stderr, done.stderr
    from ritornello.cli._lambda_emulator import node_command

    monkeypatch.setenv("PATH", str(tmp_path))  # no node on it
    with pytest.raises(SystemExit, match="needs `node` on PATH"):
        node_command("app.mjs", host="127.0.0.1", port=9001, reserved_concurrency=None)


def test_an_exit_mid_invoke_is_a_runtime_exit_error_and_a_fresh_worker_serves_next(
    emulator: LambdaEmulatorProcess,
) -> None:
    first = invoke(emulator, {"mode": "pid"}, name="crashy")[1]["pid"]
    other = invoke(emulator, {"mode": "pid"}, name="steady")[1]["pid"]
    assert invoke(emulator, {"mode": "pid"}, name="crashy")[1]["pid"] == first  # warm
    status, body, headers = invoke(emulator, {"mode": "exit", "code": 1}, name="crashy")
    assert status == 200 and headers["x-amz-function-error"] == "Unhandled", body
    request_id = headers["x-amzn-requestid"]
    assert body == {
        "errorType": "Runtime.ExitError",
        "errorMessage": f"RequestId: {request_id} Error: Runtime exited with error: exit status 1",
    }
    assert invoke(emulator, {"mode": "pid"}, name="crashy")[1]["pid"] != first
    assert invoke(emulator, {"mode": "pid"}, name="steady")[1]["pid"] == other
    _, body, _ = invoke(emulator, {"mode": "signal", "signal": "SIGKILL"}, name="crashy")
    assert body["errorMessage"].endswith("Runtime exited with error: signal: killed"), body
    _, body, _ = invoke(emulator, {"mode": "exit", "code": 0}, name="crashy")
    assert body["errorMessage"].endswith("Runtime exited without providing a reason"), body
    # an idle worker killed from outside is not used
    os.kill(other, signal.SIGKILL)
    wait_gone([other])
    status, body, headers = invoke(emulator, {"mode": "pid"}, name="steady")
    assert status == 200 and "x-amz-function-error" not in headers, body
    assert body["pid"] != other


def test_concurrent_invokes_run_in_as_many_workers_and_none_outlives_a_kill9(
    tmp_path: Path,
) -> None:
    _node_or_skip()
    (tmp_path / "app.mjs").write_text(APP)
    proc = LambdaEmulatorProcess(tmp_path, str(tmp_path / "app.mjs")).start()
    try:
        n = 3
        with ThreadPoolExecutor(n) as pool:
            answers = list(
                pool.map(lambda _: invoke(proc, {"mode": "pid", "ms": 1000}, name="wide"), range(n))
            )
        assert len({body["pid"] for _, body, _ in answers}) == n, answers
        busy = {"mode": "slow", "ms": 60000}
        kill9_mid_invoke(proc, lambda: invoke(proc, busy, name="busy"), n + 1)
    finally:
        proc.terminate()
