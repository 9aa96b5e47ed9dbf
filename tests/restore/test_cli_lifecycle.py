"""Jobs that must not hang, driven through real `backupctl` processes: names checked before anything
starts, `--wait` returning when a job waits for an operator, delete requests steered like every job."""

from __future__ import annotations

import asyncio
import os
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

import pytest
from temporalio.client import Client

from backupctl import jobctl
from schemas.errors import BackupCenterError
from schemas.status import JobPhase
from tests.backup.test_backup_workflow import seed
from tests.conftest import BACKUPCTL
from tests.product_fixtures import Product
from tests.restore.helpers import finished

pytestmark = [pytest.mark.cluster, pytest.mark.asyncio(loop_scope="session")]


class Ran(NamedTuple):
    code: int
    out: str
    err: str
    seconds: float


Cli = Callable[..., Awaitable[Ran]]


@pytest.fixture
def cli(product: Product, temporal_env: Any) -> Cli:
    address = temporal_env.client.service_client.config.target_host
    env = dict(os.environ, BACKUPCENTER_TEMPORAL_ADDRESS=address, COLUMNS="250",
               BACKUPCENTER_SETTINGS=str(product.settings_path),
               BACKUPCENTER_STATE_DIR=str(product.ctx.state_dir))

    async def run(*args: str) -> Ran:
        # Asynchronously: this test's event loop also runs the product's worker.
        started = time.monotonic()
        proc = await asyncio.create_subprocess_exec(BACKUPCTL, *args, env=env, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 180)
        return Ran(proc.returncode or 0, out.decode(), err.decode(), time.monotonic() - started)

    return run


async def no_job(client: Client, kind: str, name: str) -> bool:
    with pytest.raises(BackupCenterError, match="not found"):
        await jobctl.job_status(client, kind, name)
    return True


async def delete_requests_for(client: Client, target: str) -> list[str]:
    return [wf.id async for wf in client.list_workflows(f"WorkflowId STARTS_WITH 'delete-backup-{target}'")]


async def test_unknown_names_are_refused_before_anything_starts(product: Product, cli: Cli) -> None:
    ghost = f"ghost-{uuid.uuid4().hex[:6]}"
    for kind in ("backup", "restore", "convert"):
        ran = await cli("delete", kind, ghost)
        assert ran.code == 2, ran
        assert f"{'conversion' if kind == 'convert' else kind} '{ghost}' not found" in ran.err, ran.err
        assert "started" not in ran.out
        assert ran.seconds < 10, ran.seconds  # process start included; the check itself is one lookup
    assert await delete_requests_for(product.client, ghost) == []
    ran = await cli("delete", "backup", ghost, "--vault", "main")
    assert ran.code == 2 and "nothing in vault main" in ran.err, ran
    ran = await cli("restore", "create", f"r-{ghost}", "--backup", ghost, "--vault", "main")
    assert ran.code == 2, ran
    assert f"backup '{ghost}' not found" in ran.err and "restore backups --vault main" in ran.err, ran.err
    assert await no_job(product.client, "restore", f"r-{ghost}")


async def test_wait_returns_when_the_job_waits_for_an_operator(
    product: Product, cli: Cli, kube_agent: Any, kube_namespace: str
) -> None:
    seed(product, kube_agent, kube_namespace, configmaps=1)
    name = f"w-{uuid.uuid4().hex[:8]}"
    kube_agent.faults.snapshots_never_ready(True)
    try:
        ran = await cli("backup", "create", name, "--vault", "main", "--include-namespaces", kube_namespace,
                        "--wait")
    finally:
        kube_agent.faults.snapshots_never_ready(False)
    assert ran.code == jobctl.EXIT_WAITING == 4, ran
    assert f"backup {name} waits for an operator at step 'wait snapshots ready'" in ran.out, ran.out
    assert f"backupctl backup retry|skip|cancel {name}" in ran.out
    assert (await jobctl.job_status(product.client, "backup", name)).phase is JobPhase.waiting_for_operator
    cancel = await cli("backup", "cancel", name)
    assert cancel.code == 0, cancel
    assert (await finished(product, "backup", name, 60)).phase is JobPhase.canceled


async def test_delete_requests_have_operator_commands(product: Product, cli: Cli) -> None:
    ran = await cli("delete", "--help")
    assert ran.code == 0
    for command in ("cancel", "retry", "skip"):
        assert re.search(rf"^\W*{command}\b", ran.out, re.MULTILINE), ran.out
    gone = await cli("delete", "retry", f"no-such-request-{uuid.uuid4().hex[:6]}")
    assert gone.code == 1 and "not found" in gone.err, gone
