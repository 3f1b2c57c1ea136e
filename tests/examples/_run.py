"""Running one test against a harness: ``run(test, services...)``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from ritornello.testing import Harness


def run(test: Callable[[Harness], Awaitable[None]], *services: Any, **options: Any) -> None:
    """``await test(env)`` in a fresh harness serving ``services``."""

    async def main() -> None:
        async with Harness(*services, **options) as env:
            await test(env)

    asyncio.run(main())
