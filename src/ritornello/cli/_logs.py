"""How ``ritornello serve`` and ``dev`` write their log: ``log_format = "text"`` (one line of
``time level logger: message``) or ``"json"`` (one JSON object per line, for a log collector).

A JSON line holds ``time`` (ISO 8601, UTC, milliseconds), ``level``, ``logger``, ``message``,
``exception`` (its traceback) when the record carries one, and those of ``FIELDS`` the record
carries as attributes: the engine passes them as ``extra`` on its records about one invocation
or one partition (``orchestrator/runtime``). Nothing is read from a record that is not emitted:
a disabled level costs what it always did.

Standard library only: the plain ``serve`` path (``ritornello.cli``) imports it.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

#: The format of ``log_format = "text"`` (what serve always wrote).
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

#: Record attributes copied into a JSON line when present (``extra`` of the engine's records).
FIELDS = ("invocation_id", "service", "handler", "attempt", "partition")


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (newlines in a message or traceback are
    escaped by JSON)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": _iso_utc(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:  # cached, as logging.Formatter does
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        attrs = record.__dict__
        for name in FIELDS:
            if name in attrs:
                line[name] = attrs[name]
        return json.dumps(line, default=str)


def _iso_utc(created: float) -> str:
    """``2026-12-05T03:10:41.123Z``."""
    stamp = datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")
    return stamp.removesuffix("+00:00") + "Z"


def log_handler(log_format: str) -> logging.Handler:
    """A handler writing to stderr in ``log_format`` (``text`` or ``json``)."""
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    return handler
