"""A tiny orchestrator for tests: keeps journals and state, fills completions, re-invokes.

It plays the orchestrator's part of docs/protocol.md and nothing more: no store, no timers (a
sleep completes as soon as the handler suspends on it), calls run the callee to completion
through the same endpoint.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ritornello import InProcessEndpoint
from ritornello.protocol import Completion, Entry, InvokeRequest, InvokeResponse


@dataclass
class Finished:
    """An invocation the driver ran to the end."""

    output: Entry
    journal: list[Entry]
    statuses: list[str]
    #: the new run entries (not ctx.time) of each answer, in order
    runs_per_answer: list[int] = field(default_factory=list)


@dataclass
class Driver:
    endpoint: InProcessEndpoint
    states: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    sent: list[Entry] = field(default_factory=list)
    rounds: int = 0

    async def run(
        self,
        target: str,
        value: Any,
        *,
        key: str | None = None,
        invocation_id: str = "inv_driver00000000000000000000",
    ) -> Finished:
        service, handler = target.split("/")
        journal: list[Entry] = [{"kind": "input", "value": value}]
        completions: dict[int, Completion] = {}
        statuses: list[str] = []
        runs_per_answer: list[int] = []
        state = self.states.setdefault((service, key), {}) if key is not None else None
        for _ in range(500):
            self.rounds += 1
            request = InvokeRequest(
                id=invocation_id,
                service=service,
                handler=handler,
                key=key,
                attempt=1,
                journal=list(journal),
                completions=list(completions.values()),
                state=dict(state) if state is not None else None,
            )
            response = InvokeResponse.decode(await self.endpoint.invoke(request.encode()))
            statuses.append(response.status)
            runs_per_answer.append(
                sum(e["kind"] == "run" and e["name"] != "ctx.time" for e in response.entries)
            )
            assert response.status != "error", response.error
            for entry in response.entries:
                self._apply(entry, state)
                journal.append(entry)
            if response.status == "done":
                return Finished(journal[-1], journal, statuses, runs_per_answer)
            for index in response.waiting:
                completions[index] = await self._complete(index, journal[index])
        raise AssertionError(f"{target} did not finish in 500 rounds")

    def _apply(self, entry: Entry, state: dict[str, Any] | None) -> None:
        kind = entry["kind"]
        if kind == "send":
            self.sent.append(entry)
        if state is None:
            return
        if kind == "set":
            state[entry["name"]] = entry["value"]
        elif kind == "clear":
            state.pop(entry["name"], None)
        elif kind == "clear_all":
            state.clear()

    async def _complete(self, index: int, entry: Entry) -> Completion:
        if entry["kind"] == "sleep":
            return {"index": index, "value": None}
        assert entry["kind"] == "call", entry
        callee = await self.run(
            entry["name"], entry["input"], key=entry.get("key"), invocation_id=entry["id"]
        )
        if "failure" in callee.output:
            return {"index": index, "failure": callee.output["failure"]}
        return {"index": index, "value": callee.output.get("value")}
