"""Restore drills (workflows/drill.py): a backup restored into scratch namespaces of the same cluster,
checked, and removed — passing for a good backup, failing with the object named when the backup's disk
snapshot or its NAS data was damaged behind the product's back.  The source is never touched."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from typing import Any

import pytest

from activities.drill import scratch_namespace
from backupctl import jobctl
from schemas.drill import DrillReport
from schemas.specs import DrillSpec
from schemas.status import JobPhase, JobStatus
from tests.backup.test_verify import BIG_FILE, disk_snapshot, flipped_pack, protected_app, vault_store
from tests.cli_runner import cli_env, run_cli
from tests.product_fixtures import Product
from tests.restore.helpers import finished
from vault import catalog, verifications
from workflows.drill import DrillWorkflow

pytestmark = [pytest.mark.cluster, pytest.mark.asyncio(loop_scope="session")]


async def start_drill(product: Product, backup_name: str) -> str:
    name = f"{backup_name}-{uuid.uuid4().hex[:6]}"
    spec = DrillSpec(name=name, backup=backup_name, vault=product.vault)
    await jobctl.start_job(product.client, product.settings, "drill", name, DrillWorkflow.run, spec,
                           vault=spec.vault, summary=f"test drill {name}")
    return name


async def drill(product: Product, backup_name: str) -> tuple[JobStatus, DrillReport, str]:
    """Run a drill to its end: its status, its report, and its name."""
    name = await start_drill(product, backup_name)
    status = await finished(product, "drill", name, 300)
    report = verifications.latest_drill(vault_store(product), backup_name)
    assert report is not None and report.job == name, (report, status.render_table())
    assert report.passed is (status.phase is JobPhase.completed), (report, status.render_table())
    return status, report, name


def left_behind(product: Product, report: DrillReport) -> list[str]:
    """Scratch namespaces still there, and volumes whose claims were in them."""
    kube = product.kube
    scratch = set(report.scratch.values())
    found = [f"namespace {n}" for n in scratch if kube.get(f"/api/v1/namespaces/{n}") is not None]
    for pv in kube.list("/api/v1/persistentvolumes")[0]:
        if ((pv.get("spec") or {}).get("claimRef") or {}).get("namespace") in scratch:
            found.append(f"persistentvolume {pv['metadata']['name']}")
    return found


def pods_of(product: Product, ns: str) -> dict[str, str]:
    return {p["metadata"]["name"]: p["metadata"]["uid"]
            for p in product.kube.list(f"/api/v1/namespaces/{ns}/pods")[0]}


async def test_a_drill_of_a_good_backup_passes_and_leaves_nothing_behind(
    product: Product, kube_agent: Any, kube_namespace: str
) -> None:
    ns = kube_namespace
    name = await protected_app(product, kube_agent, ns)
    before = pods_of(product, ns)
    status, report, job = await drill(product, name)
    assert status.phase is JobPhase.completed, (report.differences, status.render_table())
    assert report.passed and report.differences == [] and report.restore_phase == "Completed"
    assert report.scratch == {ns: scratch_namespace(ns, job)}
    # Every restored object was looked up: the claims (both Bound), the pods, the config.
    assert report.checked["persistentvolumeclaims"] == 2, report.checked
    assert report.checked["configmaps"] >= 2 and report.checked["pods"] >= 2, report.checked
    assert 0 < report.rto_seconds < 300
    record = catalog.get_backup(vault_store(product), name).record
    assert record is not None
    assert report.rpo_seconds == pytest.approx((report.started_at - record.completed_at).total_seconds())
    assert left_behind(product, report) == []
    assert pods_of(product, ns) == before  # the source was not touched
    assert status.summary["differences"] == 0 and str(status.summary["report"]).startswith(
        f"backups/{name}/drills/")


async def test_a_drill_after_the_disk_snapshot_was_lost_fails_naming_the_pvc(
    product: Product, kube_agent: Any, kube_namespace: str
) -> None:
    ns = kube_namespace
    name = await protected_app(product, kube_agent, ns)
    shutil.rmtree(kube_agent.layout.snapshot_dir(disk_snapshot(product, name).handle))  # the cloud lost it

    status, report, job = await drill(product, name)
    assert status.phase is JobPhase.failed and status.error is not None, status.render_table()
    assert status.error.code == "RestoreDrillFailed"
    scratch = scratch_namespace(ns, job)
    lost = [c for c in status.error.causes if f"{scratch}/data" in c]
    assert lost and "no longer exists" in lost[0], status.error.causes
    assert not any(f"{scratch}/shared" in c for c in status.error.causes), status.error.causes
    assert not report.passed and any(f"{scratch}/data" in d for d in report.differences)
    assert left_behind(product, report) == []


async def test_a_drill_after_the_nas_data_was_tampered_with_fails_naming_the_file(
    product: Product, kube_agent: Any, kube_namespace: str
) -> None:
    ns = kube_namespace
    name = await protected_app(product, kube_agent, ns)
    with flipped_pack(product, name, ns):
        status, report, job = await drill(product, name)
    assert status.phase is JobPhase.failed and status.error is not None, status.render_table()
    scratch = scratch_namespace(ns, job)
    tampered = [c for c in status.error.causes if f"{scratch}/shared" in c]
    assert tampered and BIG_FILE in tampered[0], status.error.causes
    assert left_behind(product, report) == []


async def test_a_canceled_drill_removes_its_scratch_namespaces(
    product: Product, temporal_env: Any, kube_agent: Any, kube_namespace: str
) -> None:
    """`backupctl jobs cancel drill NAME` while the drill's restore runs: the restore is canceled
    with it and the scratch namespace goes; nothing of the drill is left."""
    ns = kube_namespace
    name = await protected_app(product, kube_agent, ns)
    job = await start_drill(product, name)
    scratch = scratch_namespace(ns, job)
    deadline = asyncio.get_running_loop().time() + 120
    while product.kube.get(f"/api/v1/namespaces/{scratch}") is None:
        assert asyncio.get_running_loop().time() < deadline, "the drill's restore never made its namespace"
        await asyncio.sleep(0.2)
    code, out, err = await run_cli(cli_env(product, temporal_env), "jobs", "cancel", "drill", job)
    assert code == 0 and f"cancel sent to drill {job}" in out, (out, err)
    status = await finished(product, "drill", job, 300)
    assert status.phase is JobPhase.canceled, status.render_table()
    restore = await finished(product, "restore", f"{job}-restore", 60)
    assert restore.phase is JobPhase.canceled, restore.render_table()
    assert product.kube.get(f"/api/v1/namespaces/{scratch}") is None
