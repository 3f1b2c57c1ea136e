"""What a step costs on the Lambda path, all told: Lambda requests and billed duration,
DynamoDB requests and units, priced per million steps beside AWS Step Functions Standard and
AWS Lambda durable functions.

    .venv/bin/python benchmarks/lambda_cost.py [--invocations 20]

Real parts: an orchestrator engine with its ingress on uvicorn (127.0.0.1), its store on
DynamoDB (moto's server over HTTP on 127.0.0.1, counted at the client by ``DynamoStore.stats``),
and the functions of ``benchmarks/lambda_cost_app.py`` behind ``ritornello lambda-emulator`` (a
process of its own, invoked through boto3 as Lambda is), registered by ARN:

* ``ritornello one|ten``: Ritornello's SDK, a handler of one and of ten ``ctx.run`` steps;
* ``aws-durable 1|10``: AWS's durable-execution SDK, unmodified, the same work as
  ``@durable_execution`` (``context.step``), registered with ``"protocol": "aws-durable"``.

Lambda requests and the time spent in the handler are counted by the app itself (a line per
request), so they are what Lambda would bill: requests at USD 0.20 per million and duration at
USD 0.0000166667 per GB-second at 128 MB. The duration here includes each checkpoint's round
trip to an orchestrator whose store is moto on this machine; against DynamoDB a commit takes a
few milliseconds. Prices: us-east-1 on-demand, DynamoDB USD 0.625 per million write request
units and 0.125 per million read request units; Step Functions Standard USD 25 per million state
transitions; Lambda durable functions USD 8.00 per million durable operations (one per step;
data written and retained billed besides), plus the function's own requests and duration.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.procs import free_port, wait_port  # noqa: E402

from benchmarks import _cost  # noqa: E402
from ritornello.orchestrator import Engine  # noqa: E402
from ritornello.orchestrator.ingress import IngressApp  # noqa: E402
from ritornello.store.dynamodb import DynamoStore  # noqa: E402

LAMBDA_REQUEST_PRICE = 0.20  # USD per million requests
LAMBDA_GB_S_PRICE = 0.0000166667  # USD per GB-second (x86)
MEMORY_GB = 128 / 1024
DURABLE_OPERATION_PER_MILLION = 8.0  # Lambda durable functions: USD per million operations

RITORNELLO_ARN = "arn:aws:lambda:us-east-1:123456789012:function:cost:1"
DURABLE_ARN = "arn:aws:lambda:us-east-1:123456789012:function:durable:1"


def _reset(path: Path) -> None:
    path.write_text("")


def _start_emulator(port: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    app = str(ROOT / "benchmarks" / "lambda_cost_app.py")
    command = [sys.executable, "-m", "ritornello", "lambda-emulator", app, "--port", str(port)]
    return subprocess.Popen(command, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)


def _ledger(path: Path) -> list[float]:
    lines = path.read_text().splitlines() if path.exists() else []
    return [float(line.split()[1]) for line in lines]


async def _measure(
    engine: Engine,
    store: DynamoStore,
    ledger: Path,
    target: tuple[str, str],
    body: Any,
    count: int,
    steps: int,
) -> dict[str, Any]:
    resolved = engine.registry.resolve(*target)
    assert resolved is not None, target
    _reset(ledger)
    before = store.stats.snapshot()
    started = time.perf_counter()
    for n in range(count):
        rec, _ = await engine.submit(resolved, None, json.dumps(body(n)))
        await engine.wait_result(rec.id)
    wall_ms = (time.perf_counter() - started) * 1000 / count
    delta = _cost.stats_delta(before, store.stats.snapshot())
    durations = _ledger(ledger)
    total_steps = count * steps
    lambda_requests = len(durations) / count
    gb_s = sum(durations) / 1000 * MEMORY_GB / count
    dynamo_usd = _cost.usd_per_million(delta) / total_steps
    lambda_usd = (
        len(durations) * LAMBDA_REQUEST_PRICE
        + sum(durations) / 1000 * MEMORY_GB * LAMBDA_GB_S_PRICE * 1e6
    ) / total_steps
    return {
        "lambda requests/invocation": lambda_requests,
        "lambda ms/invocation": sum(durations) / count,
        "GB-s/invocation": gb_s,
        "dynamodb requests/invocation": sum(delta["requests"].values()) / count,
        "WRU/step": delta["write_units"] / total_steps,
        "RRU/step": delta["read_units"] / total_steps,
        "USD/M steps dynamodb": dynamo_usd,
        "USD/M steps lambda": lambda_usd,
        "USD/M steps": dynamo_usd + lambda_usd,
        "wall ms/invocation": wall_ms,
        "dynamodb by operation/invocation": {
            op: n / count for op, n in sorted(delta["requests"].items())
        },
    }


async def main(count: int) -> list[dict[str, Any]]:
    moto, moto_url = _cost.start_moto()
    tmp = Path(tempfile.mkdtemp(prefix="lambda-cost-"))
    ledger = tmp / "ledger.txt"
    ingress_port, emulator_port = free_port(), free_port()
    os.environ["AWS_ENDPOINT_URL_LAMBDA"] = f"http://127.0.0.1:{emulator_port}"
    emulator_env = {
        **os.environ,  # moto's dummy credentials and region (_cost.start_moto) among them
        "AWS_ENDPOINT_URL_LAMBDA": f"http://127.0.0.1:{ingress_port}",
        "LAMBDA_COST_LEDGER": str(ledger),
        "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }
    emulator = _start_emulator(emulator_port, emulator_env, tmp / "emulator.log")
    store, _ = await _cost.open_new_table("cost", moto_url, 4)
    engine = Engine(
        store,
        lease_s=600.0,
        inbox_interval_s=600.0,
        node="bench",
        address=f"http://127.0.0.1:{ingress_port}",
    )
    # what ``ritornello serve`` does: Lambda runs checkpoint to this ingress in place
    engine.deployments.lambda_channels.advertise(f"http://127.0.0.1:{ingress_port}")
    import uvicorn

    server = uvicorn.Server(
        uvicorn.Config(
            IngressApp(engine),
            host="127.0.0.1",
            port=ingress_port,
            log_level="warning",
            lifespan="off",
        )
    )
    serving = asyncio.get_running_loop().create_task(server.serve())
    try:
        await engine.start()
        await asyncio.to_thread(wait_port, ingress_port)
        await asyncio.to_thread(wait_port, emulator_port, emulator)
        await engine.register_deployment(RITORNELLO_ARN)
        await engine.register_durable_function(DURABLE_ARN, "Durable")
        workloads: list[tuple[str, tuple[str, str], Any, int]] = [
            ("ritornello one step", ("Cost", "one"), lambda n: n, 1),
            ("ritornello ten steps", ("Cost", "ten"), lambda n: n, 10),
            ("aws-durable one step", ("Durable", "run"), lambda n: {"n": n, "steps": 1}, 1),
            ("aws-durable ten steps", ("Durable", "run"), lambda n: {"n": n, "steps": 10}, 10),
        ]
        rows = []
        for name, target, body, steps in workloads:
            await _measure(engine, store, ledger, target, body, 2, steps)  # warm up
            row = await _measure(engine, store, ledger, target, body, count, steps)
            rows.append({"workload": name, **row})
        return rows
    finally:
        server.should_exit = True
        await engine.stop()
        await serving
        await store.close()
        emulator.terminate()
        emulator.wait(10)
        moto.stop()


def report(rows: list[dict[str, Any]]) -> str:
    columns = [
        ("workload", "{}"),
        ("lambda requests/invocation", "{:.1f}"),
        ("lambda ms/invocation", "{:.1f}"),
        ("dynamodb requests/invocation", "{:.1f}"),
        ("WRU/step", "{:.2f}"),
        ("RRU/step", "{:.2f}"),
        ("USD/M steps lambda", "{:.2f}"),
        ("USD/M steps dynamodb", "{:.2f}"),
        ("USD/M steps", "{:.2f}"),
    ]
    lines = [
        "| " + " | ".join(c for c, _ in columns) + " |",
        "|" + "---|" * len(columns),
    ]
    for row in rows:
        lines.append("| " + " | ".join(f.format(row[c]) for c, f in columns) + " |")
    lines.append("")
    lines.append(
        f"Step Functions Standard: USD {_cost.STEP_FUNCTIONS_PER_MILLION:.2f} per million state "
        f"transitions; Lambda durable functions: USD {DURABLE_OPERATION_PER_MILLION:.2f} per "
        "million durable operations, plus the function's requests and duration."
    )
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--invocations", type=int, default=20)
    parser.add_argument("--json", type=Path, help="write the rows to this file too")
    args = parser.parse_args()
    result = asyncio.run(main(args.invocations))
    print(report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
