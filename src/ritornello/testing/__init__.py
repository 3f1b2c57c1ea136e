"""``ritornello.testing``: the harness for your own tests (docs/testing.md).

* ``Harness``: your services on the real engine, in process, with no server and a fake clock:
  call and send, advance time, complete awakeables and promises, read state and journals,
  crash an attempt at any journal position, check that a journal replays.
* ``replay``: run your current code against an invocation's journal exported from a real
  orchestrator (``ritornello invocations export ID -o FILE``) and report the first
  divergence, without an orchestrator and without running any step.

It imports the orchestrator and the store (to run the engine) and the SDK; the SDK never
imports it, so a handler Lambda does not ship it.
"""

from ritornello.testing._crash import Crash
from ritornello.testing._harness import Harness
from ritornello.testing._history import History
from ritornello.testing._replay import replay, replay_async
from ritornello.testing._report import Divergence, ReplayReport
from ritornello.testing._status import InvocationStatus
from ritornello.testing.errors import HarnessError, NotFinished, ReplayDivergenceError

__all__ = [
    "Crash",
    "Divergence",
    "Harness",
    "HarnessError",
    "History",
    "InvocationStatus",
    "NotFinished",
    "ReplayDivergenceError",
    "ReplayReport",
    "replay",
    "replay_async",
]
