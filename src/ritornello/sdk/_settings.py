"""Settings declared in code on a service or a handler (``Service(..., journal_retention=)``,
``handler(..., inactivity_timeout=)``), checked when declared and carried by discovery.

Durations take a ``timedelta``, a humantime or ISO 8601 string (``"30d"``, ``"1h 30m"``,
``"PT10S"``) or seconds; a bad one raises where it is declared, not at registration.
"""

from __future__ import annotations

from typing import Any

from ritornello.protocol import Settings, duration_ms
from ritornello.protocol._settings import metadata_pairs

#: The keyword arguments that set a duration, and the ``Settings`` field each one sets.
DURATIONS = {
    "journal_retention": "journal_retention_ms",
    "idempotency_retention": "idempotency_retention_ms",
    "workflow_retention": "workflow_retention_ms",
    "inactivity_timeout": "inactivity_timeout_ms",
    "abort_timeout": "abort_timeout_ms",
}


def declared_settings(
    where: str,
    *,
    ingress_private: bool | None = None,
    description: str | None = None,
    metadata: dict[str, str] | None = None,
    **durations: Any,
) -> Settings | None:
    """The ``Settings`` of ``where``'s keyword arguments (None when none is set)."""
    values: dict[str, Any] = {}
    for name, value in durations.items():
        if value is not None:
            values[DURATIONS[name]] = duration_ms(value, f"{where}: {name}")
    if ingress_private is not None:
        if not isinstance(ingress_private, bool):
            raise TypeError(f"{where}: ingress_private must be True or False")
        values["ingress_private"] = ingress_private
    if description is not None:
        if not isinstance(description, str):
            raise TypeError(f"{where}: description must be a string")
        values["description"] = description
    if metadata is not None:
        try:
            values["metadata"] = metadata_pairs(metadata)
        except ValueError as exc:
            raise TypeError(f"{where}: {exc}") from None
    return Settings(**values) if values else None
