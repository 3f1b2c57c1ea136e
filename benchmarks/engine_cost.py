"""The engine's own CPU per call: no HTTP, no SDK, no fsync.

An ``Engine`` on the in-memory store drives a scripted in-process endpoint (answers are
constant bytes, so the endpoint costs next to nothing) through ``submit`` and ``wait_result``,
16 clients at a time; the figure is the process's CPU time per call (µs), after a warm-up.
``greet`` answers done at once; ``ten`` answers ten checkpoints, then done.

    .venv/bin/python benchmarks/engine_cost.py [--workload greet|ten] [--calls N]
    .venv/bin/python benchmarks/engine_cost.py --base-src /path/to/other/src --rounds 3

With ``--base-src`` each round runs the other tree and this one in fresh interpreters, in
alternating order (ABBA), and prints both medians and their ratio: the engine's cost, side
by side, in one run (what ``make bench-compare`` cannot separate from HTTP and SQLite).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

DONE = (
    b'{"version":1,"status":"done","entries":[{"kind":"run","name":"compose",'
    b'"value":"Hello"},{"kind":"output","value":"Hello"}]}'
)
CHECKPOINT = b'{"version":1,"status":"checkpoint","entries":[{"kind":"run","name":"s","value":1}]}'
SRC = Path(__file__).resolve().parents[1] / "src"


class _Target:
    """An in-process endpoint that answers from constants."""

    async def discover(self) -> bytes:
        from ritornello.protocol import DiscoveryResponse, HandlerInfo, ServiceInfo

        handlers = (HandlerInfo("greet"), HandlerInfo("ten"))
        return DiscoveryResponse((ServiceInfo("Cost", "service", handlers),)).encode()

    async def invoke(self, body: bytes) -> bytes:
        if b'"handler":"ten"' in body and body.count(b'"kind":"run"') < 10:
            return CHECKPOINT
        return DONE


async def _measure(workload: str, calls: int, clients: int = 16) -> float:
    from ritornello.orchestrator import Engine
    from ritornello.store.memory import MemoryStore

    store = MemoryStore()
    await store.open()
    engine = Engine(store, inprocess={"cost": _Target()}, watchdog_interval_s=0)
    await engine.start()
    await engine.register_deployment("inproc://cost")
    target = engine.registry.resolve("Cost", workload)
    assert target is not None

    async def one() -> None:
        rec, _ = await engine.submit(target, None, '"x"')
        await engine.wait_result(rec.id, created=rec)

    async def client(n: int) -> None:
        for _ in range(n):
            await one()

    await asyncio.gather(*(client(20) for _ in range(clients)))  # warm-up
    began = time.process_time()
    await asyncio.gather(*(client(calls // clients) for _ in range(clients)))
    spent = time.process_time() - began
    await engine.stop()
    return spent / (calls // clients * clients) * 1e6


def _one_run(src: Path, workload: str, calls: int) -> float:
    env = {**os.environ, "PYTHONPATH": str(src)}
    out = subprocess.run(
        [sys.executable, __file__, "--workload", workload, "--calls", str(calls)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.split()[0])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--workload", default="greet", choices=("greet", "ten"))
    p.add_argument("--calls", type=int, help="measured calls (greet 8000, ten 2000)")
    p.add_argument("--base-src", type=Path, help="another tree's src/: run both, side by side")
    p.add_argument("--rounds", type=int, default=3, help="with --base-src: rounds (ABBA)")
    args = p.parse_args()
    calls = args.calls or (8000 if args.workload == "greet" else 2000)
    if args.base_src is None:
        print(f"{asyncio.run(_measure(args.workload, calls)):.1f} us CPU per call")
        return
    base: list[float] = []
    new: list[float] = []
    for n in range(args.rounds):
        order = [(args.base_src, base), (SRC, new)]
        for src, into in order if n % 2 == 0 else reversed(order):
            into.append(_one_run(src, args.workload, calls))
    b, m = statistics.median(base), statistics.median(new)
    print(
        f"{args.workload}: base {b:.1f} us ({min(base):.1f}-{max(base):.1f}), "
        f"new {m:.1f} us ({min(new):.1f}-{max(new):.1f}), new/base {m / b:.3f}"
    )


if __name__ == "__main__":
    main()
