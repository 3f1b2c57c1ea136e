"""``ctx.logger``: a logger that stays quiet while the handler replays.

A handler's code before its last journaled entry runs again on every attempt; its log lines
would repeat each time. ``ctx.logger`` drops every record logged while the current context
(the handler, or a fan-out branch) is still replaying journaled entries, at every level and on
every transport (HTTP, Lambda, in-process); inside a step's function it never drops (a step
runs only when it is not replayed). Each record carries ``invocation_id``, ``target``
(``Service/handler``), ``attempt``, ``journal_index`` (the step's index inside a step, else
the position the next action takes) and ``step`` (the running step's name, or None).

It is a standard ``logging.LoggerAdapter`` over the logger ``ritornello.handler.<Service>``:
configure handlers, levels and formats there as for any logger.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, MutableMapping
from typing import Any

from ritornello.sdk._machine import Machine

#: The name of the logger ``ctx.logger`` adapts, per service.
LOGGER_PREFIX = "ritornello.handler"


class ReplayAwareLogger(logging.LoggerAdapter[logging.Logger]):
    """Drops records logged during replay; stamps the others with the invocation."""

    def __init__(
        self,
        logger: logging.Logger,
        machine: Machine,
        fields: dict[str, Any],
        where: Callable[[], tuple[str | None, int | None]],
    ) -> None:
        super().__init__(logger, fields)
        self._machine = machine
        self._where = where

    def isEnabledFor(self, level: int) -> bool:
        step, _ = self._where()
        if step is None and self._machine.replaying:
            return False
        return self.logger.isEnabledFor(level)

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        step, index = self._where()
        extra = dict(self.extra or {})
        extra["step"] = step
        extra["journal_index"] = self._machine.next_index if index is None else index
        extra.update(kwargs.get("extra") or {})
        kwargs["extra"] = extra
        return msg, kwargs
