"""A named limit's definition and the one check of it, wherever it comes from: the admin API
(``PUT /limits/{name}``), ``ritornello.toml`` (``[limits.NAME]``) or a service's code.

Outside every room (like ``_keys``), so the core, the runtime, the settings and the admin API
share it. docs/limits.md states the rules.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from ritornello.store.records import LimitRecord

#: The periods a rate may be given per.
PERIODS_MS = {"1s": 1_000, "1m": 60_000, "1h": 3_600_000, "1d": 86_400_000}
#: The shortest time between two grant turns of a rate-limited instance.
MIN_TURN_MS = 5
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,99}")
_FIELDS = frozenset({"concurrency", "rate", "per", "burst", "per_key"})


class LimitError(ValueError):
    """A limit definition that cannot be used (the message says why, in the user's terms)."""


@dataclass(frozen=True, slots=True)
class LimitSpec:
    """A limit's definition: ``concurrency`` permits out at once (None: unbounded), ``rate``
    grants per ``per_ms`` with a bucket of ``burst`` (None: no rate bound)."""

    concurrency: int | None = None
    rate: float | None = None
    per_ms: int = 1000
    burst: int = 1
    #: One instance per key (the caller's limit key, else the object key), each with the
    #: whole budget: "4 at a time per customer".
    per_key: bool = False

    @property
    def bucket(self) -> float:
        """The rate's bucket: ``burst`` tokens, or what the rate brings in ``MIN_TURN_MS``
        if that is more (grants are made in turns, at most one every ``MIN_TURN_MS``; a
        smaller bucket would cap the rate at ``burst`` per turn)."""
        if self.rate is None:
            return float(self.burst)
        return float(max(self.burst, math.ceil(self.rate * MIN_TURN_MS / self.per_ms)))

    def as_json(self) -> dict[str, Any]:
        """The definition as ``PUT /limits/{name}`` takes it."""
        out: dict[str, Any] = {}
        if self.concurrency is not None:
            out["concurrency"] = self.concurrency
        if self.rate is not None:
            per = next((k for k, v in PERIODS_MS.items() if v == self.per_ms), "1s")
            out.update(rate=self.rate, per=per, burst=self.burst)
        if self.per_key:
            out["per_key"] = True
        return out


def check_name(name: str) -> str:
    """``name`` if it may name a limit, else LimitError."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise LimitError(
            f"invalid limit name {name!r}: use 1-100 letters, digits, '.', '_', ':' or '-', "
            "starting with a letter or digit"
        )
    return name


def parse_limit(body: Any, where: str = "the limit") -> LimitSpec:
    """The definition in ``body`` (a JSON object or TOML table), checked; LimitError else."""
    if not isinstance(body, dict):
        raise LimitError(f"{where} must be an object with concurrency and/or rate")
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        raise LimitError(
            f"{where}: unknown field {unknown[0]!r} (use concurrency, rate, per, burst, per_key)"
        )
    concurrency = body.get("concurrency")
    if concurrency is not None and (
        type(concurrency) is not int or not 1 <= concurrency <= 1_000_000
    ):
        raise LimitError(f"{where}: concurrency must be a whole number from 1 to 1000000")
    rate = body.get("rate")
    if rate is not None:
        if type(rate) not in (int, float) or not math.isfinite(rate) or not 0 < rate <= 1_000_000:
            raise LimitError(f"{where}: rate must be a number above 0, at most 1000000")
        rate = float(rate)
    elif "per" in body or "burst" in body:
        raise LimitError(f"{where}: per and burst shape a rate: give rate too")
    per = body.get("per", "1s")
    if per not in PERIODS_MS:
        raise LimitError(f"{where}: per must be one of 1s, 1m, 1h, 1d, not {per!r}")
    burst = body.get("burst", 1)
    if type(burst) is not int or not 1 <= burst <= 1_000_000:
        raise LimitError(f"{where}: burst must be a whole number from 1 to 1000000")
    if concurrency is None and rate is None:
        raise LimitError(f"{where}: give concurrency, rate, or both")
    per_key = body.get("per_key", False)
    if type(per_key) is not bool:
        raise LimitError(f"{where}: per_key must be true or false")
    return LimitSpec(concurrency, rate, PERIODS_MS[per], burst, per_key)


def spec_of(record: LimitRecord) -> LimitSpec:
    """A stored definition's spec."""
    return LimitSpec(record.concurrency, record.rate, record.per_ms, record.burst, record.per_key)


#: Separates a per-key limit's name from the key in its instances' names (never in a name).
KEY_SEPARATOR = "\x00"


def instance_name(limit: str, spec: LimitSpec | None, key: str | None) -> str:
    """The instance of ``limit`` an invocation with limit key ``key`` uses."""
    if spec is None or not spec.per_key or key is None:
        return limit
    return f"{limit}{KEY_SEPARATOR}{key}"


def limit_of_instance(instance: str) -> str:
    """The limit an instance belongs to."""
    return instance.partition(KEY_SEPARATOR)[0]
