"""The orchestrator: ingress, engine (invocation state machine, key queues, timers, retries,
outbox), invokers and deployments."""

from ritornello.orchestrator._apply import DEFAULT_RETRY
from ritornello.orchestrator._clock import Clock, ManualClock, SystemClock
from ritornello.orchestrator._config import DEFAULT_STORE, ConfigError, Settings, load_settings
from ritornello.orchestrator._engine import Engine, EngineError
from ritornello.orchestrator._ingress import IngressApp, asgi_lifespan, parse_delay
from ritornello.orchestrator._schedules import ScheduleError, Scheduler
from ritornello.orchestrator.invokers import (
    FakeInvoker,
    HttpInvoker,
    InProcessInvoker,
    Invoker,
    InvokerError,
)

__all__ = [
    "DEFAULT_RETRY",
    "DEFAULT_STORE",
    "Clock",
    "ConfigError",
    "Engine",
    "EngineError",
    "FakeInvoker",
    "HttpInvoker",
    "InProcessInvoker",
    "IngressApp",
    "Invoker",
    "InvokerError",
    "ManualClock",
    "ScheduleError",
    "Scheduler",
    "Settings",
    "SystemClock",
    "asgi_lifespan",
    "load_settings",
    "parse_delay",
]
