"""The orchestrator: the invocation state machine (``core``), the runtime that performs it
(``runtime``), the ingress, invokers and wire protocols, cron schedules, and the checker.

Rooms (each a subpackage with one job): ``core`` (no I/O), ``runtime`` (the async shell),
``ingress`` (HTTP in), ``invokers`` (transports out), ``protocols`` (wire formats),
``schedules`` (cron), ``check`` (the invariant checker). ``errors`` draws the error tree.
"""

from ritornello.orchestrator._clock import Clock, ManualClock, SystemClock
from ritornello.orchestrator._config import DEFAULT_STORE, ConfigError, Settings, load_settings
from ritornello.orchestrator._json import MAX_JSON_DEPTH, JsonInputError, json_input, json_input_of
from ritornello.orchestrator._keys import key_problem
from ritornello.orchestrator._limit_spec import LimitError, LimitSpec, check_name, parse_limit
from ritornello.orchestrator._tracing import Tracing, tracing_from_env
from ritornello.orchestrator.core import DEFAULT_RETRY
from ritornello.orchestrator.errors import (
    EndpointError,
    InvalidRequestError,
    NotFoundError,
    NotLeaderError,
    OrchestratorError,
    StateConflictError,
    TryAgainError,
)
from ritornello.orchestrator.ingress import (
    HeaderLimits,
    IngressApp,
    TracedIngress,
    asgi_lifespan,
    http_status,
    parse_delay,
)
from ritornello.orchestrator.invokers import (
    FakeInvoker,
    HttpInvoker,
    InProcessInvoker,
    Invoker,
    InvokerError,
)
from ritornello.orchestrator.runtime import Engine
from ritornello.orchestrator.schedules import Scheduler

__all__ = [
    "DEFAULT_RETRY",
    "DEFAULT_STORE",
    "MAX_JSON_DEPTH",
    "Clock",
    "ConfigError",
    "EndpointError",
    "Engine",
    "FakeInvoker",
    "HeaderLimits",
    "HttpInvoker",
    "InProcessInvoker",
    "IngressApp",
    "InvalidRequestError",
    "Invoker",
    "InvokerError",
    "JsonInputError",
    "LimitError",
    "LimitSpec",
    "ManualClock",
    "NotFoundError",
    "NotLeaderError",
    "OrchestratorError",
    "Scheduler",
    "Settings",
    "StateConflictError",
    "SystemClock",
    "TracedIngress",
    "Tracing",
    "TryAgainError",
    "asgi_lifespan",
    "check_name",
    "http_status",
    "json_input",
    "json_input_of",
    "key_problem",
    "load_settings",
    "parse_delay",
    "parse_limit",
    "tracing_from_env",
]
