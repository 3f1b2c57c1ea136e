"""How long a handler module takes to import: what a Lambda's cold start pays for the SDK.

    .venv/bin/python benchmarks/import_time.py [--base REV] [--runs 21] [--module M] [--limit-ms N]

Imports a handler module in a fresh interpreter ``--runs`` times: by default a minimal Lambda
handler module (one service with one step, an ``Endpoint`` and its ``lambda_handler``, written
to a temporary directory); ``--module lambda_app`` the examples' (every example service),
with bytecode compiled once beforehand into a private cache (``PYTHONPYCACHEPREFIX``), as a
deployed function has it, and reads Python's own ``-X importtime`` figure for the module
(cumulative microseconds: the module and everything it imported that was not imported
already). Interpreter start-up is not in it. With ``--base REV`` the same for that commit's
tree (a temporary git worktree), runs alternating, side by side. Reports each side's median,
min and max, and the self time of our own modules in it (``ritornello.*`` and the handler
module: what the SDK itself costs, the rest being the standard library's, asyncio first, and
Powertools' when installed, reported apart: a handler module without it is the median of each
run's total less Powertools' cumulative share); exits 1 if this tree's median without Powertools
passes ``--limit-ms``, if given (the SDK's own budget: Powertools is an optional extra).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HANDLER = """
from ritornello import Context, Endpoint, Service

greeter = Service("Greeter")


@greeter.handler()
async def greet(ctx: Context, name: str) -> str:
    return await ctx.run("compose", lambda: f"Hello, {name}!")


lambda_handler = Endpoint([greeter]).lambda_handler()
"""
#: The same served over HTTP: no Lambda handler, so no Powertools.
HTTP_HANDLER = HANDLER.replace(
    "lambda_handler = Endpoint([greeter]).lambda_handler()", "app = Endpoint([greeter]).asgi()"
)


def _import_us(tree: Path, cache: Path, module: str, where: Path) -> tuple[int, int, int]:
    """(the module's cumulative import time, the self time of ours in it: ``ritornello.*``
    and the module itself, Powertools' cumulative time in it: ``aws_lambda_powertools`` and
    what it imported that was not imported already), in microseconds."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(
        PYTHONPATH=os.pathsep.join([str(tree / "src"), str(tree / "examples"), str(where)]),
        PYTHONPYCACHEPREFIX=str(cache),
    )
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=tree,
    ).stderr
    total, ours, powertools = None, 0, 0
    for line in out.splitlines():
        parts = [p.strip() for p in line.removeprefix("import time:").split("|")]
        if len(parts) != 3 or not parts[0].isdigit():
            continue
        if parts[2] == module or parts[2].startswith("ritornello"):
            ours += int(parts[0])
        if parts[2] == module:
            total = int(parts[1])
        if parts[2] == "aws_lambda_powertools":
            powertools = int(parts[1])
    if total is None:
        raise RuntimeError(f"no importtime line for {module}:\n{out[-2000:]}")
    return total, ours, powertools


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", help="a commit to compare with")
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--limit-ms", type=float, help="fail if this tree's median is above")
    parser.add_argument(
        "--module",
        default="handler_module",
        help="http_module: the same over HTTP (no Powertools); lambda_app: the examples'",
    )
    args = parser.parse_args()
    module = args.module
    with tempfile.TemporaryDirectory(prefix="ritornello-import-") as tmp:
        where = Path(tmp)
        (where / "handler_module.py").write_text(HANDLER)
        (where / "http_module.py").write_text(HTTP_HANDLER)
        trees = {"new": ROOT}
        if args.base:
            base = Path(tmp) / "base"
            subprocess.run(
                ["git", "worktree", "add", "--detach", "-q", str(base), args.base],
                cwd=ROOT,
                check=True,
            )
            trees = {"base": base, "new": ROOT}
        try:
            caches = {side: Path(tmp) / f"pyc-{side}" for side in trees}
            for side, tree in trees.items():
                _import_us(tree, caches[side], module, where)  # compiled once, as deployed
            samples: dict[str, list[tuple[int, int, int]]] = {side: [] for side in trees}
            for _ in range(args.runs):
                for side, tree in trees.items():
                    samples[side].append(_import_us(tree, caches[side], module, where))
        finally:
            if args.base:
                subprocess.run(
                    ["git", "worktree", "remove", "--force", str(Path(tmp) / "base")],
                    cwd=ROOT,
                    check=False,
                )
    print(f"import {module}, {args.runs} runs, -X importtime (ours: ritornello.* self time)")
    medians: dict[str, tuple[float, float, float]] = {}
    for side, values in samples.items():
        totals = sorted(v[0] / 1000 for v in values)
        ours = statistics.median(v[1] / 1000 for v in values)
        powertools = statistics.median(v[2] / 1000 for v in values)
        without = statistics.median((v[0] - v[2]) / 1000 for v in values)
        medians[side] = (statistics.median(totals), ours, without)
        print(
            f"  {side:4}  median {medians[side][0]:6.1f} ms   min {totals[0]:6.1f}   "
            f"max {totals[-1]:6.1f}   ours {ours:5.1f} ms"
            + (f"   Powertools {powertools:5.1f}, without {without:5.1f} ms" if powertools else "")
        )
    if "base" in medians:
        print(
            f"  new/base {medians['new'][0] / medians['base'][0]:.3f}   "
            f"ours new/base {medians['new'][1] / medians['base'][1]:.3f}"
        )
    if args.limit_ms is not None and medians["new"][2] > args.limit_ms:
        print(f"over the limit: {medians['new'][2]:.1f} ms > {args.limit_ms} ms")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
