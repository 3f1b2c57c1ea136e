"""Settings: defaults that need no file, overridden by ``ritornello.toml`` (or ``--config``),
then by ``RITORNELLO_*`` environment variables, then by command-line flags."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

DEFAULT_STORE = "sqlite:///.ritornello/ritornello.db"
#: Request headers never journaled (the ingress replaces their values with ``[redacted]``).
DEFAULT_REDACT_HEADERS = "authorization,proxy-authorization,cookie,set-cookie,x-api-key"


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything ``ritornello serve`` can be told."""

    store: str = DEFAULT_STORE
    host: str = "127.0.0.1"
    ingress_port: int = 8080
    admin_port: int = 9070
    max_body_bytes: int = 10 * 1024 * 1024
    attempt_timeout_s: float = 300.0
    retention_s: float = 86_400.0
    sqlite_synchronous: str = "FULL"
    retry_initial_ms: int = 50
    retry_factor: float = 2.0
    retry_max_ms: int = 60_000
    retry_max_attempts: int = 70
    retry_on_max_attempts: str = "pause"
    log_level: str = "INFO"
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


class ConfigError(ValueError):
    """A setting has a value of the wrong type or an unknown name."""


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
            if name not in types:
                raise ConfigError(f"{path}: unknown setting {name!r}")
            values[name] = _coerce(name, raw, types[name])
    for name, typ in types.items():
        env = os.environ.get("RITORNELLO_" + name.upper())
        if env is not None:
            values[name] = _coerce(name, env, typ)
    for name, raw in overrides.items():
        if raw is not None:
            values[name] = _coerce(name, raw, types[name])
    return replace(Settings(), **values)
