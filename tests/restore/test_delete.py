"""Delete requests on the backup's source cluster: snapshots, vault data and the job name go, so a
new backup of the same name succeeds; a restore's job and working data go, its objects stay."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from backupctl import jobctl
from backupctl.delete_cmd import request_name
from kube.restore.records import restore_prefix
from schemas.errors import BackupCenterError
from schemas.specs import DeleteSpec, JobKind
from schemas.status import JobPhase, StepState
from tests.backup.test_backup_workflow import owned_of, seed
from tests.localcluster.helpers import SNAPSHOTS
from tests.product_fixtures import Product
from tests.restore.helpers import backup, delete, restore
from vault import catalog
from workflows.delete import DeleteWorkflow

pytestmark = pytest.mark.cluster


async def test_delete_backup_frees_the_name_and_removes_its_snapshots(
    product: Product, kube_agent: Any, kube_namespace: str
) -> None:
    ns = kube_namespace
    seed(product, kube_agent, ns, configmaps=1)
    name = await backup(product, ns)
    [content] = owned_of(product, name)
    data = kube_agent.layout.snapshot_dir(content["status"]["snapshotHandle"])
    assert (data / "data" / "rows.db").is_file()

    status = await delete(product, "backup", name)
    assert status.phase is JobPhase.completed, status.error
    assert [s.state for s in status.steps] == [StepState.succeeded] * 4
    assert status.step("delete cluster objects").message == "1 snapshots deleted"
    # The retained content and the short-lived one that released the data are gone, and so is the data.
    assert owned_of(product, name) == [] and not data.exists()
    selector = f"backupcenter.io/backup={name}"
    assert product.kube.list(f"{SNAPSHOTS}/volumesnapshotcontents", labelSelector=selector)[0] == []
    store = product.ctx.vaults().store(product.vault)
    assert list(store.list(catalog.backup_prefix(name))) == []
    with pytest.raises(BackupCenterError, match="not found"):
        await jobctl.job_status(product.client, "backup", name)

    assert await backup(product, ns, name=name) == name  # the name is free again
    again = await delete(product, "backup", name)  # and deleting twice is fine too
    assert again.phase is JobPhase.completed


async def test_delete_restore_frees_its_name_keeps_its_objects(product: Product, kube_namespace: str) -> None:
    source, kube = kube_namespace, product.kube
    kube.create(f"/api/v1/namespaces/{source}/configmaps", {"metadata": {"name": "kept"}})
    backup_name = await backup(product, source, volume_data=False)
    target = f"{source}-d"
    try:
        first = await restore(product, backup_name, namespace_mapping={source: target})
        store = product.ctx.vaults().store(product.vault)
        prefix = restore_prefix(product.settings.cluster_id, first.name)
        assert list(store.list(prefix))

        status = await delete(product, "restore", first.name)
        assert status.phase is JobPhase.completed, status.error
        assert list(store.list(prefix)) == []
        assert kube.get(f"/api/v1/namespaces/{target}/configmaps/kept")  # restored objects stay
        again = await restore(product, backup_name, name=first.name, namespace_mapping={source: target})
        assert again.phase is JobPhase.completed
    finally:
        kube.delete(f"/api/v1/namespaces/{target}")


async def test_delete_of_an_unknown_backup_fails_at_once(product: Product) -> None:
    """Started anyway (the CLI refuses it before), the delete ends Failed at validate: "not found"
    is final, no operator action within the job can mend it."""
    name = request_name(JobKind.backup, "no-such-backup")
    spec = DeleteSpec(name=name, target_kind=JobKind.backup, target="no-such-backup")
    handle = await jobctl.start_job(product.client, product.settings, "delete", name, DeleteWorkflow.run,
                                    spec, summary="test delete of a missing backup")
    result = await asyncio.wait_for(handle.result(), 30)
    assert result.phase is JobPhase.failed
    assert result.error is not None and result.error.message == "backup 'no-such-backup' not found"
    assert result.step("validate").state is StepState.failed


async def test_a_corrupt_backup_blocks_no_other_delete_and_can_itself_be_deleted(
    product: Product, kube_namespace: str
) -> None:
    product.kube.create(f"/api/v1/namespaces/{kube_namespace}/configmaps", {"metadata": {"name": "c"}})
    damaged = await backup(product, kube_namespace, volume_data=False)
    other = await backup(product, kube_namespace, volume_data=False)
    store = product.ctx.vaults().store(product.vault)
    for record in ("backup.json", "volumes.json"):
        store.put(catalog.backup_prefix(damaged) + record, b"{not json")

    done = await delete(product, "backup", other)
    assert done.phase is JobPhase.completed, done.error
    assert list(store.list(catalog.backup_prefix(other))) == []
    # Deleting the damaged backup is what its VaultObjectCorrupt error advises: it works.
    gone = await delete(product, "backup", damaged)
    assert gone.phase is JobPhase.completed, gone.error
    assert list(store.list(catalog.backup_prefix(damaged))) == []
