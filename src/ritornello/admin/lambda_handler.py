"""The admin API on AWS Lambda: the same FastAPI app as ``ritornello serve``'s port 9070,
through Mangum (Function URL, API Gateway and ALB events), over the store named by
``RITORNELLO_STORE`` — the DynamoDB table the orchestrators share.

Invariants:

* It leads no partition (``Engine(lead=False)``): it never drives an invocation. What it
  changes — cancel, kill, pause, resume — is committed with an inbox message to the
  invocation's partition, whose leader (an orchestrator) acts on it; what it reads comes from
  the store, strongly consistent where the store offers it.
* The store is opened and the engine started on the first request, on one event loop kept for
  the life of the execution environment (Mangum runs each request on the thread's current
  loop; this module makes that loop its own). Nothing runs between requests: Lambda freezes
  the process, and the engine has no partition work to do anyway.
* Registering a deployment runs discovery from here, so the function's role needs
  ``lambda:InvokeFunction`` on the handler functions (template.yaml grants it), and HTTP
  deployments are held to ``RITORNELLO_DEPLOYMENT_HOSTS_ALLOW`` / ``_DENY`` as on a server.
* Logging: with Powertools importable (AWS's Powertools layer, template.yaml's
  ``PowertoolsLayerArn``), its ``Logger(service="ritornello")`` takes every ``ritornello.*``
  record (the admin API's, the engine's, the store's): one JSON object a line on stdout, level
  ``POWERTOOLS_LOG_LEVEL`` (else ``RITORNELLO_LOG_LEVEL``, else INFO), with the request's
  ``function_request_id`` and ``cold_start``. Without it, records go to the runtime's logging
  (Lambda's JSON log format in template.yaml).
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from mangum import Mangum

from ritornello.admin._app import create_app
from ritornello.orchestrator import Engine
from ritornello.orchestrator.invokers import DEFAULT_DENY, HostPolicy
from ritornello.store import Store, open_store
from ritornello.store.retrying import RetryingStore

log = logging.getLogger("ritornello.admin.lambda")
#: The name Powertools' logger takes (and so the logger it configures): every ``ritornello.*``
#: record reaches it by propagation.
POWERTOOLS_SERVICE = "ritornello"


def _powertools_logger() -> Any:
    """Powertools' ``Logger`` over ``ritornello``, or None when Powertools is not installed."""
    try:
        from aws_lambda_powertools import Logger
    except ImportError:
        return None
    level = os.environ.get("POWERTOOLS_LOG_LEVEL") or os.environ.get("RITORNELLO_LOG_LEVEL")
    return Logger(service=POWERTOOLS_SERVICE, level=level or "INFO")


_POWERTOOLS = _powertools_logger()
_COLD = [True]  # the first request of this execution environment

_LOOP = asyncio.new_event_loop()
# Current before Mangum() is built: its constructor asks for the current loop, and without one
# the policy makes a loop (on 3.12, with a DeprecationWarning) that the first request's
# set_event_loop below would drop unclosed.
asyncio.set_event_loop(_LOOP)


class _LazyAdmin:
    """An ASGI app that opens the store and starts the engine on its first request."""

    def __init__(self) -> None:
        self.store: Store | None = None
        self.engine: Engine | None = None
        self.app: Any = None
        self._lock = asyncio.Lock()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self.app is None:
            async with self._lock:
                if self.app is None:
                    await self._start()
        await self.app(scope, receive, send)

    async def _start(self) -> None:
        url = os.environ.get("RITORNELLO_STORE")
        if not url:
            raise RuntimeError("RITORNELLO_STORE is not set (dynamodb://TABLE?region=...)")
        store: Store = open_store(url)
        if url.startswith("dynamodb:"):
            store = RetryingStore(
                store, budget_s=float(os.environ.get("RITORNELLO_STORE_RETRY_BUDGET_S", "10"))
            )
        await store.open()
        hosts = HostPolicy(
            os.environ.get("RITORNELLO_DEPLOYMENT_HOSTS_ALLOW", ""),
            os.environ.get("RITORNELLO_DEPLOYMENT_HOSTS_DENY", DEFAULT_DENY),
        )
        engine = Engine(store, lead=False, node="admin-lambda", deployment_hosts=hosts)
        await engine.start()
        self.store, self.engine = store, engine
        # the same bearer token as the orchestrator's admin port (docs/auth.md); behind an
        # AWS_IAM Function URL, IAM is the gate and Authorization carries SigV4: leave it unset
        self.app = create_app(engine, admin_token=os.environ.get("RITORNELLO_ADMIN_TOKEN", ""))
        log.info("admin API ready over %s", url.partition("?")[0])

    async def close(self) -> None:
        """Stop the engine and close the store (tests; Lambda just freezes the process)."""
        if self.engine is not None:
            await self.engine.stop()
        if self.store is not None:
            await self.store.close()
        self.app = self.engine = self.store = None


admin = _LazyAdmin()
_mangum = Mangum(admin, lifespan="off")


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The Lambda entry point (template.yaml: ``ritornello.admin.lambda_handler.handler``)."""
    asyncio.set_event_loop(_LOOP)  # Mangum runs the request on the current loop: ours
    if _POWERTOOLS is not None:
        request_id = getattr(context, "aws_request_id", None)
        _POWERTOOLS.append_keys(function_request_id=request_id, cold_start=_COLD[0])
        _COLD[0] = False
    return _mangum(event, context)
