"""Our own helper processes: ``python -m MODULE FD``, talking over a socket pair.

One place for how such a child is started (this interpreter, our package first on its
``PYTHONPATH``, its end of the socket pair as file descriptor ``FD``, nothing else inherited)
and for starting one *early*: ``ritornello serve`` calls ``prestart`` for the SQLite writer
process (``store/_sqlite_process.py``) before it imports the orchestrator, so the child's own
start-up (an interpreter and the store's modules, about 0.1 s) runs on the other core while
this process imports, and ``SqliteStore.open`` then ``take``s it instead of waiting for a new
one. A prestarted child nobody takes sees EOF when this process exits (or its socket is
closed) and exits too.

Imports only the standard library: it runs before anything else is loaded.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

#: the directory holding the ritornello package, put first on the child's PYTHONPATH
PACKAGE_DIR = str(Path(__file__).resolve().parent.parent)

Child = tuple["subprocess.Popen[bytes]", socket.socket]
_prestarted: dict[str, Child] = {}


def spawn(module: str) -> Child:
    """Start ``python -m module FD``; return the process and our end of the socket pair."""
    ours, theirs = socket.socketpair()
    try:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (PACKAGE_DIR, env.get("PYTHONPATH"))))
        process = subprocess.Popen(
            [sys.executable, "-m", module, str(theirs.fileno())],
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
            env=env,
        )
    except BaseException:
        ours.close()
        raise
    finally:
        theirs.close()
    return process, ours


def prestart(module: str) -> None:
    """Start a ``module`` child now, for the next ``take(module)``; best effort (a child that
    cannot be started here is started, or fails, where it is needed)."""
    if module not in _prestarted:
        try:
            _prestarted[module] = spawn(module)
        except OSError:
            pass


def take(module: str) -> Child | None:
    """The ``module`` child ``prestart`` started, if it is still running; None otherwise."""
    child = _prestarted.pop(module, None)
    if child is not None and child[0].poll() is not None:
        child[1].close()
        return None
    return child


def discard(module: str) -> None:
    """End a prestarted ``module`` child nothing will take (it holds nothing yet: killing it
    is immediate, where waiting for it to see EOF could take its whole start-up)."""
    child = _prestarted.pop(module, None)
    if child is not None:
        child[1].close()
        child[0].kill()
        child[0].wait()
