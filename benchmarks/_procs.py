"""Processes under test: start them on loopback, measure them from /proc, stop them by PID.

- ``tree_cpu_s(pid)``: utime + stime (seconds) of ``pid`` and all its living descendants, from
  ``/proc/PID/stat`` (a process's line already sums its threads). Take it before and after a
  measured window; the difference is the CPU the tree spent in the window.
- ``peak_rss_mb(pid)`` / ``rss_mb(pid)``: ``VmHWM`` (the high-water mark since the process
  started) / ``VmRSS`` (now) from ``/proc/PID/status``, summed over the tree, in MiB.
- ``machine_busy_s()``: CPU seconds all cores have been busy since boot (``/proc/stat``), so
  that a window's busy time minus our processes' is the CPU everything else on the machine
  took: how disturbed a measurement was on this shared machine.
- ``run_measured(args)``: runs a load generator to completion and returns its output and the
  CPU seconds it used (``wait4`` rusage: exact, even for a process that has exited).

The orchestrator and endpoints are ``tests.procs`` processes (the same ones the integration
tests start); this module adds the ``ritornello dev`` process and the measuring.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.procs import (  # noqa: E402
    Endpoint,
    Orchestrator,
    Proc,
    free_port,
    http,
    wait_port,
)

__all__ = [
    "ROOT",
    "DevServer",
    "Endpoint",
    "Orchestrator",
    "Proc",
    "free_port",
    "http",
    "machine_busy_s",
    "peak_rss_mb",
    "rss_mb",
    "run_measured",
    "tree_cpu_s",
    "wait_port",
]

_TICK = os.sysconf("SC_CLK_TCK")


def _children() -> dict[int, list[int]]:
    """ppid -> pids, for every process visible in /proc."""
    kids: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        kids.setdefault(ppid, []).append(int(name))
    return kids


def tree(pid: int) -> list[int]:
    """``pid`` and its living descendants."""
    kids = _children()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def _cpu_s(pid: int) -> float:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime (fields 14, 15)


def tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) used so far by ``pid`` and its living descendants."""
    return sum(_cpu_s(p) for p in tree(pid))


def machine_busy_s() -> float:
    """CPU seconds all cores have spent busy since boot: ``/proc/stat``'s first line, everything
    but idle and iowait (user, nice, system, irq, softirq, and steal: time the hypervisor gave
    to someone else)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[1:9])
    return (user + nice + system + irq + softirq + steal) / _TICK


def _status_kb(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def peak_rss_mb(pid: int) -> float:
    """VmHWM (peak resident set) of ``pid``'s tree, MiB."""
    return sum(_status_kb(p, "VmHWM") for p in tree(pid)) / 1024.0


def rss_mb(pid: int) -> float:
    """VmRSS (resident set now) of ``pid``'s tree, MiB."""
    return sum(_status_kb(p, "VmRSS") for p in tree(pid)) / 1024.0


def run_measured(args: list[str], timeout: float) -> tuple[str, str, float]:
    """Run ``args`` to completion; (stdout, stderr, CPU seconds of the process from wait4).

    Output goes through temporary files (no pipe to drain while waiting). Raises
    ``subprocess.CalledProcessError`` on a non-zero exit and ``TimeoutError`` past ``timeout``
    (the process is killed first)."""
    import signal
    import tempfile
    import threading

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(args, stdout=out, stderr=err, cwd=ROOT)
        timer = threading.Timer(timeout, lambda: os.kill(proc.pid, signal.SIGKILL))
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:  # Ctrl-C, SIGTERM: no load generator left running behind us
            proc.kill()
            proc.wait()
            raise
        finally:
            timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if proc.returncode == -signal.SIGKILL:
        raise TimeoutError(f"{args[0]} did not finish within {timeout} s")
    if proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, args, stdout, stderr)
    return stdout, stderr, usage.ru_utime + usage.ru_stime


class DevServer(Orchestrator):
    """``ritornello dev APP.py``: orchestrator and the app's endpoint in one process."""

    def __init__(self, tmp: Path, app_path: Path, **env: str) -> None:
        super().__init__(tmp, **env)
        i = self.args.index("serve")
        self.args[i : i + 1] = ["dev", str(app_path)]
        self.log = tmp / "dev.log"
