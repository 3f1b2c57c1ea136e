"""An AWS Lambda durable function on Ritornello, as the tests run it: the function's app (AWS's
Python SDK in tests/apps/durable_app.py, or its JavaScript SDK in tests/aws_durable_node/app.mjs)
behind ``ritornello lambda-emulator``, its ``AWS_ENDPOINT_URL_LAMBDA`` the ingress of a
``ritornello serve`` that invokes it, registered by ARN as service ``Orders``.

Both apps take the same events (``mode`` picks what the function does) and append ``<execution>
<step>`` to the ledger for each step they run; the scenarios both suites run are in
_durable_scenarios.py."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

from tests.integration._lambda_pair import journal_of, ledger_counts, restarted, wait_for
from tests.procs import LambdaEmulatorProcess, Orchestrator, aws_env, http

ARN = "arn:aws:lambda:us-east-1:123456789012:function:orders:1"


def execution_arn(inv_id: str) -> str:
    """The durable execution's ARN of invocation ``inv_id`` (of the function ``ARN``)."""
    return f"{ARN}/durable-execution/{inv_id}/{inv_id}"


def register(orch: Orchestrator) -> Any:
    """Registers the function ``ARN`` as service ``Orders`` through ``orch``'s admin API: its
    answer."""
    body = {"arn": ARN, "protocol": "aws-durable", "service": "Orders"}
    status, answer, _ = http("POST", f"{orch.admin}/deployments", body)
    assert status == 201, (answer, orch.output())
    return answer


class Pair:
    """An orchestrator and the emulated function, each pointed at the other."""

    def __init__(self, tmp: Path, app: str = "tests/apps/durable_app.py") -> None:
        self.tmp = tmp
        self.ledger = tmp / "ledger.txt"
        self.orch = Orchestrator(tmp, **aws_env(0, tmp), RITORNELLO_ATTEMPT_TIMEOUT_S="2")
        self.emulator = LambdaEmulatorProcess(
            tmp,
            app,
            **aws_env(self.orch.ingress_port, tmp),
            DURABLE_LEDGER=str(self.ledger),
        )
        self.orch.env.update(aws_env(self.emulator.port, tmp))

    def start(self) -> Pair:
        self.emulator.start()
        self.orch.start()
        return self

    def restart_orchestrator(self) -> None:
        """A new orchestrator process on the same ports and store (the function still points
        at its ingress)."""
        self.orch = restarted(self.orch)

    def call(self, event: Any) -> tuple[int, Any, dict[str, str]]:
        return http("POST", f"{self.orch.ingress}/restate/call/Orders/run", event)

    def send(self, event: Any) -> str:
        status, body, _ = http("POST", f"{self.orch.ingress}/restate/send/Orders/run", event)
        assert status == 202, (body, self.orch.output())
        return str(body["invocationId"])

    def attach(self, inv_id: str) -> tuple[int, Any]:
        status, body, _ = http("GET", f"{self.orch.ingress}/restate/attach/{inv_id}")
        return status, body

    def ran(self, inv_id: str) -> Counter[str]:
        return ledger_counts(self.ledger, inv_id)

    def stop(self) -> None:
        self.orch.terminate()
        self.emulator.terminate()


def journal(pair: Pair, inv_id: str) -> list[dict[str, Any]]:
    return journal_of(pair.orch.admin, inv_id)


def succeeded(pair: Pair, event: Any) -> str:
    """Calls the function with ``event``, which must succeed: the invocation's id."""
    status, body, headers = pair.call(event)
    assert status == 200, (body, pair.orch.output())
    return headers["x-restate-id"]


def suspended(pair: Pair, inv_id: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        detail = http("GET", f"{pair.orch.admin}/invocations/{inv_id}")[1]
        if detail["status"] == "suspended":
            return
        time.sleep(0.05)
    raise TimeoutError(f"{inv_id} did not suspend: {detail}")


def callback_sent(pair: Pair, name: str, **event: Any) -> tuple[str, str]:
    """Sends an execution that creates a callback (``mode`` ``callback`` unless ``event``
    says another, with ``event``'s options) and publishes its id to the file ``name`` names:
    the invocation's id and the callback's, once published (the execution may still run)."""
    publish = pair.tmp / f"callback-{name}.txt"
    inv = pair.send({"mode": "callback", **event, "publish_to": str(publish)})
    return inv, wait_for(publish)
