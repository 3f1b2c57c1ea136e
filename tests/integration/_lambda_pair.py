"""What the tests of a function behind ``ritornello lambda-emulator``, invoked by ``ritornello
serve`` (real processes on loopback), share: the orchestrator restarted in place, the function's
ledger of step runs, an invocation's journal, boto3's Lambda client on an ingress, and a file the
function writes."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

from tests.procs import Orchestrator, aws_client, http


def restarted(old: Orchestrator) -> Orchestrator:
    """A new orchestrator process in place of ``old`` (killed or stopped), started: the same
    store, environment, log and ports, so a function pointed at its ingress reaches it again."""
    new = Orchestrator(old.log.parent, old.store, **old.env)
    for flag, port in (("--ingress-port", old.ingress_port), ("--admin-port", old.admin_port)):
        new.args[new.args.index(flag) + 1] = str(port)
    new.ingress_port, new.admin_port = old.ingress_port, old.admin_port
    return new.start()


def ledger_counts(ledger: Path, inv_id: str) -> Counter[str]:
    """How often each step of invocation ``inv_id`` ran: the function appends a line
    ``<invocation> <step>`` to ``ledger`` each time it runs a step."""
    lines = ledger.read_text().splitlines() if ledger.exists() else []
    return Counter(line.split()[1] for line in lines if line.startswith(inv_id))


def journal_of(admin: str, inv_id: str) -> list[dict[str, Any]]:
    """The journal of invocation ``inv_id``, as the admin API at ``admin`` shows it."""
    status, detail, _ = http("GET", f"{admin}/invocations/{inv_id}")
    assert status == 200, detail
    return list(detail["journal"])


def lambda_client(ingress: str, attempts: int | None = None) -> Any:
    """boto3's Lambda client pointed at an orchestrator's ``ingress`` (the durable-execution
    API); botocore's default retries, or ``attempts`` in its standard mode."""
    from botocore.config import Config

    retries = {"max_attempts": attempts, "mode": "standard"}
    config = None if attempts is None else Config(retries=retries)
    return aws_client("lambda", ingress, config=config)


def wait_for(path: Path, timeout: float = 20) -> str:
    """What the function wrote to ``path`` (a callback's id), once it has written it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text():
            return path.read_text()
        time.sleep(0.05)
    raise TimeoutError(f"nothing in {path}")
