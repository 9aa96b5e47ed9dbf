"""``backupctl`` as an operator runs it, from a test: a real process beside the session's workers."""

from __future__ import annotations

import asyncio
import os
from typing import Any, NamedTuple

from tests.conftest import BACKUPCTL
from tests.product_fixtures import Product


class Ran(NamedTuple):
    code: int
    out: str
    err: str


def cli_env(product: Product, temporal_env: Any) -> dict[str, str]:
    """The environment that points backupctl at the test's Temporal server, settings and state."""
    return dict(
        os.environ,
        BACKUPCENTER_TEMPORAL_ADDRESS=temporal_env.client.service_client.config.target_host,
        COLUMNS="250",
        BACKUPCENTER_SETTINGS=str(product.settings_path),
        BACKUPCENTER_STATE_DIR=str(product.ctx.state_dir),
    )


async def run_cli(env: dict[str, str], *args: str, timeout: float = 180) -> Ran:
    # Asynchronously: the test's event loop also runs the product's worker.
    proc = await asyncio.create_subprocess_exec(
        BACKUPCTL, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    return Ran(proc.returncode or 0, out.decode(), err.decode())
