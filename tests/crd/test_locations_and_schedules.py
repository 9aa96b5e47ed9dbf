"""BackupLocation is the vault registry, BackupSchedule the Temporal Schedule of a backup plan."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest
from temporalio.service import RPCError

from backupctl.plan_cmd import describe_cycle
from schemas.ids import plan_schedule_id
from tests.crd.conftest import Kubectl
from tests.product_fixtures import Product
from tests.worker_process import WorkerProcess

pytestmark = [pytest.mark.cluster, pytest.mark.asyncio(loop_scope="session")]


def has_marker(bucket: Path) -> bool:
    """The vault's identity object (vault.json, as the file store names its objects) is in the bucket."""
    return any(p.name.startswith("vault.json") for p in bucket.iterdir())


async def test_backup_location_is_the_vault_and_follows_its_bucket(
    product: Product, controller: WorkerProcess, kubectl: Kubectl, tmp_path: Path
) -> None:
    home = product.settings.product_namespace
    name = f"loc-{uuid.uuid4().hex[:6]}"
    bucket = tmp_path / "bucket"
    kubectl.apply(f"""
apiVersion: backupcenter.io/v1alpha1
kind: BackupLocation
metadata: {{name: {name}, namespace: {home}}}
spec: {{url: "file://{bucket}", description: a test vault}}
""")
    obj = await asyncio.to_thread(kubectl.wait_phase, "backuplocation", name, home, {"Available", "Failed"})
    assert obj["status"]["phase"] == "Available", obj["status"]
    assert obj["status"]["lastValidated"] and obj["status"]["vaultId"]
    vaults = product.ctx.vaults()
    entry = vaults.describe(name)  # the vault exists: registered, its marker in the bucket
    assert entry.vault_id == obj["status"]["vaultId"] and has_marker(bucket)
    header = kubectl.run("-n", home, "get", "backuplocations", name).stdout.splitlines()[0]
    assert header.split() == ["NAME", "PHASE", "LAST", "VALIDATED", "URL", "SHAREABLE", "AGE"]

    # The bucket goes away: the availability check sees it, and so does the object.
    shutil.move(bucket, tmp_path / "elsewhere")
    vaults.check(name)
    obj = await asyncio.to_thread(kubectl.wait_phase, "backuplocation", name, home, {"Unavailable"})
    assert "vault.json" in obj["status"]["message"] or str(bucket) in obj["status"]["message"]
    shutil.move(tmp_path / "elsewhere", bucket)
    vaults.check(name)
    await asyncio.to_thread(kubectl.wait_phase, "backuplocation", name, home, {"Available"})

    # Its spec is immutable, at admission.
    done = kubectl.run("-n", home, "patch", "backuplocation", name, "--type", "merge",
                       "-p", '{"spec":{"description":"changed"}}', check=False)
    assert done.returncode != 0 and "spec cannot change" in done.stderr, done.stderr

    # A vault made with the CLI has its BackupLocation too.
    assert kubectl.wait_for(lambda: kubectl.get("backuplocation", product.vault, home), "BackupLocation main")

    kubectl.run("-n", home, "delete", "backuplocation", name)
    assert vaults.registry.get(name).deleted  # forgotten on this cluster; the bucket stays
    assert has_marker(bucket)


async def test_backup_schedule_is_the_plan(
    product: Product, controller: WorkerProcess, kubectl: Kubectl, kube_namespace: str
) -> None:
    home, ns = product.settings.product_namespace, kube_namespace
    product.kube.create(f"/api/v1/namespaces/{ns}/configmaps", {"metadata": {"name": "one"}, "data": {}})
    name = f"plan-{uuid.uuid4().hex[:6]}"
    kubectl.apply(f"""
apiVersion: backupcenter.io/v1alpha1
kind: BackupSchedule
metadata: {{name: {name}, namespace: {home}}}
spec:
  cycle: 6h
  template: {{vault: main, includeNamespaces: [{ns}]}}
""")
    obj = await asyncio.to_thread(kubectl.wait_phase, "backupschedule", name, home, {"Active", "Failed"})
    assert obj["status"]["phase"] == "Active", obj["status"]
    handle = product.client.get_schedule_handle(plan_schedule_id(name))
    desc = await handle.describe()
    assert describe_cycle(desc.schedule.spec) == "6h" and not desc.schedule.state.paused

    # A run (triggered, as `backupctl plan trigger` does): the object shows it and its result.
    await handle.trigger()
    def status() -> dict[str, Any]:
        found = kubectl.get("backupschedule", name, home)
        assert found is not None
        return dict(found["status"])

    ran = await asyncio.to_thread(
        kubectl.wait_for, lambda: (s := status()).get("lastResult") == "Completed" and s, "the result", 60
    )
    obj = {"status": ran}
    assert obj["status"]["lastRun"].startswith(f"{name}-") and obj["status"]["runs"] == 1
    assert obj["status"]["nextRun"]

    # Pausing stops it; a new cycle is the schedule's new cycle.
    kubectl.run("-n", home, "patch", "backupschedule", name, "--type", "merge",
                "-p", '{"spec":{"paused":true,"cycle":"0 3 * * *"}}')
    obj = await asyncio.to_thread(kubectl.wait_phase, "backupschedule", name, home, {"Paused"})
    desc = await handle.describe()
    assert desc.schedule.state.paused and describe_cycle(desc.schedule.spec) == "0 3 * * *"
    paused = await asyncio.to_thread(
        kubectl.wait_for, lambda: not (s := status()).get("nextRun") and s, "no next run while paused"
    )
    assert paused["cycle"] == "0 3 * * *"

    kubectl.run("-n", home, "delete", "backupschedule", name)
    with pytest.raises(RPCError):
        await handle.describe()


async def test_a_bad_cycle_is_refused_at_admission(product: Product, kubectl: Kubectl) -> None:
    home = product.settings.product_namespace
    done = kubectl.apply(f"""
apiVersion: backupcenter.io/v1alpha1
kind: BackupSchedule
metadata: {{name: bad-cycle, namespace: {home}}}
spec: {{cycle: every day, template: {{vault: main}}}}
""", check=False)
    assert done.returncode != 0 and "spec.cycle" in done.stderr, done.stderr
