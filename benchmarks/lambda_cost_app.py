"""The functions ``benchmarks/lambda_cost.py`` prices, served by one ``ritornello lambda-emulator``:
Ritornello's SDK (service ``Cost``: ``one`` and ``ten`` steps, from tests/apps/plain_steps.py, as
in benchmarks/dynamo_cost.py) and AWS's durable-execution SDK (the same work as
``@durable_execution`` handlers), told apart by the event's shape.

Every Lambda request appends ``<function> <milliseconds in the handler>`` to the file
``LAMBDA_COST_LEDGER`` names: the benchmark's count of Lambda requests and billed duration.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from aws_durable_execution_sdk_python import DurableContext, StepContext, durable_execution

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.apps.plain_steps import one_and_ten  # noqa: E402

from ritornello import Endpoint  # noqa: E402

svc = one_and_ten("Cost")
_ritornello = Endpoint([svc]).lambda_handler()


def _add(total: int) -> Any:
    def run(_: StepContext) -> int:
        return total + 1

    return run


@durable_execution
def _durable(event: dict[str, Any], ctx: DurableContext) -> int:
    total = int(event["n"])
    for i in range(int(event["steps"])):
        total = ctx.step(_add(total), name=f"step-{i}")
    return total


def lambda_handler(event: Any, context: Any) -> Any:
    started = time.perf_counter()
    durable = isinstance(event, dict) and "DurableExecutionArn" in event
    try:
        return _durable(event, context) if durable else _ritornello(event, context)
    finally:
        elapsed_ms = (time.perf_counter() - started) * 1000
        name = getattr(context, "function_name", "?")
        with open(os.environ["LAMBDA_COST_LEDGER"], "a") as fh:
            fh.write(f"{name} {elapsed_ms:.3f}\n")
