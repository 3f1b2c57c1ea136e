"""What the harness is told to call, and the values that go in and come out.

A target is a decorated handler function (``greet``), ``"Service/handler"``, or, where a whole
service is meant (state), the ``Service``/``VirtualObject``/``Workflow`` itself or its name.
Only the SDK's public surface is read: an endpoint's ``discovery()`` and ``handler(service,
name).fn``, a service's ``name``.

Inputs are JSON values (dataclasses and pydantic models become objects, sets sorted lists) and
pass the same check as an ingress body (``json_input_of``): what the harness submits is what a
client could have sent. Results come back as plain JSON (as over the ingress); a terminal
failure is raised as the SDK's ``TerminalError``.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable
from typing import Any

from ritornello.orchestrator import JsonInputError, json_input_of
from ritornello.sdk import Endpoint, TerminalError

from .errors import HarnessError

#: A handler function, or "Service/handler".
Target = Callable[..., Any] | str


class Targets:
    """The handlers an endpoint serves, found by function or by name."""

    def __init__(self, endpoint: Endpoint) -> None:
        self._by_fn: dict[Any, tuple[str, str]] = {}
        self.kinds: dict[str, str] = {}  # service name -> service | object | workflow
        for service in endpoint.discovery().services:
            self.kinds[service.name] = service.kind
            for handler in service.handlers:
                spec = endpoint.handler(service.name, handler.name)
                if spec is not None:
                    self._by_fn[spec.fn] = (service.name, handler.name)

    def handler(self, target: Target) -> tuple[str, str]:
        """(service, handler) of a handler function or ``"Service/handler"``."""
        if isinstance(target, str):
            service, sep, handler = target.partition("/")
            if not (sep and service and handler) or "/" in handler:
                raise HarnessError(f"target {target!r} is not 'Service/handler'")
            return service, handler
        found = self._by_fn.get(target)
        if found is None:
            name = getattr(target, "__qualname__", repr(target))
            raise HarnessError(f"{name} is not a handler of the services in this harness")
        return found

    def service(self, target: object) -> str:
        """The service name of a service definition, a handler function, or a name."""
        name: object
        if isinstance(target, str):
            name = target.partition("/")[0]
        elif hasattr(target, "handlers"):  # a Service, VirtualObject or Workflow
            name = getattr(target, "name", None)
        elif callable(target):  # a handler
            name = self.handler(target)[0]
        else:
            name = target
        if not isinstance(name, str) or name not in self.kinds:
            raise HarnessError(f"no service {name!r} in this harness")
        return name


def _default(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    pydantic = sys.modules.get("pydantic")
    base = getattr(pydantic, "BaseModel", None) if pydantic is not None else None
    if base is not None and isinstance(obj, base):
        return obj.model_dump(mode="json")
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def json_text(value: Any, what: str = "input") -> str:
    """``value`` as the JSON text the engine stores, checked as an ingress body is."""
    try:
        plain = json.loads(json.dumps(value, default=_default, allow_nan=False))
        return json_input_of(plain, what)
    except (TypeError, ValueError, JsonInputError) as exc:
        raise HarnessError(f"the {what} is not a JSON value: {exc}") from None


def outcome(result: dict[str, Any]) -> Any:
    """The value of a ``{"value"}`` result; a ``{"failure"}`` raises ``TerminalError``."""
    if "failure" in result:
        failure = result["failure"] or {}
        raise TerminalError(str(failure.get("message", "")), int(failure.get("code", 500)))
    return result.get("value")
