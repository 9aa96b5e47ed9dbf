"""Backup plans as Temporal Schedules: runs named <plan>-<UTC timestamp>, pause, trigger, CLI."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import uuid
from typing import Any

import pytest
from temporalio.client import ScheduleHandle

from backupctl import jobctl
from backupctl.plan_cmd import build_schedule, describe_cycle
from schemas.ids import plan_schedule_id
from schemas.specs import PlanSpec
from schemas.status import JobPhase, JobStatus
from tests.conftest import BACKUPCTL
from tests.product_fixtures import Product
from tests.restore.helpers import finished
from vault import verifications

pytestmark = pytest.mark.cluster


async def _runs(handle: ScheduleHandle, count: int, timeout: float = 30) -> list[str]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        desc = await handle.describe()
        if len(desc.info.recent_actions) >= count:
            return [a.action.workflow_id for a in desc.info.recent_actions]  # type: ignore[attr-defined]
        assert asyncio.get_running_loop().time() < deadline, "the schedule did not start its run"
        await asyncio.sleep(0.2)


@pytest.mark.asyncio(loop_scope="session")
async def test_triggered_plan_runs_a_named_backup(product: Product, kube_namespace: str) -> None:
    plan_name = f"p-{uuid.uuid4().hex[:6]}"
    plan = PlanSpec.model_validate(
        {
            "name": plan_name,
            "cycle": "1 4 * * *",
            "paused": True,
            "template": {"vault": "main", "include_namespaces": [kube_namespace], "ttl": "7d"},
        }
    )
    handle = await product.client.create_schedule(
        plan_schedule_id(plan_name), build_schedule(plan, product.settings)
    )
    try:
        desc = await handle.describe()
        assert desc.schedule.state.paused
        assert describe_cycle(desc.schedule.spec) == "1 4 * * *"
        await handle.trigger()
        (run_id,) = await _runs(handle, 1)
        assert run_id.startswith(f"planrun-{plan_name}-")
        result = await product.client.get_workflow_handle(run_id, result_type=JobStatus).result()
        assert result.phase is JobPhase.completed, result.error
        assert re.fullmatch(rf"{plan_name}-\d{{14}}", result.name)
        # The run is an ordinary backup job: describe finds it by its name.
        status = await jobctl.job_status(product.client, "backup", result.name)
        assert status.phase is JobPhase.completed
    finally:
        await handle.delete()


@pytest.mark.asyncio(loop_scope="session")
async def test_a_plan_drills_its_newest_backup_when_a_drill_is_due(
    product: Product, kube_namespace: str
) -> None:
    """drill_every: the first run's backup is drilled (none was before), the next run's is not (the
    last drill is younger than the interval)."""
    plan_name = f"pd-{uuid.uuid4().hex[:6]}"
    plan = PlanSpec.model_validate(
        {
            "name": plan_name,
            "cycle": "1 4 * * *",
            "paused": True,
            "drill_every": "7d",
            "template": {"vault": "main", "include_namespaces": [kube_namespace], "ttl": "7d"},
        }
    )
    handle = await product.client.create_schedule(
        plan_schedule_id(plan_name), build_schedule(plan, product.settings)
    )
    store = product.ctx.vaults().store("main")
    try:
        assert "restore drill every 7d" in ((await handle.describe()).schedule.state.note or "")
        await handle.trigger()
        (first,) = await _runs(handle, 1)
        result = await product.client.get_workflow_handle(first, result_type=JobStatus).result()
        assert result.phase is JobPhase.completed, result.error
        # The drill runs on its own: the plan run ended with its backup.
        drill = await finished(product, "drill", f"{result.name}-drill", 300)
        assert drill.phase is JobPhase.completed, drill.render_table()
        report = verifications.latest_drill(store, result.name)
        assert report is not None and report.passed and report.job == f"{result.name}-drill"

        await asyncio.sleep(1.1)  # run names carry the second
        await handle.trigger()
        second = next(r for r in await _runs(handle, 2) if r != first)
        again = await product.client.get_workflow_handle(second, result_type=JobStatus).result()
        assert again.phase is JobPhase.completed, again.error
        assert not await jobctl.job_exists(product.client, "drill", f"{again.name}-drill")
        assert verifications.latest_drill(store, again.name) is None
    finally:
        await handle.delete()


def test_plan_cli_lifecycle(product_state: dict[str, Any], temporal_env: Any) -> None:
    env = dict(
        os.environ,
        BACKUPCENTER_TEMPORAL_ADDRESS=temporal_env.client.service_client.config.target_host,
        BACKUPCENTER_SETTINGS=str(product_state["settings_path"]),
    )

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([BACKUPCTL, "plan", *args], env=env, capture_output=True, text=True, timeout=60)

    name = f"cli-{uuid.uuid4().hex[:6]}"
    created = cli("create", name, "--cycle", "6h30m", "--vault", "main", "--include-namespaces", "app")
    assert created.returncode == 0, created.stderr
    again = cli("create", name, "--cycle", "6h30m", "--vault", "main")
    assert again.returncode == 1 and f"plan name '{name}' is already in use" in again.stderr
    listed = cli("list")
    assert name in listed.stdout and "6h30m" in listed.stdout and "active" in listed.stdout
    assert cli("pause", name).returncode == 0
    assert "state: paused" in cli("describe", name).stdout
    assert cli("resume", name).returncode == 0
    assert cli("delete", name).returncode == 0
    missing = cli("describe", name)
    assert missing.returncode == 1 and f"plan '{name}' not found" in missing.stderr
