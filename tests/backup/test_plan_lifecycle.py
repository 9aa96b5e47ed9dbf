"""A plan keeps producing backups: a run that hits a permanent error ends Failed and the next run starts;
`plan trigger` says when a trigger was skipped, and why; a paused plan lists no next runs."""

from __future__ import annotations

import asyncio
import os
import uuid
from typing import Any

import pytest

from backupctl.plan_cmd import build_schedule
from schemas.ids import plan_schedule_id
from schemas.specs import PlanSpec
from schemas.status import JobPhase, JobStatus
from tests.backup.test_backup_workflow import seed
from tests.backup.test_plans import _runs
from tests.conftest import BACKUPCTL
from tests.product_fixtures import Product

pytestmark = [pytest.mark.cluster, pytest.mark.asyncio(loop_scope="session")]


def plan(name: str, namespaces: list[str], *, paused: bool = True) -> PlanSpec:
    return PlanSpec.model_validate(
        {
            "name": name,
            "cycle": "1 4 * * *",
            "paused": paused,
            "template": {"vault": "main", "include_namespaces": namespaces, "ttl": "1d"},
        }
    )


async def test_a_plan_whose_namespaces_are_gone_fails_its_run_and_goes_on(product: Product) -> None:
    name = f"gone-{uuid.uuid4().hex[:6]}"
    handle = await product.client.create_schedule(
        plan_schedule_id(name), build_schedule(plan(name, ["deleted-app"]), product.settings)
    )
    try:
        await handle.trigger()
        (first,) = await _runs(handle, 1)
        run = await asyncio.wait_for(
            product.client.get_workflow_handle(first, result_type=JobStatus).result(), 60
        )
        assert run.phase is JobPhase.failed
        assert run.error is not None
        assert run.error.short().startswith("BackupError: get target namespace failed")
        # Nothing holds the plan: the next trigger starts a run (it is not skipped as overlapping).
        await asyncio.sleep(1.1)  # run ids carry the second they start in
        await handle.trigger()
        runs = await _runs(handle, 2)
        assert len(set(runs)) == 2
        assert (await handle.describe()).info.num_actions_skipped_overlap == 0
    finally:
        await handle.delete()


async def test_trigger_says_when_it_was_skipped(
    product: Product, temporal_env: Any, kube_agent: Any, kube_namespace: str
) -> None:
    address = temporal_env.client.service_client.config.target_host
    env = dict(os.environ, BACKUPCENTER_TEMPORAL_ADDRESS=address,
               BACKUPCENTER_SETTINGS=str(product.settings_path), COLUMNS="250")

    async def cli(*args: str) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(BACKUPCTL, "plan", *args, env=env,
                                                    stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.STDOUT)
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
        return proc.returncode or 0, out.decode()

    seed(product, kube_agent, kube_namespace, configmaps=1)
    name = f"busy-{uuid.uuid4().hex[:6]}"
    handle = await product.client.create_schedule(
        plan_schedule_id(name), build_schedule(plan(name, [kube_namespace]), product.settings)
    )
    kube_agent.faults.snapshots_never_ready(True)
    try:
        described = await cli("describe", name)
        assert described[0] == 0 and "state: paused" in described[1]
        assert "next run: none while paused" in described[1]
        assert " UTC\n" not in described[1].split("state:")[1]
        code, out = await cli("trigger", name)
        assert code == 0 and f"plan {name} triggered: workflow planrun-{name}-" in out, out
        # The run now waits (its snapshot never gets ready): a second trigger overlaps and is skipped.
        code, out = await cli("trigger", name)
        assert code == 1, out
        assert f"plan {name}: trigger skipped: planrun-{name}-" in out and "is still going" in out, out
    finally:
        kube_agent.faults.snapshots_never_ready(False)
        running: list[Any] = list((await handle.describe()).info.running_actions)
        for action in running:
            await product.client.get_workflow_handle(action.workflow_id).terminate("test over")
        await handle.delete()
