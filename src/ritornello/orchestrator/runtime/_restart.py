"""Restart-as-new and its dry run (admin API ``PATCH /invocations/{id}/restart-as-new``).

Restart: read the finished invocation and its journal, have the core build the new
invocation's unit (``RestartAsNew``: the kept prefix, checked; the chosen deployment), commit
it. The original is finished, so nothing changes it meanwhile: no halt, no version to retry on.
The new id is random (a repeated request makes another invocation, as on Restate).

Dry run: the same checks, then one replay-only request (docs/protocol.md) to the chosen
deployment with the kept prefix and the object's current state: the endpoint replays it and
answers at the first action past it, running nothing new; nothing is written. Only an endpoint
whose discovery says ``replay_only`` (this SDK's) can be asked; any other is refused (400).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ritornello.protocol import new_id
from ritornello.store import FencedError, InvocationRecord, Store, with_changes

from ..core import (
    Core,
    Decision,
    Event,
    Invocation,
    RestartAsNew,
    chosen_deployment,
    kept_prefix,
    restartable,
)
from ..errors import EndpointError, InvalidRequestError, TryAgainError
from ..invokers import InvokerError
from ..protocols import decode_answer, encode_request
from ._committer import Committer
from ._deployments import Deployments
from ._leadership import Leadership

log = logging.getLogger("ritornello.engine")


@dataclass(frozen=True, slots=True)
class DryRun:
    """What a dry run found: ``matches`` (the kept prefix replayed as journaled), how many
    entries it ``kept`` and how many the handler ``replayed`` (the input included), or the
    first ``mismatch`` (``index``, ``journal_has``, ``handler_did``, ``message``) or another
    failure's ``message``."""

    deployment_id: str
    kept: int
    matches: bool
    replayed: int | None = None
    mismatch: dict[str, Any] | None = None
    message: str = ""


class Restarts:
    """Restart-as-new for an operator."""

    def __init__(
        self,
        core: Core,
        store: Store,
        committer: Committer,
        leadership: Leadership,
        deployments: Deployments,
        *,
        apply: Callable[[Event], Decision],
        timeout_s: float,
    ) -> None:
        self.core = core
        self.store = store
        self.committer = committer
        self.leadership = leadership
        self.deployments = deployments
        self._apply = apply
        self.timeout_s = timeout_s

    async def restart(
        self, invocation_id: str, from_index: int, deployment: str
    ) -> InvocationRecord:
        """The new invocation (created and committed) restarting ``invocation_id``."""
        rec = await self.store.get_invocation(invocation_id)
        entries, completions = await self.store.get_journal(invocation_id) if rec else ([], [])
        fresh = new_id()
        for _ in range(3):
            partition = self.core.partition_of(rec.service, rec.key, fresh) if rec else 0
            event: Event = RestartAsNew(
                invocation_id,
                rec,
                entries,
                completions,
                from_index,
                deployment,
                fresh,
                self.leadership.leads(partition),
            )
            decision: Decision = self._apply(event)
            try:
                decision = await self.committer.commit_decision(decision)
            except FencedError:
                continue  # the partition moved meanwhile: hand it to its new leader
            assert decision.record is not None
            log.info("restart %s as %s (from %d)", invocation_id, fresh, from_index)
            return decision.record
        raise TryAgainError("partition leadership keeps changing; try again")

    async def dry_run(self, invocation_id: str, from_index: int, deployment: str) -> DryRun:
        """Replay the prefix a restart would keep against ``deployment``'s code."""
        rec = restartable(await self.store.get_invocation(invocation_id), invocation_id)
        registry = self.core.registry
        chosen = chosen_deployment(registry, rec, deployment)
        entries, completions = await self.store.get_journal(invocation_id)
        kept, done = kept_prefix(entries, completions, from_index)
        wire = registry.wire(chosen)
        if wire != "ritornello" or not registry.replays(chosen):
            why = f"it speaks {wire}" if wire != "ritornello" else "its SDK has no replay-only"
            raise InvalidRequestError(
                f"deployment {chosen} cannot replay without running ({why}): dry runs need a "
                "Ritornello SDK deployment"
            )
        found = self.deployments.endpoint(chosen)
        if found is None:
            raise TryAgainError(f"deployment {chosen} is not reachable from this process")
        _, invoker = found
        inv = Invocation.from_journal(
            with_changes(rec, deployment_id=chosen, attempt=1), kept, done
        )
        if rec.key is not None:
            rows = await self.store.get_state(rec.service, rec.key)
            inv.state = {n: v for n, v in rows.items() if not n.startswith("\x00")}
        try:
            async with asyncio.timeout(self.timeout_s):
                raw = await invoker.invoke(
                    rec.service, rec.handler, encode_request(inv, replay_only=True)
                )
        except TimeoutError:
            raise EndpointError(
                f"deployment {chosen} did not answer the dry run within {self.timeout_s:g} s"
            ) from None
        except InvokerError as exc:
            raise EndpointError(f"deployment {chosen}: {exc}") from None
        answer = decode_answer(raw)
        if isinstance(answer, str):
            raise EndpointError(f"deployment {chosen}: {answer}")
        if answer.status == "replayed":
            return DryRun(
                chosen,
                len(kept),
                True,
                replayed=answer.replayed,
                message=f"replayed {answer.replayed} entries, matches",
            )
        error = answer.error or {}
        if error.get("kind") == "journal_mismatch":
            mismatch: dict[str, Any] = {"message": error.get("message", "")}
            for name in ("journal_has", "handler_did"):
                if name in error:
                    mismatch[name] = error[name]
            if str(error.get("index", "")).isdigit():
                mismatch["index"] = int(error["index"])
            return DryRun(chosen, len(kept), False, mismatch=mismatch, message=mismatch["message"])
        if answer.status == "error":
            message = f"the replay failed: {error.get('message', '')}"
        else:  # it waited on an entry with no result: kept_prefix refuses such a prefix
            message = f"the replay ended {answer.status} instead of reaching the prefix's end"
        return DryRun(chosen, len(kept), False, message=message)
