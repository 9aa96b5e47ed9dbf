"""The CLI returns the right exit code every time, although the Temporal core may crash at
interpreter exit (temporalio/sdk-python#300): 30 runs of a client-using command."""

from __future__ import annotations

import os
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest
from temporalio.testing import WorkflowEnvironment

from tests.conftest import BACKUPCTL

RUNS = 30


def _run(args: list[str], address: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, BACKUPCENTER_TEMPORAL_ADDRESS=address)
    return subprocess.run([BACKUPCTL, *args], env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.asyncio(loop_scope="session")
async def test_client_using_command_exits_right_every_time(temporal_env: WorkflowEnvironment) -> None:
    address = temporal_env.client.service_client.config.target_host
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: _run(["jobs", "list"], address), range(RUNS)))
    codes = [r.returncode for r in results]
    assert codes == [0] * RUNS, [(r.returncode, r.stderr[-300:]) for r in results if r.returncode]
    assert all("job(s)" in r.stdout for r in results)


def test_failures_keep_their_codes() -> None:
    # Nothing listens on port 1: the connection fails, exit code 1 with a one-line reason.
    failed = _run(["jobs", "list"], "127.0.0.1:1")
    assert failed.returncode == 1
    assert failed.stderr.startswith("error: cannot reach Temporal at 127.0.0.1:1")
    bad = _run(["jobs", "list", "--phase", "Stuck"], "127.0.0.1:1")
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "error: --phase: 'Stuck' is not one of InProgress, WaitingForOperator, Completed, "
        "PartiallyFailed, Failed, Canceled"
    ]
    usage = _run(["jobs", "list", "--limit", "zero"], "127.0.0.1:1")
    assert usage.returncode == 2
