"""Per-service and per-handler settings (retention, timeouts, ingress visibility, description,
metadata), as code declares them and discovery carries them, and the humantime durations they
are written in.

A ``Settings`` leaves unset (None) what it does not set: the orchestrator then takes the next
level's value (operator override, then handler, then service, then its own default). Durations
are whole milliseconds, never negative. Parsing is by hand (no ``re``): the SDK imports this
module, and a handler module's import time is counted.
"""

from __future__ import annotations

import math
import sys
from typing import Any

from ritornello.protocol._record import FrozenRecord

#: Humantime units (as Restate's ``humantime`` reads them) in milliseconds.
_UNITS_MS: dict[str, float] = {}
for _names, _ms in (
    (("ns", "nsec", "nanos", "nanosecond", "nanoseconds"), 1e-6),
    (("us", "usec", "micros", "microsecond", "microseconds"), 1e-3),
    (("ms", "msec", "millis", "millisecond", "milliseconds"), 1),
    (("s", "sec", "secs", "second", "seconds"), 1_000),
    (("m", "min", "mins", "minute", "minutes"), 60_000),
    (("h", "hr", "hrs", "hour", "hours"), 3_600_000),
    (("d", "day", "days"), 86_400_000),
    (("w", "week", "weeks"), 604_800_000),
    (("M", "month", "months"), 2_630_016_000),  # 30.44 days, as humantime counts a month
    (("y", "year", "years"), 31_557_600_000),  # 365.25 days
):
    for _name in _names:
        _UNITS_MS[_name] = _ms
#: The longest duration accepted (1000 years): far inside a 64-bit integer of milliseconds.
MAX_DURATION_MS = 1000 * 31_557_600_000
_ISO_UNITS_MS = {"D": 86_400_000, "H": 3_600_000, "M": 60_000, "S": 1_000}


def parse_duration(text: str, what: str = "duration") -> int:
    """Milliseconds from a humantime string (``30d``, ``1h 30m``, ``500ms``, ``2days``,
    ``1min``) or an ISO 8601 one (``PT10S``, ``P1DT2H``). ValueError, naming ``what``, for
    anything else: empty, negative, unknown unit, longer than 1000 years."""
    if not isinstance(text, str):
        raise ValueError(f"{what} must be a duration string, not {type(text).__name__}")
    raw = text.strip()
    bad = ValueError(f"invalid {what} {text!r}: use e.g. 30d, 1h 30m, 500ms or PT10S")
    if not raw or len(raw) > 64:
        raise bad
    total = _iso(raw) if raw[0] in "Pp" else _humantime(raw)
    if total is None:
        raise bad
    if not math.isfinite(total) or total > MAX_DURATION_MS:
        raise ValueError(f"{what} {text!r} is longer than the maximum of 1000 years")
    return round(total)


def _humantime(raw: str) -> float | None:
    total, i, n, found = 0.0, 0, len(raw), False
    while i < n:
        while i < n and raw[i] == " ":
            i += 1
        if i == n:
            break
        start = i
        while i < n and (raw[i].isdigit() or raw[i] == "."):
            i += 1
        number = raw[start:i]
        while i < n and raw[i] == " ":
            i += 1
        unit_start = i
        while i < n and raw[i].isalpha():
            i += 1
        unit = raw[unit_start:i]
        if not number or not number[0].isdigit() or number.count(".") > 1:
            return None
        scale = _UNITS_MS.get(unit) if unit == "M" else _UNITS_MS.get(unit.lower())
        if scale is None:
            return None
        total += float(number) * scale
        found = True
    return total if found else None


def _iso(raw: str) -> float | None:
    text = raw.upper()[1:]
    date, _, time = text.partition("T")
    if not (date or time) or text.endswith("T"):
        return None
    total = 0.0
    for part, allowed in ((date, "D"), (time, "HMS")):
        number = ""
        for ch in part:
            if ch.isdigit() or ch == ".":
                number += ch
            elif ch in allowed and number and number[0].isdigit() and number.count(".") <= 1:
                total += float(number) * _ISO_UNITS_MS[ch]
                number = ""
            else:
                return None
        if number:
            return None
    return total


def format_duration(ms: int) -> str:
    """``ms`` as humantime prints it: ``1day``, ``30days``, ``1h 30m``, ``500ms``, ``0s``."""
    if ms <= 0:
        return "0s"
    parts = []
    days, rest = divmod(ms, 86_400_000)
    if days:
        parts.append(f"{days}day" if days == 1 else f"{days}days")
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)):
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count}{unit}")
    return " ".join(parts)


def duration_ms(value: Any, what: str) -> int:
    """Milliseconds from what code may give: a ``timedelta``, a humantime or ISO string, or
    seconds as a number. TypeError or ValueError naming ``what`` otherwise (negative too)."""
    datetime = sys.modules.get("datetime")  # a timedelta exists only if it was imported
    ms: int
    if datetime is not None and isinstance(value, datetime.timedelta):
        ms = round(value.total_seconds() * 1000)
    elif isinstance(value, str):
        return parse_duration(value, what)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ValueError(f"{what} must be finite")
        ms = round(value * 1000)
    else:
        raise TypeError(
            f"{what} must be a timedelta, a duration string or seconds, not {type(value).__name__}"
        )
    if ms < 0:
        raise ValueError(f"{what} must not be negative")
    if ms > MAX_DURATION_MS:
        raise ValueError(f"{what} is longer than the maximum of 1000 years")
    return ms


#: The duration fields of ``Settings``, in milliseconds.
DURATION_FIELDS = (
    "journal_retention_ms",
    "idempotency_retention_ms",
    "workflow_retention_ms",
    "inactivity_timeout_ms",
    "abort_timeout_ms",
)


class Settings(FrozenRecord):
    """Settings of a service or a handler; None: not set here.

    Retentions say how long a finished invocation is kept (journal, idempotency key,
    workflow result); ``inactivity_timeout_ms + abort_timeout_ms`` bound an attempt's wait for
    the endpoint's next answer; ``ingress_private``: the ingress refuses it (handlers may still
    call it); ``description`` and ``metadata`` are shown, never interpreted."""

    _fields = (
        "journal_retention_ms",
        "idempotency_retention_ms",
        "workflow_retention_ms",
        "inactivity_timeout_ms",
        "abort_timeout_ms",
        "ingress_private",
        "description",
        "metadata",
    )
    __slots__ = _fields
    journal_retention_ms: int | None
    idempotency_retention_ms: int | None
    workflow_retention_ms: int | None
    inactivity_timeout_ms: int | None
    abort_timeout_ms: int | None
    ingress_private: bool | None
    description: str | None
    #: (key, value) pairs, sorted by key (a tuple: the record stays hashable).
    metadata: tuple[tuple[str, str], ...] | None

    def __init__(
        self,
        journal_retention_ms: int | None = None,
        idempotency_retention_ms: int | None = None,
        workflow_retention_ms: int | None = None,
        inactivity_timeout_ms: int | None = None,
        abort_timeout_ms: int | None = None,
        ingress_private: bool | None = None,
        description: str | None = None,
        metadata: tuple[tuple[str, str], ...] | None = None,
    ) -> None:
        self._init(
            journal_retention_ms=journal_retention_ms,
            idempotency_retention_ms=idempotency_retention_ms,
            workflow_retention_ms=workflow_retention_ms,
            inactivity_timeout_ms=inactivity_timeout_ms,
            abort_timeout_ms=abort_timeout_ms,
            ingress_private=ingress_private,
            description=description,
            metadata=metadata,
        )
        self._check()

    def _check(self) -> None:
        for name in DURATION_FIELDS:
            value = getattr(self, name)
            if value is not None and (
                not isinstance(value, int)
                or isinstance(value, bool)
                or not 0 <= value <= MAX_DURATION_MS
            ):
                raise ValueError(f"{name} must be a whole number of ms >= 0, not {value!r}")
        if self.ingress_private is not None and not isinstance(self.ingress_private, bool):
            raise ValueError("ingress_private must be true or false")
        if self.description is not None and not isinstance(self.description, str):
            raise ValueError("description must be a string")
        if self.metadata is not None and not all(
            isinstance(p, tuple) and len(p) == 2 and all(isinstance(x, str) for x in p)
            for p in self.metadata
        ):
            raise ValueError("metadata must map strings to strings")

    def is_empty(self) -> bool:
        return all(getattr(self, name) is None for name in self._fields)

    def to_dict_raw(self) -> dict[str, Any]:
        """The set fields as they are (metadata as pairs): ``Settings(**x)`` rebuilds it."""
        return {
            name: getattr(self, name) for name in self._fields if getattr(self, name) is not None
        }

    def to_dict(self) -> dict[str, Any]:
        """The set fields, as discovery carries them (metadata as an object)."""
        out: dict[str, Any] = {}
        for name in self._fields:
            value = getattr(self, name)
            if value is not None:
                out[name] = dict(value) if name == "metadata" else value
        return out

    @classmethod
    def from_dict(cls, raw: Any, where: str) -> Settings | None:
        """Settings from discovery (None for none); ValueError naming ``where``."""
        if raw is None:
            return None
        names = set(cls._fields)
        if not isinstance(raw, dict) or set(raw) - names:
            raise ValueError(f"bad settings of {where}: {raw!r}")
        values = dict(raw)
        meta = values.get("metadata")
        try:
            if meta is not None:
                values["metadata"] = metadata_pairs(meta)
            return cls(**values)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"settings of {where}: {exc}") from None

    def over(self, base: Settings | None) -> Settings:
        """These settings, with what they leave unset taken from ``base``."""
        if base is None:
            return self
        return Settings(
            **{
                name: getattr(self, name)
                if getattr(self, name) is not None
                else getattr(base, name)
                for name in self._fields
            }
        )


def metadata_pairs(meta: Any) -> tuple[tuple[str, str], ...]:
    """A ``{str: str}`` mapping as sorted pairs (ValueError otherwise)."""
    if not isinstance(meta, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in meta.items()
    ):
        raise ValueError("metadata must map strings to strings")
    return tuple(sorted(meta.items()))
