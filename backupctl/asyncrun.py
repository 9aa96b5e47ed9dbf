"""Running the CLI's async Temporal calls."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from temporalio.client import Client

from backupctl.console import load_settings
from workers.client import connect

T = TypeVar("T")


def with_client(fn: Callable[[Client], Awaitable[T]]) -> T:
    """Connect with the current settings and run ``fn(client)`` to completion."""

    async def go() -> T:
        client = await connect(load_settings())
        return await fn(client)

    return asyncio.run(go())
