"""AWS's conformance runner, pointed at Ritornello instead of SAM and AWS.

The vendored validator (``aws_durable_execution_conformance_tests.validate``, unmodified) takes
an *invoker* (``invoke`` / ``invoke_async`` of a function with an event file, answering the
``DurableExecutionArn``) and a boto3 Lambda client it reads the execution's history and result
through and completes callbacks with. Here the invoker calls the function's registered service
through Ritornello's ingress (``/restate/call`` or ``/restate/send``, the event being the
requirement's ``Input``) and the Lambda client is boto3's, pointed at the ingress (the durable
API). Each template function is registered by ARN (``...:function:LOGICAL_ID:1``) as service
``LOGICAL_ID``; ``ritornello lambda-emulator tests/aws_conformance/app.py`` serves them all.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.aws_conformance.templates import REQUIREMENTS, VENDOR, Function, function_arn, functions
from tests.procs import (
    LambdaEmulatorProcess,
    Orchestrator,
    aws_client,
    aws_env,
    http,
    moto_process,
)

sys.path.insert(0, str(VENDOR / "runner"))

from aws_durable_execution_conformance_tests import validate
from aws_durable_execution_conformance_tests.sam import InvocationResult

QUALIFIER = "1"

#: Requirements this runner cannot run, and why. (1-17, 1-18 and 3-12 crash their Lambda
#: process with os._exit: the emulator runs each function in processes of its own, so they run.)
NOT_RUNNABLE: dict[str, str] = {}
#: The templates' DynamoDB tables (3-12 counts its attempts in one), served by moto.
TABLES = ("AttemptsTable",)


def requirement_file(req_id: str) -> Path:
    """The vendored YAML of requirement ``req_id`` ("1-1": suite by its number's prefix)."""
    found = list(REQUIREMENTS.glob(f"*/{req_id}.yaml"))
    if len(found) != 1:
        raise LookupError(f"requirement {req_id}: {found}")
    return found[0]


def requirements() -> dict[str, Function]:
    """Every vendored requirement id, with the template function that serves it."""
    out: dict[str, Function] = {}
    for function in functions().values():
        for req_id in function.requirements:
            out[req_id] = function
    return out


class RitornelloInvoker:
    """The runner's ``sam.Invoker`` interface over Ritornello's ingress."""

    def __init__(self, ingress: str) -> None:
        self.ingress = ingress

    @property
    def stack_name(self) -> str:
        return "ritornello"

    def _start(self, mode: str, function_name: str, event_file_path: str) -> InvocationResult:
        event = json.loads(Path(event_file_path).read_text()).get("Input")
        url = f"{self.ingress}/restate/{mode}/{function_name}/run"
        status, body, headers = http("POST", url, event, timeout=120)
        inv_id = headers.get("x-restate-id") or (body or {}).get("invocationId")
        arn = f"{function_arn(function_name)}:{QUALIFIER}/durable-execution/{inv_id}/{inv_id}"
        return InvocationResult(
            success=inv_id is not None,
            command=f"POST {url}",
            output=json.dumps({"DurableExecutionArn": arn, "StatusCode": status}),
            stderr="" if inv_id else json.dumps(body),
            function_name=function_name,
            execution_id=inv_id,
        )

    def invoke(self, function_name: str, event_file_path: str) -> InvocationResult:
        return self._start("call", function_name, event_file_path)

    def invoke_async(self, function_name: str, event_file_path: str) -> InvocationResult:
        return self._start("send", function_name, event_file_path)


@dataclass
class Outcome:
    """A requirement's verdict: the runner's ``passed`` and its errors."""

    req_id: str
    function: str
    passed: bool
    errors: list[str]
    #: the requirement's ``ExpectedLogs`` (CloudWatch records) were left out: not emulated
    logs_unchecked: bool = False


class Conformance:
    """An orchestrator and the emulated functions, every template function registered."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.orch = Orchestrator(tmp, **aws_env(0, tmp), RITORNELLO_ATTEMPT_TIMEOUT_S="30")
        self.emulator = LambdaEmulatorProcess(
            tmp, "tests/aws_conformance/app.py", **aws_env(self.orch.ingress_port, tmp)
        )
        self.orch.env.update(aws_env(self.emulator.port, tmp))
        self._moto = contextlib.ExitStack()

    def start(self) -> Conformance:
        moto = self._moto.enter_context(moto_process(self.tmp))
        self.emulator.env.update(
            {k: v for k, v in moto.items() if k.startswith("AWS_ENDPOINT_URL_")}
        )
        dynamodb = aws_client("dynamodb", moto["AWS_ENDPOINT_URL_DYNAMODB"])
        for table in TABLES:
            dynamodb.create_table(
                TableName=table,
                AttributeDefinitions=[{"AttributeName": "executionId", "AttributeType": "S"}],
                KeySchema=[{"AttributeName": "executionId", "KeyType": "HASH"}],
                BillingMode="PAY_PER_REQUEST",
            )
        self.emulator.start()
        self.orch.start()
        for logical_id in functions():
            body = {
                "arn": f"{function_arn(logical_id)}:{QUALIFIER}",
                "protocol": "aws-durable",
                "service": logical_id,
            }
            status, answer, _ = http("POST", f"{self.orch.admin}/deployments", body)
            if status != 201:
                raise RuntimeError(f"registering {logical_id}: {status} {answer}")
        return self

    def stop(self) -> None:
        self.orch.terminate()
        self.emulator.terminate()
        self._moto.close()

    def lambda_client(self) -> Any:
        from botocore.config import Config

        return aws_client("lambda", self.orch.ingress, config=Config(retries={"max_attempts": 1}))

    def run(self, req_id: str) -> Outcome:
        """Validate requirement ``req_id`` with AWS's validator, against this Ritornello."""
        function = requirements()[req_id]
        test_file = requirement_file(req_id)
        description = yaml.safe_load(test_file.read_text())
        logs_unchecked = description.pop("ExpectedLogs", None) is not None
        if logs_unchecked:  # CloudWatch Logs are not emulated: the rest is validated
            test_file = self.tmp / f"{req_id}-without-logs.yaml"
            test_file.write_text(yaml.safe_dump(description))
        result = validate.validate_description(
            function_name=function.logical_id,
            description_id=req_id,
            test_file=str(test_file),
            invoker=RitornelloInvoker(self.orch.ingress),  # type: ignore[arg-type]
            tmp_dir=str(self.tmp),
            region="us-east-1",
            aws_clients={"lambda": self.lambda_client()},  # type: ignore[typeddict-item]
            output_dir=str(self.tmp / "histories"),
        )
        errors = list(result.errors)
        return Outcome(req_id, function.logical_id, result.passed, errors, logs_unchecked)


def conformance(tmp: Path) -> Iterator[Conformance]:
    """A started ``Conformance`` (a generator for a pytest fixture)."""
    c = Conformance(tmp).start()
    try:
        yield c
    finally:
        c.stop()
