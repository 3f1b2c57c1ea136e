"""How long a handler module takes to import: what a Lambda's cold start pays for the SDK.

    .venv/bin/python benchmarks/import_time.py [--base REV] [--runs 21] [--limit-ms 50]

Imports a handler module in a fresh interpreter ``--runs`` times: by default a minimal Lambda
handler module (one service with one step, an ``Endpoint`` and its ``lambda_handler``, written
to a temporary directory); ``--module lambda_app`` the examples' (every example service),
with bytecode compiled once beforehand into a private cache (``PYTHONPYCACHEPREFIX``), as a
deployed function has it, and reads Python's own ``-X importtime`` figure for the module
(cumulative microseconds: the module and everything it imported that was not imported
already). Interpreter start-up is not in it. With ``--base REV`` the same for that commit's
tree (a temporary git worktree), runs alternating, side by side. Reports each side's median,
min and max; exits 1 if this tree's median passes ``--limit-ms``.
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


def _import_us(tree: Path, cache: Path, module: str, where: Path) -> int:
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
    for line in reversed(out.splitlines()):
        parts = [p.strip() for p in line.split("|")]
        if len(parts) == 3 and parts[2] == module:
            return int(parts[1])
    raise RuntimeError(f"no importtime line for {module}:\n{out[-2000:]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", help="a commit to compare with")
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--limit-ms", type=float, default=50.0)
    parser.add_argument("--module", default="handler_module", help="lambda_app: the examples'")
    args = parser.parse_args()
    module = args.module
    with tempfile.TemporaryDirectory(prefix="ritornello-import-") as tmp:
        where = Path(tmp)
        (where / "handler_module.py").write_text(HANDLER)
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
            samples: dict[str, list[int]] = {side: [] for side in trees}
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
    print(f"import {module}, {args.runs} runs, -X importtime, cumulative")
    for side, values in samples.items():
        ms = sorted(v / 1000 for v in values)
        print(
            f"  {side:4}  median {statistics.median(ms):6.1f} ms   "
            f"min {ms[0]:6.1f}   max {ms[-1]:6.1f}"
        )
    if "base" in samples:
        ratio = statistics.median(samples["new"]) / statistics.median(samples["base"])
        print(f"  new/base {ratio:.3f}")
    median_ms = statistics.median(samples["new"]) / 1000
    if median_ms > args.limit_ms:
        print(f"over the limit: {median_ms:.1f} ms > {args.limit_ms} ms")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
