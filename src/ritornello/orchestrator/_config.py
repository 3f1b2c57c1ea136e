"""Settings: defaults that need no file, overridden by ``ritornello.toml`` (or ``--config``),
then by ``RITORNELLO_*`` environment variables, then by command-line flags."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ._limit_spec import LimitError, LimitSpec, check_name, parse_limit
from .invokers import DEFAULT_DENY, MAX_ANSWER_BYTES, MAX_DISCOVERY_BYTES, HostPolicy

DEFAULT_STORE = "sqlite:///.ritornello/ritornello.db"
#: Request headers never journaled (the ingress replaces their values with ``[redacted]``).
DEFAULT_REDACT_HEADERS = "authorization,proxy-authorization,cookie,set-cookie,x-api-key"
#: Request header limits of both HTTP ports (431 past them): the names and values of all the
#: headers together, and how many there are (Apache's and hyper's default count).
DEFAULT_MAX_HEADER_BYTES = 64 * 1024
DEFAULT_MAX_HEADERS = 100


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything ``ritornello serve`` can be told."""

    store: str = DEFAULT_STORE
    host: str = "127.0.0.1"
    ingress_port: int = 8080
    admin_port: int = 9070
    #: The URL other orchestrators and Lambda functions reach this process's ingress at
    #: ("" = ``http://{host}:{ingress_port}``, which a wildcard host cannot serve).
    advertise_url: str = ""
    max_body_bytes: int = 10 * 1024 * 1024
    #: A request whose headers' names and values total more (or that has more than
    #: ``max_headers``) gets 431 on either port; so an input entry holds at most this much.
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
    max_headers: int = DEFAULT_MAX_HEADERS
    #: Most bytes an endpoint's answer to an invocation may bring (a streamed attempt: each
    #: line); past it the connection is closed and the attempt fails (docs/orchestrator.md).
    max_answer_bytes: int = MAX_ANSWER_BYTES
    #: Most bytes an endpoint's discovery answer may bring; past it registration fails (502).
    max_discovery_bytes: int = MAX_DISCOVERY_BYTES
    attempt_timeout_s: float = 300.0
    retention_s: float = 86_400.0
    sqlite_synchronous: str = "FULL"
    retry_initial_ms: int = 50
    retry_factor: float = 2.0
    retry_max_ms: int = 60_000
    retry_max_attempts: int = 70
    retry_on_max_attempts: str = "pause"
    log_level: str = "INFO"
    #: ``text`` (one line of ``time level logger: message``) or ``json`` (one JSON object per
    #: line, with the invocation's fields where a record is about one: docs/orchestrator.md).
    log_format: str = "text"
    #: This orchestrator's name among those sharing a store ("" = a fresh random one per
    #: process). A restarted process with the same name reclaims its leases at once.
    node_id: str = ""
    #: Partition lease period: a dead orchestrator's partitions move within two of them.
    lease_s: float = 5.0
    #: How long a partition handed over (another orchestrator joined; SIGTERM) waits for the
    #: attempts in flight on it to answer and commit before its lease is released; past it,
    #: the hand-over goes on as a loss (what had not committed runs again on the next leader).
    drain_s: float = 10.0
    #: How often a leader reads its partitions' inboxes (work sent by other orchestrators).
    inbox_interval_s: float = 0.2
    #: How often the watchdog looks for invocations nothing would move (0: never).
    watchdog_interval_s: float = 30.0
    #: How often the leader of a schedule's partition looks for due fire times, at most
    #: (sooner when one is near; docs/schedules.md). 0: this orchestrator fires no schedules.
    schedule_interval_s: float = 1.0
    #: How long a store call is retried through throttling and outages before the client
    #: gets a retryable 503 (DynamoDB, or any store with faults injected).
    store_retry_budget_s: float = 10.0
    #: Fault injection for tests (``ambiguous=0.05,throttle=0.01,seed=3``); empty: none.
    store_faults: str = ""
    # -- auth (docs/auth.md). Secrets are kept out of repr() so a logged Settings leaks none.
    #: Bearer token every admin request but ``GET /health`` (and /ui's static files) must carry
    #: (``RITORNELLO_ADMIN_TOKEN``); empty: the admin API is open.
    admin_token: str = field(default="", repr=False)
    #: Bearer token every ingress request must carry (``RITORNELLO_INGRESS_TOKEN``); empty: open.
    ingress_token: str = field(default="", repr=False)
    #: Shared secret that signs every request to a handler endpoint (HTTP and Lambda), checked
    #: by endpoints built with the same ``RITORNELLO_SIGNING_SECRET``; empty: unsigned.
    signing_secret: str = field(default="", repr=False)
    #: Comma-separated request header names the ingress redacts before journaling the rest.
    redact_headers: str = DEFAULT_REDACT_HEADERS
    # -- connections, per port (docs/orchestrator.md, "Connections")
    #: Open connections a port holds; a new one past it closes the one waiting longest for a
    #: request. Lowered at start to fit the open-file limit.
    max_connections: int = 4096
    #: A connection closes when no byte of a request comes this long after its accept or its
    #: previous answer (silent and idle kept-alive connections).
    idle_timeout_s: float = 5.0
    #: A connection closes when a request's head is incomplete this long after its first byte.
    header_timeout_s: float = 10.0
    #: A connection closes when a request's body is incomplete this long after its head.
    body_timeout_s: float = 30.0
    # -- where HTTP deployments may be reached (docs/orchestrator.md, "Deployment hosts"):
    # comma-separated addresses, networks (10.0.0.0/8), host names and *.domains.
    #: Only these, if any are given (a name, or every address it resolves to); empty: any.
    deployment_hosts_allow: str = ""
    #: Never these (a name, or any address it resolves to). Default: link-local and cloud
    #: metadata addresses. Setting it replaces the list.
    deployment_hosts_deny: str = DEFAULT_DENY
    #: Named limits (docs/limits.md): ``[limits.NAME]`` tables of ``ritornello.toml``; the
    #: admin API's ``PUT /limits/NAME`` overrides one of the same name.
    limits: Mapping[str, LimitSpec] = field(default_factory=dict)

    def host_policy(self) -> HostPolicy:
        """The ``HostPolicy`` of ``deployment_hosts_allow`` and ``deployment_hosts_deny``."""
        return HostPolicy(self.deployment_hosts_allow, self.deployment_hosts_deny)


#: The values ``log_format`` may take.
LOG_FORMATS = ("text", "json")

#: Settings that must be above zero.
_POSITIVE = ("max_connections", "idle_timeout_s", "header_timeout_s", "body_timeout_s")


class ConfigError(ValueError):
    """A setting has a value of the wrong type, out of its range, or an unknown name."""


def header_names(raw: str) -> frozenset[str]:
    """Lower-case header names from a comma-separated setting."""
    return frozenset(n.strip().lower() for n in raw.split(",") if n.strip())


def _coerce(name: str, raw: Any, typ: Any) -> Any:
    try:
        if typ in (int, "int"):
            return int(raw)
        if typ in (float, "float"):
            return float(raw)
        return str(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"setting {name}: {raw!r} is not a {typ}") from None


def _limits(path: Path, raw: Any) -> dict[str, LimitSpec]:
    """``[limits.NAME]`` tables, each checked like ``PUT /limits/NAME``'s body."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: limits must be a table of [limits.NAME] tables")
    try:
        return {
            check_name(name): parse_limit(body, f"{path}: [limits.{name}]")
            for name, body in raw.items()
        }
    except LimitError as exc:
        raise ConfigError(str(exc)) from None


def load_settings(config_file: str | None = None, **overrides: Any) -> Settings:
    """Defaults < config file < environment < explicit overrides (None values are skipped)."""
    types = {f.name: f.type for f in fields(Settings)}
    values: dict[str, Any] = {}
    path = Path(config_file) if config_file else Path("ritornello.toml")
    if config_file and not path.exists():
        raise ConfigError(f"config file {config_file} not found")
    if path.exists():
        with path.open("rb") as fh:
            try:
                data = tomllib.load(fh)
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"{path}: {exc}") from None
        for name, raw in data.items():
            if name == "limits":
                values["limits"] = _limits(path, raw)
                continue
            if name not in types:
                raise ConfigError(f"{path}: unknown setting {name!r}")
            values[name] = _coerce(name, raw, types[name])
    for name, typ in types.items():
        if name == "limits":
            continue  # tables only: ritornello.toml
        env = os.environ.get("RITORNELLO_" + name.upper())
        if env is not None:
            values[name] = _coerce(name, env, typ)
    for name, raw in overrides.items():
        if raw is not None:
            values[name] = _coerce(name, raw, types[name])
    for name in _POSITIVE:
        if name in values and not values[name] > 0:
            raise ConfigError(f"setting {name}: {values[name]!r} is not above zero")
    if values.get("log_format", "text") not in LOG_FORMATS:
        raise ConfigError(f"setting log_format: {values['log_format']!r} is not text or json")
    settings = replace(Settings(), **values)
    try:
        settings.host_policy()
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return settings
