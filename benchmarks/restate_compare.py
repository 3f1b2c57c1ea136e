"""Ritornello and the Restate server 1.7 side by side, the same restate-sdk endpoint behind each.

    make bench-restate [BENCH_ARGS='--seconds 15 --runs 3 --clients 64']
    .venv/bin/python benchmarks/restate_compare.py [--seconds 15] [--warmup 3] [--runs 3]
        [--clients 64] [--workloads greet,ten] [--transports h1,h2c] [--ritornello h1,h2c]

Root only (it makes a network namespace). ~7 min at the defaults. ``--render RUN/rows.json``
prints a finished run's tables again.

**What runs.** The endpoint is tests/restate/apps/py_app.py (``restate-sdk`` 1.2 under
hypercorn, tests/restate/apps/serve_py.py): ``Greeter/greet`` (one ``ctx.run``) and
``Greeter/ten`` (ten ``ctx.run``), called with ``POST /Greeter/<handler>`` and the JSON body
``"bench"`` on each server's ingress. Four stacks, each with a fresh endpoint process of its own:

- ``ritornello h1``: ``python -m ritornello serve`` on a fresh SQLite file (its defaults: WAL,
  synchronous=FULL), the endpoint over HTTP/1.1 (REQUEST_RESPONSE), registered with
  ``POST /deployments {"uri": ...}``;
- ``restate h1``: ``restate-server`` (npm ``@restatedev/restate-server@~1.7``, its defaults but
  for the addresses below), the same endpoint over HTTP/1.1, registered with
  ``{"uri": ..., "use_http_11": true}`` (REQUEST_RESPONSE: every ``ctx.run`` is a suspension
  and a new request carrying the journal, as on Ritornello);
- ``restate h2c``: the same server, the endpoint with ``--http2`` (h2c, prior knowledge),
  registered with ``{"uri": ...}``: Restate's default for an ``http://`` URI, BIDI_STREAM (one
  HTTP/2 stream per invocation; a step's result comes back on the open stream).

- ``ritornello h2c``: the same, the endpoint with ``--http2``: Ritornello finds it over HTTP/2
  and invokes it BIDI_STREAM (docs/restate-protocol.md), as Restate does.

Every Ritornello stack is compared with every Restate one; the like-for-like pairs are
``h1``/``h1`` (REQUEST_RESPONSE on both sides) and ``h2c``/``h2c`` (BIDI_STREAM on both).

**Loopback only.** Restate calls out at start-up (telemetry), so everything of the comparison
runs in a network namespace of its own that has nothing but ``lo``: this script makes it
(``ip netns add``; ``--netns`` names it), re-runs itself inside it (``ip netns exec``), which
refuses to go on unless ``lo`` is the only interface, and deletes it at the end. The endpoint,
both servers and wrk all run inside it, so they share one loopback; Restate is also told
``disable-telemetry = true``, TCP listeners on 127.0.0.1 only and no web UI. The npm install
(``--restate-dir``, once, without install scripts) is the only step outside it.

**How it measures.** Each round starts each stack afresh (new processes, new SQLite file or
RocksDB directory), checks one call of each workload answers 200 with the right body, then per
workload and client count: wrk for ``--warmup`` s (not recorded), then one measured wrk run of
``--seconds`` s (``wrk -t2 -cN --latency``, benchmarks/_wrk.py). The stacks' order flips every
round (ABBA), so a drift of this shared machine hits all sides alike. Printed: the median over
the rounds of req/s, p50, p99 per stack, workload and client count, with their min-max; the
ratios Ritornello/Restate; and where the CPU went during the measured window, in cores of the
2: the server's process tree and the endpoint's, each with its busiest thread (a Python
process gets about one core: an event-loop thread near 1.0 is that process's ceiling), wrk,
and everything else on the machine (/proc/stat busy time minus ours; the busiest of those
processes are named under the table: on a shared machine they explain a slow round); and the
CPU milliseconds per invocation of server and endpoint, which other processes move less than
req/s. Also printed: the protocol each server says it uses with the endpoint (its
``GET /deployments/{id}``).
``errors`` is the sum over rounds of wrk's non-2xx answers and socket errors.

Raw output: benchmarks/results/<stamp>-restate/: ``table.txt``, ``rows.json`` (every run), the
wrk reports and each process's log.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import importlib.metadata
import json
import math
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import _wrk  # noqa: E402
from benchmarks._procs import (  # noqa: E402
    Proc,
    free_port,
    http,
    machine_busy_s,
    peak_rss_mb,
    tree,
    tree_cpu_s,
    wait_port,
)

RESTATE_PACKAGE = "@restatedev/restate-server"
SERVE_PY = ROOT / "tests" / "restate" / "apps" / "serve_py.py"
WORKLOADS = {"greet": ("/Greeter/greet", "Hello bench!"), "ten": ("/Greeter/ten", 10)}
TRANSPORTS = ("h1", "h2c")
NPM_INSTALL = ("npm", "install", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error")
CORE_COLUMNS = ("server", "server_thread", "endpoint", "endpoint_thread", "wrk", "others", "busy")
_TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Target:
    """One stack: a server and the transport it speaks to its (own, fresh) endpoint."""

    server: str  # "ritornello" | "restate"
    transport: str  # "h1" | "h2c"

    @property
    def name(self) -> str:
        return f"{self.server} {self.transport}"


@dataclass
class Run:
    """One measured wrk run of one workload on one stack."""

    server: str
    transport: str
    workload: str
    clients: int
    round: int
    rps: float = math.nan
    p50: float = math.nan
    p90: float = math.nan
    p99: float = math.nan
    requests: int = 0
    non2xx: int = 0
    socket_errors: int = 0
    #: cores (CPU seconds / window seconds): server, server_thread, endpoint, endpoint_thread,
    #: wrk, others, busy (the whole machine)
    cores: dict[str, float] = field(default_factory=dict)
    rss_mb: dict[str, float] = field(default_factory=dict)  # peak, per role
    #: the other processes that took the most CPU during the window: "comm[pid] cores"
    others_top: list[str] = field(default_factory=list)

    @property
    def errors(self) -> int:
        return self.non2xx + self.socket_errors


# --- outside the namespace: install, namespace, re-run inside ----------------------------------


def restate_binary(directory: Path) -> Path | None:
    """The platform package's ``restate-server`` under ``directory``'s node_modules, if any."""
    pattern = str(directory / "node_modules" / "@restatedev" / "restate-server-*" / "bin")
    found = sorted(glob.glob(pattern + "/restate-server"))
    return Path(found[0]) if found else None


def ensure_restate(directory: Path, version: str, install: bool) -> Path:
    """The restate-server binary, installed from npm into ``directory`` first if missing
    (``--ignore-scripts``: nothing of the package runs at install time)."""
    binary = restate_binary(directory)
    if binary is None and install:
        directory.mkdir(parents=True, exist_ok=True)
        if not (directory / "package.json").exists():
            (directory / "package.json").write_text('{"name": "restate-bench", "private": true}\n')
        spec = f"{RESTATE_PACKAGE}@{version}"
        print(f"npm install {spec} into {directory} ...", file=sys.stderr)
        done = subprocess.run(
            [*NPM_INSTALL, "--prefix", str(directory), spec],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            sys.exit(f"npm install {spec} failed:\n{done.stdout}{done.stderr}")
        binary = restate_binary(directory)
    if binary is None:
        sys.exit(
            f"no restate-server binary under {directory}/node_modules (try without --no-install)"
        )
    return binary


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True)


def outside(args: argparse.Namespace, argv: list[str]) -> int:
    """Make the namespace, run this script inside it, delete the namespace."""
    if os.geteuid() != 0:
        sys.exit("root needed: the comparison runs in a network namespace (ip netns)")
    for tool in ("ip", "wrk"):
        if subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True).returncode:
            sys.exit(f"{tool} not found")
    binary = ensure_restate(args.restate_dir, args.restate_version, not args.no_install)
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    if args.netns in (line.split()[0] for line in namespaces.splitlines() if line.strip()):
        sys.exit(f"network namespace {args.netns!r} exists already: delete it or pass --netns")
    _ip("netns", "add", args.netns)
    child: subprocess.Popen[bytes] | None = None

    def forward(signum: int, frame: FrameType | None) -> None:
        if child is not None and child.poll() is None:
            os.kill(child.pid, signal.SIGTERM)  # the inner run stops its processes, then exits

    try:
        _ip("netns", "exec", args.netns, "ip", "link", "set", "lo", "up")
        inner = [sys.executable, str(Path(__file__).resolve()), "--inside"]
        inner += ["--restate-bin", str(binary), *argv]
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, forward)
        child = subprocess.Popen(["ip", "netns", "exec", args.netns, *inner], cwd=ROOT)
        status = child.wait()
    finally:
        left = subprocess.run(
            ["ip", "netns", "pids", args.netns], capture_output=True, text=True
        ).stdout.split()
        for pid in left:  # only ours can be in the namespace this run made
            print(f"note: process {pid} was left in {args.netns}; killing it", file=sys.stderr)
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
        subprocess.run(["ip", "netns", "del", args.netns], check=False)
    return status


# --- inside the namespace: processes ------------------------------------------------------------


def loopback_only() -> list[str]:
    """The network interfaces of this process's namespace (netlink, not sysfs)."""
    return [name for _, name in socket.if_nameindex()]


def threads_cpu_s(pid: int) -> dict[int, float]:
    """utime + stime of each thread of process ``pid`` (its own threads, not its children's)."""
    out: dict[int, float] = {}
    with contextlib.suppress(OSError):
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            out[int(tid)] = (int(fields[11]) + int(fields[12])) / _TICK
    return out


def busiest_thread_s(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds of the thread that took the most between two ``threads_cpu_s`` snapshots."""
    return max((cpu - before.get(tid, 0.0) for tid, cpu in after.items()), default=0.0)


def all_cpu_s() -> dict[int, tuple[str, float]]:
    """pid -> (command name, utime + stime) of every process visible in /proc."""
    out: dict[int, tuple[str, float]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        out[int(name)] = (comm, (int(fields[11]) + int(fields[12])) / _TICK)
    return out


def top_others(
    before: dict[int, tuple[str, float]], ours: set[int], window: float, n: int = 3
) -> list[str]:
    """The ``n`` processes not ``ours`` that took the most CPU since ``before`` (>= 0.05 core)."""
    took = []
    for pid, (comm, cpu) in all_cpu_s().items():
        if pid in ours:
            continue
        cores = (cpu - before.get(pid, (comm, 0.0))[1]) / window
        if cores >= 0.05:
            took.append((cores, f"{comm}[{pid}] {cores:.2f}"))
    return [text for _, text in sorted(took, reverse=True)[:n]]


def _pid(proc: Proc) -> int:
    assert proc.proc is not None
    return proc.proc.pid


@dataclass
class Stack:
    target: Target
    ingress: str
    server_pid: int
    endpoint_pid: int
    registered: dict[str, Any]


def _wait_http(url: str, proc: Proc, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        assert proc.proc is not None
        if proc.proc.poll() is not None:
            raise RuntimeError(
                f"{proc.args[0]} exited with {proc.proc.returncode}:\n{proc.output()}"
            )
        with contextlib.suppress(OSError):
            if http("GET", url, timeout=2)[0] == 200:
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer 200 within {timeout:g} s:\n{proc.output()}")
        time.sleep(0.1)


def restate_config(ingress: int, admin: int, fabric: int) -> str:
    """Restate's defaults but for these: telemetry off, TCP on 127.0.0.1 only (no Unix sockets),
    no web UI, a 10 s shutdown drain."""
    return (
        "disable-telemetry = true\n"
        'listen-mode = "tcp"\n'
        f'bind-address = "127.0.0.1:{fabric}"\n'
        'shutdown-timeout = "10s"\n'
        f'[ingress]\nbind-address = "127.0.0.1:{ingress}"\n'
        f'[admin]\nbind-address = "127.0.0.1:{admin}"\ndisable-web-ui = true\n'
    )


@contextlib.contextmanager
def stack(target: Target, restate_bin: Path, logs: Path) -> Iterator[Stack]:
    """The target's endpoint and server, started, registered; both stopped (by PID) on exit."""
    logs.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="restate-compare-") as scratch:
        tmp = Path(scratch)
        ep_port = free_port()
        http2 = ["--http2"] if target.transport == "h2c" else []
        endpoint = Proc(
            [sys.executable, str(SERVE_PY), str(ep_port), *http2], logs / "endpoint.log"
        )
        uri = f"http://127.0.0.1:{ep_port}"
        ingress_port, admin_port = free_port(), free_port()
        body: dict[str, Any] = {"uri": uri}
        if target.server == "ritornello":
            args = [sys.executable, "-m", "ritornello", "serve"]
            args += ["--store", f"sqlite:///{tmp / 'ritornello.db'}"]
            args += ["--ingress-port", str(ingress_port), "--admin-port", str(admin_port)]
            server = Proc(args, logs / "ritornello.log")
            health = f"http://127.0.0.1:{admin_port}/health"
        else:
            config = tmp / "restate.toml"
            config.write_text(restate_config(ingress_port, admin_port, free_port()))
            args = [str(restate_bin), "-c", str(config), "--base-dir", str(tmp / "data")]
            args += ["--node-name", "bench", "--no-logo", "--log-disable-ansi-codes", "true"]
            server = Proc(args, logs / "restate.log")
            health = f"http://127.0.0.1:{admin_port}/health"
            if target.transport == "h1":
                body["use_http_11"] = True
        try:
            endpoint.start()
            assert endpoint.proc is not None
            wait_port(ep_port, endpoint.proc)
            server.start()
            assert server.proc is not None
            wait_port(admin_port, server.proc, timeout=60)
            _wait_http(health, server, 60)
            wait_port(ingress_port, server.proc, timeout=60)
            url = f"http://127.0.0.1:{admin_port}/deployments"
            status, answer, _ = http("POST", url, body, timeout=60)
            if status not in (200, 201):
                raise RuntimeError(f"{target.name}: registering {body} failed: {status} {answer}")
            registered = answer if isinstance(answer, dict) else {"answer": answer}
            if "id" in registered:  # the details (Restate's protocol_type, http_version)
                status, detail, _ = http("GET", f"{url}/{registered['id']}", timeout=30)
                if status == 200 and isinstance(detail, dict):
                    registered = {**registered, "detail": detail}
            yield Stack(
                target,
                f"http://127.0.0.1:{ingress_port}",
                _pid(server),
                _pid(endpoint),
                registered,
            )
        finally:
            server.terminate(timeout=30)
            endpoint.terminate(timeout=10)


def protocol_mode(stack: Stack) -> str:
    """What the server says it uses with the endpoint: every ``protocol_type`` /
    ``protocolMode`` / ``http_version`` in its registration answer and deployment details."""
    keys = ("protocol_type", "protocolMode", "http_version")
    found = sorted({f"{k}={v}" for k, v in _walk(stack.registered, keys)})
    if not found and stack.target.server == "ritornello":
        return "REQUEST_RESPONSE over HTTP/1.1 (the only one it speaks to endpoints)"
    return ", ".join(found) or "?"


def _walk(value: object, keys: tuple[str, ...]) -> Iterator[tuple[str, str]]:
    if isinstance(value, dict):
        for k, v in value.items():
            if k in keys and isinstance(v, str):
                yield k, v
            yield from _walk(v, keys)
    elif isinstance(value, list):
        for v in value:
            yield from _walk(v, keys)


def check_sample(stack: Stack, workload: str, timeout: float = 20) -> None:
    """One call answers 200 with the workload's expected body (retried while the server is still
    learning the services it just registered)."""
    path, want = WORKLOADS[workload]
    deadline = time.monotonic() + timeout
    while True:
        status, got, _ = http("POST", stack.ingress + path, "bench", timeout=30)
        if status == 200 and got == want:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{stack.target.name} {path}: {status} {got!r}, want 200 {want!r}")
        time.sleep(0.2)


def measure(
    stack: Stack, workload: str, clients: int, args: argparse.Namespace, round_no: int, out: Path
) -> Run:
    """Warm-up, then one measured wrk run with the CPU of every process over its window."""
    path, _ = WORKLOADS[workload]
    lua = out / "post.lua"
    lua.write_text(_wrk.POST_LUA)
    url = stack.ingress + path
    if args.warmup > 0:
        _wrk.run(url, clients, args.warmup, lua)
    pids = {"server": stack.server_pid, "endpoint": stack.endpoint_pid}
    before = {role: tree_cpu_s(pid) for role, pid in pids.items()}
    threads_before = {role: threads_cpu_s(pid) for role, pid in pids.items()}
    everyone = all_cpu_s()
    busy, started = machine_busy_s(), time.monotonic()
    result = _wrk.run(url, clients, args.seconds, lua)
    busy, window = machine_busy_s() - busy, time.monotonic() - started
    mine = {os.getpid(), *tree(stack.server_pid), *tree(stack.endpoint_pid)}
    others_top = top_others(everyone, mine, window)
    cpu = {role: tree_cpu_s(pid) - before[role] for role, pid in pids.items()}
    top = {
        role: busiest_thread_s(threads_before[role], threads_cpu_s(pid))
        for role, pid in pids.items()
    }
    name = f"{stack.target.server}-{stack.target.transport}-{workload}-c{clients}"
    (out / f"{name}.wrk.txt").write_text(result.raw)
    ours = cpu["server"] + cpu["endpoint"] + result.cpu_s
    cores = {
        "server": cpu["server"] / window,
        "server_thread": top["server"] / window,
        "endpoint": cpu["endpoint"] / window,
        "endpoint_thread": top["endpoint"] / window,
        "wrk": result.cpu_s / window,
        "others": max(0.0, busy - ours) / window,
        "busy": busy / window,
    }
    return Run(
        server=stack.target.server,
        transport=stack.target.transport,
        workload=workload,
        clients=clients,
        round=round_no,
        rps=result.rps,
        p50=result.p50,
        p90=result.p90,
        p99=result.p99,
        requests=result.requests,
        non2xx=result.non2xx,
        socket_errors=result.socket_errors,
        cores=cores,
        rss_mb={role: peak_rss_mb(pid) for role, pid in pids.items()},
        others_top=others_top,
    )


# --- the table ------------------------------------------------------------------------------------


def _f(value: float, digits: int = 0) -> str:
    return "-" if math.isnan(value) else f"{value:,.{digits}f}"


def _median(values: list[float]) -> float:
    real = [v for v in values if not math.isnan(v)]
    return statistics.median(real) if real else math.nan


def _group(runs: list[Run], target: Target, workload: str, clients: int) -> list[Run]:
    return [
        r
        for r in runs
        if (r.server, r.transport, r.workload, r.clients)
        == (target.server, target.transport, workload, clients)
    ]


def _spread(group: list[Run], get: Callable[[Run], float], digits: int) -> str:
    vals = [get(r) for r in group if not math.isnan(get(r))]
    return f"{_f(min(vals), digits)}-{_f(max(vals), digits)}" if vals else "-"


SIDES = ("server", "endpoint")


def per_inv_ms(run: Run, role: str) -> float:
    """CPU milliseconds ``role`` spent per completed invocation (cores / (invocations/s))."""
    return run.cores.get(role, math.nan) / run.rps * 1000 if run.rps else math.nan


def main_table(runs: list[Run], targets: list[Target], args: argparse.Namespace) -> list[str]:
    head = (
        f"{'workload':<8} {'c':>3} {'stack':<15} {'req/s':>7} {'min-max':>11} {'p50 ms':>7} "
        f"{'p99 ms':>7} {'p99 min-max':>13} {'err':>4}  | cores: {'srv':>4} {'thr':>4} "
        f"{'ep':>4} {'thr':>4} {'wrk':>4} {'oth':>4} {'all':>4}  | ms/inv: {'srv':>4} {'ep':>4}"
    )
    lines = [head, "-" * len(head)]
    for workload in args.workloads:
        for clients in args.clients:
            for target in targets:
                group = _group(runs, target, workload, clients)
                if not group:
                    lines.append(f"{workload:<8} {clients:>3} {target.name:<15} (no run)")
                    continue

                def med(get: Callable[[Run], float], group: list[Run] = group) -> float:
                    return _median([get(r) for r in group])

                def core(key: str, group: list[Run] = group) -> str:
                    return _f(_median([r.cores.get(key, math.nan) for r in group]), 2)

                lines.append(
                    f"{workload:<8} {clients:>3} {target.name:<15} "
                    f"{_f(med(lambda r: r.rps)):>7} {_spread(group, lambda r: r.rps, 0):>11} "
                    f"{_f(med(lambda r: r.p50), 1):>7} {_f(med(lambda r: r.p99), 1):>7} "
                    f"{_spread(group, lambda r: r.p99, 1):>13} "
                    f"{sum(r.errors for r in group):>4}  |        "
                    + " ".join(f"{core(k):>4}" for k in CORE_COLUMNS)
                    + "  |         "
                    + " ".join(
                        f"{_f(_median([per_inv_ms(r, k) for r in group]), 2):>4}" for k in SIDES
                    )
                )
    return lines


def ratio_table(runs: list[Run], targets: list[Target], args: argparse.Namespace) -> list[str]:
    mine_all = [t for t in targets if t.server == "ritornello"]
    others = [t for t in targets if t.server == "restate"]
    if not mine_all or not others:
        return []
    head = (
        f"{'workload':<8} {'c':>3} {'pair':<30} {'req/s R/S':>9} {'p50 R/S':>8} "
        f"{'p99 R/S':>8}  {'>=2x req/s':>10} {'lower p99':>9}"
    )
    lines = [head, "-" * len(head)]
    for workload in args.workloads:
        for clients, rit in [(c, r) for c in args.clients for r in mine_all]:
            mine = _group(runs, rit, workload, clients)
            for other in others:
                theirs = _group(runs, other, workload, clients)
                if not mine or not theirs:
                    continue

                def ratio(
                    get: Callable[[Run], float], mine: list[Run] = mine, theirs: list[Run] = theirs
                ) -> float:
                    a = _median([get(r) for r in mine])
                    b = _median([get(r) for r in theirs])
                    return a / b if b else math.nan

                rps, p99 = ratio(lambda r: r.rps), ratio(lambda r: r.p99)
                label = f"{rit.name} / {other.name}"
                lines.append(
                    f"{workload:<8} {clients:>3} {label:<30} {_f(rps, 2):>9} "
                    f"{_f(ratio(lambda r: r.p50), 2):>8} {_f(p99, 2):>8}  "
                    f"{('yes' if rps >= 2 else 'no'):>10} {('yes' if p99 < 1 else 'no'):>9}"
                )
    return lines


LEGEND = [
    "req/s, p50, p99: median over the rounds (min-max beside). err: wrk's non-2xx answers and",
    "socket errors, summed over the rounds. R/S: Ritornello's median over Restate's (req/s: above",
    "1 is Ritornello faster; p50/p99: below 1 is Ritornello faster).",
    "cores (medians, of the machine's 2, over the measured window): srv = the server's process",
    "tree (Ritornello: serve and its writer process; Restate: restate-server), ep = the endpoint",
    "(hypercorn + restate-sdk), each followed by thr = its busiest thread (Ritornello's and the",
    "endpoint's: their event loop; a Python process gets about one core, so a thread near 1.00 is",
    "that process's ceiling), wrk, oth = every other process on the machine, all = the whole",
    "machine's busy time. ms/inv: CPU milliseconds per invocation of the server's tree and of the",
    "endpoint (less moved by other processes than req/s: what each side costs, not how fast).",
]


def bottlenecks(runs: list[Run], targets: list[Target], args: argparse.Namespace) -> list[str]:
    """A note per stack, workload and client count on where the time went."""
    notes = []
    for workload in args.workloads:
        for clients in args.clients:
            for target in targets:
                group = _group(runs, target, workload, clients)
                if not group:
                    continue
                c = {k: _median([r.cores.get(k, math.nan) for r in group]) for k in group[0].cores}
                said = []
                ep, srv = c["endpoint_thread"], c["server_thread"]
                if ep >= 0.85:
                    said.append(f"endpoint's busiest thread {ep:.2f} core (saturated)")
                if srv >= 0.85:
                    said.append(f"server's busiest thread {srv:.2f} core (saturated)")
                if c["busy"] >= 1.85:
                    said.append(f"machine {c['busy']:.2f} of 2 cores busy")
                if c["others"] >= 0.25:
                    who = sorted({t.split("[")[0] for r in group for t in r.others_top})
                    said.append(
                        f"other processes took {c['others']:.2f} core (disturbed; "
                        f"{', '.join(who) or 'short-lived ones'})"
                    )
                notes.append(
                    f"  {workload} c{clients} {target.name}: "
                    + ("; ".join(said) or "no saturation")
                )
    return notes


# --- inside: the run ---------------------------------------------------------------------------


def versions(restate_bin: Path) -> list[str]:
    def dist(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "?"

    server = subprocess.run([str(restate_bin), "--version"], capture_output=True, text=True)
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
    git = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--", "src"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return [
        f"  restate-server {server.stdout.strip() or server.stderr.strip()} ({restate_bin})",
        f"  ritornello {dist('ritornello')} at {git}"
        + (" (src/ with uncommitted changes)" if dirty else ""),
        f"  restate-sdk {dist('restate-sdk')}, hypercorn {dist('hypercorn')}, h2 {dist('h2')}, "
        f"uvicorn {dist('uvicorn')}, uvloop {dist('uvloop')}; Python {platform.python_version()}",
        f"  {(wrk.stdout or wrk.stderr).splitlines()[0] if (wrk.stdout or wrk.stderr) else 'wrk'}",
    ]


def targets_of(args: argparse.Namespace) -> list[Target]:
    targets = [Target("ritornello", t) for t in args.ritornello]
    targets += [Target("restate", t) for t in args.transports]
    return targets


def estimate_s(args: argparse.Namespace, targets: list[Target]) -> float:
    per_measure = float(args.warmup) + float(args.seconds) + 1
    start = {"ritornello": 4.0, "restate": 9.0}
    per_round = sum(
        start[t.server] + len(args.workloads) * (len(args.clients) * per_measure + 0.5)
        for t in targets
    )
    return float(per_round * args.runs)


def tables(runs: list[Run], args: argparse.Namespace) -> list[str]:
    targets = targets_of(args)
    return [
        *main_table(runs, targets, args),
        "",
        *ratio_table(runs, targets, args),
        "",
        *LEGEND,
        "",
        "where the time went (medians):",
        *bottlenecks(runs, targets, args),
    ]


def render(path: Path, args: argparse.Namespace) -> int:
    """The tables again from a run's rows.json (``--render``)."""
    runs = [Run(**row) for row in json.loads(path.read_text())]
    args.workloads = [w for w in args.workloads if any(r.workload == w for r in runs)]
    args.clients = sorted({r.clients for r in runs})
    args.transports = [t for t in TRANSPORTS if any(r.transport == t for r in runs)]
    args.ritornello = [
        t for t in TRANSPORTS if any(r.transport == t and r.server == "ritornello" for r in runs)
    ]
    print(
        "\n".join([f"from {path} ({max(r.round for r in runs)} round(s))", "", *tables(runs, args)])
    )
    return 0


def inside(args: argparse.Namespace) -> int:
    interfaces = loopback_only()
    if interfaces != ["lo"]:
        sys.exit(
            f"refusing to start Restate: this namespace has interfaces {interfaces}, not lo only"
        )
    out: Path = args.results or ROOT / "benchmarks" / "results" / (
        time.strftime("%Y%m%d-%H%M%S") + "-restate"
    )
    out.mkdir(parents=True, exist_ok=True)
    targets = targets_of(args)
    header = [
        f"Ritornello vs Restate, {time.strftime('%Y-%m-%d %H:%M:%S')}: {args.runs} round(s), "
        f"wrk {args.seconds:g} s after {args.warmup:g} s warm-up, clients "
        f"{','.join(map(str, args.clients))}, stacks in ABBA order; loopback-only namespace "
        f"{args.netns!r} (interfaces: {', '.join(interfaces)}); {os.cpu_count()} cores",
        *versions(args.restate_bin),
    ]
    print("\n".join(header), file=sys.stderr)
    print(f"about {estimate_s(args, targets) / 60:.1f} min", file=sys.stderr)
    runs: list[Run] = []
    modes: dict[str, str] = {}
    notes: list[str] = []
    for round_no in range(1, args.runs + 1):
        order = targets if round_no % 2 else list(reversed(targets))
        for target in order:
            logs = out / f"round{round_no}" / target.name.replace(" ", "-")
            print(f"round {round_no}/{args.runs}: {target.name}", file=sys.stderr)
            try:
                with stack(target, args.restate_bin, logs) as st:
                    modes[target.name] = protocol_mode(st)
                    (logs / "registered.json").write_text(json.dumps(st.registered, indent=1))
                    for workload in args.workloads:
                        check_sample(st, workload)
                        for clients in args.clients:
                            run = measure(st, workload, clients, args, round_no, logs)
                            runs.append(run)
                            print(
                                f"  {workload} c{clients}: {run.rps:,.0f} req/s, p50 "
                                f"{run.p50:.1f} ms, p99 {run.p99:.1f} ms, errors {run.errors}, "
                                f"cores srv {run.cores['server']:.2f} ep "
                                f"{run.cores['endpoint']:.2f} (thread "
                                f"{run.cores['endpoint_thread']:.2f}) wrk {run.cores['wrk']:.2f} "
                                f"others {run.cores['others']:.2f} "
                                f"{' '.join(run.others_top)}",
                                file=sys.stderr,
                            )
            except (
                RuntimeError,
                TimeoutError,
                OSError,
                ValueError,
                subprocess.SubprocessError,
            ) as exc:
                text = str(exc).strip()
                notes.append(f"round {round_no}, {target.name}: FAILED: {text[-1500:]}")
                print(f"  FAILED: {text[-3000:]}", file=sys.stderr)
    modes_line = "; ".join(f"{name}: {mode}" for name, mode in sorted(modes.items()))
    lines = [*header, f"  protocol as registered: {modes_line}", "", *tables(runs, args), *notes]
    text = "\n".join(lines)
    print(text)
    (out / "table.txt").write_text(text + "\n")
    (out / "rows.json").write_text(json.dumps([asdict(r) for r in runs], indent=1) + "\n")
    print(f"\nraw output: {out}", file=sys.stderr)
    return 1 if notes else 0


# --- main --------------------------------------------------------------------------------------


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--seconds", type=float, default=15, help="seconds per measured wrk run (15)")
    p.add_argument("--warmup", type=float, default=3, help="seconds of warm-up per workload (3)")
    p.add_argument("--runs", type=int, default=3, help="rounds; medians are printed (3)")
    p.add_argument("--clients", type=_ints, default=[64], help="wrk connections, e.g. 1,64 (64)")
    p.add_argument("--workloads", default="greet,ten", help="greet,ten (both)")
    p.add_argument(
        "--transports", default="h1,h2c", help="Restate's transports to the endpoint (h1,h2c)"
    )
    p.add_argument(
        "--ritornello", default="h1,h2c", help="Ritornello's transports to the endpoint (h1,h2c)"
    )
    p.add_argument("--netns", default="rbench", help="the network namespace to make (rbench)")
    p.add_argument(
        "--restate-dir",
        type=Path,
        default=Path("/tmp/restate-server"),
        help="npm prefix holding restate-server (/tmp/restate-server)",
    )
    p.add_argument("--restate-version", default="~1.7", help="npm version range (~1.7)")
    p.add_argument("--no-install", action="store_true", help="never run npm install")
    p.add_argument("--results", type=Path, help="where raw output goes")
    p.add_argument("--render", type=Path, help="only print the tables of a run's rows.json")
    p.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--restate-bin", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.workloads = args.workloads.split(",")
    bad = [w for w in args.workloads if w not in WORKLOADS]
    if bad:
        p.error(f"unknown workload(s) {bad} (known: {', '.join(WORKLOADS)})")
    args.transports = args.transports.split(",") if args.transports else []
    args.ritornello = args.ritornello.split(",") if args.ritornello else []
    if any(t not in TRANSPORTS for t in args.transports + args.ritornello):
        p.error(f"--transports, --ritornello: {', '.join(TRANSPORTS)}")
    return args


def _interrupt(signum: int, frame: FrameType | None) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)  # one interruption: let the clean-up finish
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.render:
        return render(args.render, args)
    if not args.inside:
        return outside(args, argv)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    try:
        return inside(args)
    except KeyboardInterrupt:
        print("\ninterrupted: processes stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
