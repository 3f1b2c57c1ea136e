"""``HarnessEndpoint``: what the harness's engine invokes as ``inproc://harness``.

It stands between the engine and the user's ``Endpoint`` (in process, the same bytes as over
HTTP) and adds two things a test needs, nothing else:

* crash plans (``_crash``): an answer is cut where a plan says, so the next attempt replays;
* the promise handler of every workflow (``_promises``).

Every other request and answer passes through unchanged. A plan is given to one invocation
before its first attempt (``plan``), or armed for the next new invocation of a handler
(``arm``: a callee a handler is about to create); a new invocation is one not invoked before.
"""

from __future__ import annotations

from ritornello.protocol import DiscoveryResponse, InvokeRequest, InvokeResponse, ProtocolError
from ritornello.sdk import Endpoint

from ._crash import Crash, CrashPlan
from ._promises import PROMISE_HANDLER, promise_answer, with_promise_handler


class HarnessEndpoint:
    """The in-process target the engine invokes (``discover``, ``invoke``: bytes)."""

    def __init__(self, endpoint: Endpoint) -> None:
        self._inner = endpoint.inprocess()
        self._workflows = {s.name for s in endpoint.discovery().services if s.kind == "workflow"}
        #: invocation id -> its crash plan
        self.plans: dict[str, CrashPlan] = {}
        #: (service, handler) -> plans for the next new invocations of it, in order
        self.armed: dict[tuple[str, str], list[CrashPlan]] = {}
        #: the crashes that happened, in order
        self.crashes: list[Crash] = []
        #: invocation ids that have been invoked at least once
        self.seen: set[str] = set()

    def plan(self, invocation_id: str, plan: CrashPlan) -> None:
        """Crash ``invocation_id`` as ``plan`` says."""
        self.plans[invocation_id] = plan

    def arm(self, service: str, handler: str, plan: CrashPlan) -> None:
        """Crash the next new invocation of ``service/handler`` as ``plan`` says."""
        self.armed.setdefault((service, handler), []).append(plan)

    async def discover(self) -> bytes:
        answer = DiscoveryResponse.decode(await self._inner.discover())
        return with_promise_handler(answer).encode()

    async def invoke(self, body: bytes) -> bytes:
        try:
            request = InvokeRequest.decode(body)
        except ProtocolError:
            return await self._inner.invoke(body)  # the endpoint answers it as it would
        new = request.id not in self.seen
        self.seen.add(request.id)
        if request.handler == PROMISE_HANDLER and request.service in self._workflows:
            return promise_answer(request).encode()
        plan = self.plans.get(request.id)
        waiting = self.armed.get((request.service, request.handler))
        if plan is None and waiting and new:
            plan = self.plans[request.id] = waiting.pop(0)
        raw = await self._inner.invoke(body)
        if plan is None or plan.fired is not None:
            return raw
        try:
            answer = InvokeResponse.decode(raw)
        except ProtocolError:
            return raw
        cut = plan.cut(request, answer)
        if cut is None:
            return raw
        assert plan.fired is not None
        self.crashes.append(plan.fired)
        return cut.encode()
