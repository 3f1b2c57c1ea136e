"""Live runs of AWS durable functions and their checkpoint tokens.

A *run* is one Lambda invocation of an execution: the adapter starts it for an attempt of the
Ritornello invocation, and the function checkpoints through the API while it runs. The
checkpoint token a run is given is a capability: ``inv.attempt.nonce.mac``, where the MAC
(HMAC-SHA256 under a key of this process) binds it to the invocation, the attempt and the run,
and the run must be the invocation's live one here. So:

* a forged or altered token fails its MAC;
* a token of a superseded run (a zombie Lambda still running after its attempt timed out, was
  cancelled, or the invocation suspended and resumed in another run) names a nonce that is no
  longer live: refused, so a zombie cannot write;
* after a restart every token is refused (the key and the live runs are this process's): the
  re-driven attempt starts a new run with a new token.

Timeline (attempt 1 times out while its Lambda keeps running; attempt 2 starts)::

    run A (token a) ──checkpoint(a) ✓── ... timeout: run A closed ── checkpoint(a) ✗ refused
                                                   run B (token b) ──checkpoint(b) ✓──
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

#: What a checkpoint request is answered: (HTTP status, AWS error type or None, body).
Reply = tuple[int, str | None, dict[str, Any]]
#: Completes an awakeable from outside, as the ingress does (a fresh completion: an awakeable
#: already completed raises ``StateConflictError``).
CompleteAwakeable = Callable[[str, str], Awaitable[None]]
#: Reads an invocation's journal from the store: (entries, completions).
ReadJournal = Callable[[str], Awaitable[tuple[list[str], list[str]]]]

INVALID_TOKEN = "Invalid checkpoint token"


@dataclass(eq=False)
class Checkpoint:
    """One checkpoint request waiting for its updates to be committed."""

    updates: list[dict[str, Any]]
    reply: asyncio.Future[Reply]


@dataclass(eq=False)
class Run:
    """One Lambda invocation of an execution, as the API sees it while it runs."""

    invocation_id: str
    attempt: int
    nonce: str
    token: str
    #: checkpoint requests, in arrival order, for the adapter to journal
    inbox: asyncio.Queue[Checkpoint] = field(default_factory=asyncio.Queue)
    #: the execution's operations as last committed (wire form, ms timestamps), by id
    operations: dict[str, dict[str, Any]] = field(default_factory=dict)


class Runs:
    """The live run of each AWS durable invocation this process drives."""

    def __init__(self, key: bytes | None = None, read_journal: ReadJournal | None = None) -> None:
        self._key = key or secrets.token_bytes(32)
        self._live: dict[str, Run] = {}
        #: the registered durable functions: qualified ARN -> service (what a chained invoke
        #: of a FunctionName calls)
        self.functions: dict[str, str] = {}
        #: the store's journal, read where memory may lag it (a heartbeat timer's completion)
        self.read_journal = read_journal
        #: the engine's awakeable completion (set by the engine): how a callback times out
        self.complete_awakeable: CompleteAwakeable | None = None

    def target_of(self, function: str) -> str | None:
        """The handler a chained invoke of ``function`` calls: ``SERVICE/run`` of the
        registered durable function it names (a name, a partial or a full ARN, with or
        without its qualifier; ``$LATEST`` names the version registered last), else
        ``function`` itself when it reads ``Service/handler``."""
        latest = function.endswith(":$LATEST")
        named = function.removesuffix(":$LATEST") if latest else function
        found = [s for arn, s in self.functions.items() if names_function(named, None, arn)]
        if found:
            return f"{found[-1]}/run"
        if function.count("/") == 1 and all(function.split("/")):
            return function
        return None

    def start(self, invocation_id: str, attempt: int) -> Run:
        """A new run of ``invocation_id``: it supersedes the one before (whose token is refused
        from now on)."""
        nonce = secrets.token_hex(8)
        body = f"{invocation_id}.{attempt}.{nonce}"
        run = Run(invocation_id, attempt, nonce, f"{body}.{self._mac(body)}")
        old = self._live.get(invocation_id)
        if old is not None:
            self.end(old)
        self._live[invocation_id] = run
        return run

    def end(self, run: Run) -> None:
        """Retire ``run``: its token is refused, its waiting checkpoints answered so."""
        if self._live.get(run.invocation_id) is run:
            del self._live[run.invocation_id]
        while not run.inbox.empty():
            refuse(run.inbox.get_nowait())

    def live(self, token: Any, invocation_id: str) -> Run | None:
        """The live run ``token`` names, if it is genuine, names ``invocation_id`` and its run
        has not been superseded; else None."""
        if not isinstance(token, str) or token.count(".") < 3:
            return None
        body, _, mac = token.rpartition(".")
        if not hmac.compare_digest(mac, self._mac(body)):
            return None
        inv_id, _, rest = body.partition(".")
        nonce = rest.rpartition(".")[2]
        run = self._live.get(inv_id)
        if inv_id != invocation_id or run is None or run.nonce != nonce:
            return None
        return run

    def _mac(self, body: str) -> str:
        return hmac.new(self._key, body.encode(), hashlib.sha256).hexdigest()[:32]


def refuse(checkpoint: Checkpoint) -> None:
    """Answer a checkpoint of a retired run: its token is no longer valid."""
    if not checkpoint.reply.done():
        checkpoint.reply.set_result(
            (400, "InvalidParameterValueException", {"message": f"{INVALID_TOKEN}: superseded"})
        )


def names_function(function: str, qualifier: str | None, function_arn: str) -> bool:
    """Whether a FunctionName (a name, a partial or a full ARN, perhaps qualified) and a
    Qualifier name the qualified function ``function_arn``."""
    head, _, version = function_arn.rpartition(":")
    name = head.rpartition(":function:")[2]
    given, _, given_version = function.rpartition(":function:")[2].partition(":")
    if function.startswith("arn:") and not function_arn.startswith(function.split(":function:")[0]):
        return False
    wanted = qualifier or given_version or None
    return given == name and (wanted is None or wanted == version)
