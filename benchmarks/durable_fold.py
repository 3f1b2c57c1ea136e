"""An AWS durable function's checkpoints as its execution grows: time per checkpoint at n
operations, two versions side by side (docs/aws-durable.md, "Measured").

    .venv/bin/python benchmarks/durable_fold.py [--base main] [--sizes 100,1000,4000]
        [--timed 200] [--rounds 3] [--store memory|sqlite]

An ``Engine`` in this process (the in-memory store, or a SQLite file) serves the ingress app
(its durable API, called as ASGI in the same event loop: no sockets); a durable function is
registered by ARN, and its Lambda invoke is played here: given the invocation event, the
function checkpoints through the durable API as AWS's SDK does, one request at a time with
the token each answer gives, and answers SUCCEEDED. What it checkpoints is a ``map``: one
CONTEXT for the map, and per item a child CONTEXT holding one STEP (START and SUCCEED of
each: two operations, four updates an item). For each size n, one execution in one run:
n operations journaled in checkpoints of 250 updates, then ``--timed`` checkpoints of one
update each, each timed from the request to its answer (the adapter, the core's commit, the
answer). Printed per size: the median and mean milliseconds per timed checkpoint and the CPU
milliseconds per checkpoint (the process's), medians over the rounds.

For BASE (a git revision exported with ``git archive`` into a temporary directory) and this
tree's ``src/``, each round runs in fresh interpreters importing that side's ``src/``, the
sides alternating (ABBA over rounds); printed: both, and new/base. ``--base ''``: this tree
only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.asgi_call import asgi_call  # noqa: E402

ARN = "arn:aws:lambda:us-east-1:123456789012:function:fold:1"
#: updates per checkpoint while an execution is brought to its size (the SDK batches too)
SEED_BATCH = 250
JSON = {"content-type": "application/json"}


def item_updates(n: int) -> list[dict[str, Any]]:
    """The four updates of map item ``n``: its child context, and the step inside it."""
    child, step = f"item-{n}", f"step-{n}"
    return [
        {"Id": child, "Type": "CONTEXT", "Action": "START", "ParentId": "map", "Name": child},
        {"Id": step, "Type": "STEP", "Action": "START", "ParentId": child, "Name": "work"},
        {"Id": step, "Type": "STEP", "Action": "SUCCEED", "ParentId": child, "Payload": str(n)},
        {"Id": child, "Type": "CONTEXT", "Action": "SUCCEED", "Payload": str(n)},
    ]


class Function:
    """The durable function's Lambda invoke, played: checkpoints of a ``map`` of
    ``operations`` operations, then ``timed`` single-update checkpoints, each timed."""

    def __init__(self, app: Any, operations: int, timed: int) -> None:
        self.app = app
        self.operations = operations
        self.timed = timed
        self.times: list[float] = []
        self.cpu = 0.0

    async def invoke_event(self, event: bytes) -> bytes:
        given = json.loads(event)
        arn = given["DurableExecutionArn"]
        path = f"/2025-12-01/durable-executions/{quote(arn, safe='')}/checkpoint"
        token = given["CheckpointToken"]

        async def checkpoint(updates: list[dict[str, Any]]) -> None:
            nonlocal token
            body = json.dumps({"CheckpointToken": token, "Updates": updates}).encode()
            status, _, answer = await asgi_call(self.app, "POST", path, body, JSON)
            if status != 200:
                raise RuntimeError(f"checkpoint refused: {status} {answer[:200]!r}")
            token = json.loads(answer)["CheckpointToken"]

        seed = [{"Id": "map", "Type": "CONTEXT", "Action": "START", "SubType": "Map"}]
        item = 0
        while 1 + 2 * item < self.operations:
            seed += item_updates(item)
            item += 1
        for n in range(0, len(seed), SEED_BATCH):
            await checkpoint(seed[n : n + SEED_BATCH])
        timed: list[dict[str, Any]] = []
        while len(timed) < self.timed:
            timed += item_updates(item)
            item += 1
        cpu = time.process_time()
        for update in timed[: self.timed]:
            began = time.perf_counter()
            await checkpoint([update])
            self.times.append((time.perf_counter() - began) * 1000)
        self.cpu = (time.process_time() - cpu) * 1000 / self.timed
        return json.dumps({"Status": "SUCCEEDED", "Result": '"done"'}).encode()


async def measure(sizes: list[int], timed: int, store_kind: str) -> dict[int, list[float]]:
    """{size: [median ms, mean ms, CPU ms] per timed checkpoint} of this interpreter's
    ``ritornello``."""
    from ritornello.orchestrator import Engine
    from ritornello.orchestrator.ingress import IngressApp
    from ritornello.store.memory import MemoryStore
    from ritornello.store.sqlite import SqliteStore

    out: dict[int, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="ritornello-fold-") as tmp:
        store = MemoryStore() if store_kind == "memory" else SqliteStore(Path(tmp) / "r.db")
        await store.open()
        engine = Engine(store, watchdog_interval_s=0)
        await engine.start()
        try:
            record = await engine.register_durable_function(ARN, "Fold")
            found = engine.deployments.endpoint(record.id)
            assert found is not None
            invoker = found[1]
            app = IngressApp(engine)
            target = engine.registry.resolve("Fold", "run")
            assert target is not None
            for size in sizes:
                function = Function(app, size, timed)
                invoker.invoke_event = function.invoke_event
                rec, _ = await engine.submit(target, None, '{"n":1}')
                result = await engine.wait_result(rec.id, created=rec)
                assert len(function.times) == timed, (size, result)
                times = function.times
                out[size] = [statistics.median(times), statistics.fmean(times), function.cpu]
        finally:
            await engine.stop()
            await store.close()
    return out


def _one_run(src: Path, sizes: str, timed: int, store_kind: str) -> dict[int, list[float]]:
    env = {**os.environ, "PYTHONPATH": str(src), "AWS_DEFAULT_REGION": "us-east-1"}
    args = ["--worker", "--sizes", sizes, "--timed", str(timed), "--store", store_kind]
    out = subprocess.run(
        [sys.executable, __file__, *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise SystemExit(f"{src}: the run failed:\n{out.stderr[-3000:]}")
    probe, _, figures = out.stdout.partition("\n")
    if not probe.startswith(str(src)):
        raise SystemExit(f"{src}: ritornello imported from {probe}")
    return {int(k): v for k, v in json.loads(figures).items()}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--base", default="main", help="a git revision ('': this tree only)")
    p.add_argument("--sizes", default="100,1000,4000", help="operations per execution")
    p.add_argument("--timed", type=int, default=200, help="checkpoints timed per execution")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--store", default="memory", choices=("memory", "sqlite"))
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.worker:
        import ritornello

        print(ritornello.__file__)
        print(json.dumps(asyncio.run(measure(sizes, args.timed, args.store))))
        return 0
    with tempfile.TemporaryDirectory(prefix="ritornello-base-") as base_dir:
        sides = {"new": ROOT / "src"}
        if args.base:
            archive = subprocess.run(
                ["git", "archive", args.base, "src"], cwd=ROOT, capture_output=True, check=True
            ).stdout
            subprocess.run(["tar", "-x", "-C", base_dir], input=archive, check=True)
            sides = {"base": Path(base_dir) / "src", **sides}
        runs: dict[str, list[dict[int, list[float]]]] = {name: [] for name in sides}
        for n in range(args.rounds):
            order = list(sides) if n % 2 == 0 else list(reversed(sides))
            for name in order:
                runs[name].append(_one_run(sides[name], args.sizes, args.timed, args.store))
                print(f"round {n + 1} {name}: {runs[name][-1]}", flush=True)
    med = {
        name: {s: [statistics.median(r[s][i] for r in rs) for i in range(3)] for s in sizes}
        for name, rs in runs.items()
    }
    print(f"\nms per checkpoint ({args.store} store; {args.timed} timed at each size)")
    print(f"{'operations':>10} {'side':>8} {'p50':>9} {'mean':>9} {'cpu':>9}")
    for size in sizes:
        for name in sides:
            p50, mean, cpu = med[name][size]
            print(f"{size:>10} {name:>8} {p50:>9.3f} {mean:>9.3f} {cpu:>9.3f}")
        if "base" in med:
            ratio = [med["new"][size][i] / med["base"][size][i] for i in range(3)]
            print(f"{size:>10} {'new/base':>8} {ratio[0]:>9.2f} {ratio[1]:>9.2f} {ratio[2]:>9.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
