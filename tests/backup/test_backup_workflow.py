"""Backup end to end: real kube-apiserver + local agent, real Temporal dev server, file vault."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from backupctl import jobctl
from kube.export import read_bundle, read_index
from localdev.kube.agent import csi_mount_path
from schemas.errors import BackupCenterError
from schemas.specs import BackupSpec
from schemas.status import JobPhase, JobStatus, StepState
from tests.localcluster.helpers import (
    SNAPSHOTS,
    create,
    get,
    owned_contents,
    pod,
    pvc,
    pvc_path,
    running_pod,
    wait_for,
)
from tests.product_fixtures import Product
from vault import catalog
from workflows.backup import BackupWorkflow

pytestmark = [pytest.mark.cluster, pytest.mark.asyncio(loop_scope="session")]


def seed(product: Product, agent: Any, ns: str, *, configmaps: int = 5) -> str:
    """An app with config, a secret, a deployment and a mounted disk volume holding a file."""
    kube = product.kube
    for i in range(configmaps):
        kube.create(
            f"/api/v1/namespaces/{ns}/configmaps",
            {"metadata": {"name": f"cfg-{i}", "labels": {"app": "web"}}, "data": {"i": str(i)}},
        )
    kube.create(
        f"/api/v1/namespaces/{ns}/secrets",
        {"metadata": {"name": "creds"}, "stringData": {"password": "s3cret"}},
    )
    kube.create(
        f"/apis/apps/v1/namespaces/{ns}/deployments",
        {
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
                },
            },
        },
    )
    create(kube, ns, pvc("data", "alicloud-disk-topology-alltype"))
    create(kube, ns, pod("db", {"data": "data"}))
    running = wait_for(lambda: running_pod(kube, ns, "db"), "pod db Running")
    pv = wait_for(lambda: get(kube, pvc_path(ns, "data"))["spec"].get("volumeName"), "PVC data bound")
    mount = csi_mount_path(agent.kubelet_root(running["spec"]["nodeName"]), running["metadata"]["uid"], pv)
    (mount / "rows.db").write_bytes(b"row\n" * 1000)
    return pv


async def start(product: Product, spec: BackupSpec) -> Any:
    return await jobctl.start_job(
        product.client,
        product.settings,
        "backup",
        spec.name,
        BackupWorkflow.run,
        spec,
        vault=spec.vault,
        summary=f"test backup {spec.name}",
    )


async def wait_phase(product: Product, name: str, phase: JobPhase, timeout: float = 60) -> JobStatus:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        status = await jobctl.job_status(product.client, "backup", name)
        if status.phase is phase:
            return status
        assert not status.phase.finished, f"backup ended {status.phase}: {status.error}"
        assert asyncio.get_running_loop().time() < deadline, f"still {status.phase} at {status.current_step}"
        await asyncio.sleep(0.2)


def snapshots_of(product: Product, ns: str, backup: str) -> list[dict[str, Any]]:
    """The backup's VolumeSnapshots in the application namespace (only while they are cut)."""
    items, _ = product.kube.list(
        f"{SNAPSHOTS}/namespaces/{ns}/volumesnapshots", labelSelector=f"backupcenter.io/backup={backup}"
    )
    return items


def owned_of(product: Product, backup: str) -> list[dict[str, Any]]:
    """The snapshot contents the backup took over (Retain, labelled with it)."""
    return owned_contents(product.kube, f"backupcenter.io/backup={backup}")


async def test_backup_completes_with_resources_and_snapshots(
    product: Product, kube_agent: Any, kube_namespace: str
) -> None:
    ns = kube_namespace
    seed(product, kube_agent, ns)
    name = f"b-{uuid.uuid4().hex[:8]}"
    handle = await start(product, BackupSpec(name=name, vault="main", include_namespaces=[ns]))
    result: JobStatus = await handle.result()
    assert result.phase is JobPhase.completed, result.error
    assert [s.state for s in result.steps] == [StepState.succeeded] * 7 + [
        StepState.skipped,
        StepState.succeeded,
    ]

    store = product.ctx.vaults().store("main")
    record = catalog.get_backup(store, name)
    assert record.state.value == "Committed" and record.record is not None
    assert record.record.source_cluster == "cluster-a"
    index = read_index(store, name)
    counts = {(b.group, b.plural): b.count for b in index.bundles if b.preferred}
    assert counts[("", "configmaps")] == 6  # five of ours + kube-root-ca.crt
    assert counts[("", "secrets")] >= 1 and counts[("apps", "deployments")] == 1
    assert counts[("", "persistentvolumeclaims")] == 1
    assert counts[("", "persistentvolumes")] == 1  # related cluster-scoped object
    assert counts[("storage.k8s.io", "storageclasses")] == 1
    assert counts[("", "namespaces")] == 1
    deployments = next(b for b in index.bundles if b.plural == "deployments" and b.preferred)
    (dep,) = list(read_bundle(store, deployments.key))
    assert (
        dep["kind"] == "Deployment"
        and dep["apiVersion"] == "apps/v1"
        and "managedFields" not in dep["metadata"]
    )

    # The backup owns its snapshot: the content is Retain (the class's Delete is kept for deleting
    # the backup), and the VolumeSnapshot in the application namespace is gone.
    assert snapshots_of(product, ns, name) == []
    (content,) = owned_of(product, name)
    assert content["status"]["readyToUse"] is True and content["spec"]["deletionPolicy"] == "Retain"
    assert content["metadata"]["annotations"]["backupcenter.io/deletion-policy"] == "Delete"
    (state,) = catalog.volume_records(store, name).snapshots  # type: ignore[union-attr]
    assert state.owned and state.content == content["metadata"]["name"]
    assert (state.handle, state.source_volume_mode) == (content["status"]["snapshotHandle"], "Filesystem")
    assert result.step("wait snapshots ready").progress is not None

    # The name is taken now, in Temporal and in the vault.
    with pytest.raises(BackupCenterError, match=f"backup name '{name}' is already in use"):
        await start(product, BackupSpec(name=name, vault="main", include_namespaces=[ns]))


async def test_missing_namespaces_fail_with_get_target_namespace_failed(product: Product) -> None:
    """A permanent error no operator action can mend ends the job Failed at once (as the reference
    fails such a run), instead of holding it (and its plan) waiting for an operator."""
    name = f"b-{uuid.uuid4().hex[:8]}"
    started = asyncio.get_running_loop().time()
    handle = await start(
        product, BackupSpec(name=name, vault="main", include_namespaces=["gone-1", "gone-2"])
    )
    result: JobStatus = await asyncio.wait_for(handle.result(), 30)
    assert asyncio.get_running_loop().time() - started < 15
    assert result.phase is JobPhase.failed
    assert result.error is not None and result.error.code == "NoTargetNamespace"
    assert result.error.short().startswith("BackupError: get target namespace failed")
    assert result.step("resolve namespaces").state is StepState.failed
    assert all(s.state is StepState.canceled for s in result.steps[3:]), result.steps
    assert any("plan delete" in fix for fix in result.error.fixes)
    # The failure is recorded in the vault (the name stays taken until the backup is deleted).
    store = product.ctx.vaults().store("main")
    assert catalog.get_backup(store, name).state.value == "Failed"


async def test_snapshot_never_ready_waits_for_operator_then_retry_completes(
    product: Product, kube_agent: Any, kube_namespace: str
) -> None:
    ns = kube_namespace
    seed(product, kube_agent, ns, configmaps=1)
    kube_agent.faults.snapshots_never_ready(True)
    try:
        name = f"b-{uuid.uuid4().hex[:8]}"
        handle = await start(product, BackupSpec(name=name, vault="main", include_namespaces=[ns]))
        status = await wait_phase(product, name, JobPhase.waiting_for_operator, timeout=90)
        assert status.current_step == "wait snapshots ready"
        assert status.error is not None and status.error.code == "SnapshotNotReady"
        assert f"of PVC {ns}/data was not ready within 8s" in status.error.message
        assert any("snapshot" in f.lower() for f in status.error.fixes)
    finally:
        kube_agent.faults.snapshots_never_ready(False)
    await handle.signal(BackupWorkflow.retry)
    result: JobStatus = await handle.result()
    assert result.phase is JobPhase.completed
    assert result.step("wait snapshots ready").attempts == 2


async def test_cancel_removes_snapshots_and_vault_objects(
    product: Product, kube_agent: Any, kube_namespace: str
) -> None:
    ns = kube_namespace
    seed(product, kube_agent, ns, configmaps=1)
    kube_agent.faults.snapshots_never_ready(True)
    try:
        name = f"b-{uuid.uuid4().hex[:8]}"
        handle = await start(product, BackupSpec(name=name, vault="main", include_namespaces=[ns]))
        await wait_phase(product, name, JobPhase.waiting_for_operator, timeout=90)
        assert len(snapshots_of(product, ns, name)) == 1
        store = product.ctx.vaults().store("main")
        assert list(store.list(catalog.backup_prefix(name)))  # exported, not committed
        await handle.signal(BackupWorkflow.cancel)
        result: JobStatus = await handle.result()
    finally:
        kube_agent.faults.snapshots_never_ready(False)
    assert result.phase is JobPhase.canceled
    assert snapshots_of(product, ns, name) == [] and owned_of(product, name) == []
    assert list(store.list(catalog.backup_prefix(name))) == []
    assert result.step("commit").state is StepState.canceled


async def test_label_selector_applies_to_volumes(
    product: Product, kube_agent: Any, kube_namespace: str
) -> None:
    """`--selector` exports the labelled objects only, and protects the labelled PVCs only: an
    unlabelled PVC is neither snapshotted nor copied (its data could never be restored)."""
    ns, kube = kube_namespace, product.kube
    seed(product, kube_agent, ns, configmaps=1)  # PVC "data", unlabelled, mounted by pod db
    kept = pvc("kept", "alicloud-disk-topology-alltype")
    kept["metadata"]["labels"] = {"tier": "keep"}
    create(kube, ns, kept)
    create(kube, ns, pod("keeper", {"k": "kept"}))
    wait_for(lambda: running_pod(kube, ns, "keeper"), "pod keeper Running")
    name = f"b-{uuid.uuid4().hex[:8]}"
    spec = BackupSpec(name=name, vault="main", include_namespaces=[ns], label_selector="tier=keep")
    result: JobStatus = await asyncio.wait_for((await start(product, spec)).result(), 120)
    assert result.phase is JobPhase.completed, result.error
    records = catalog.volume_records(product.ctx.vaults().store("main"), name)
    assert records is not None
    assert [s.pvc for s in records.snapshots] == ["kept"] and records.files == {}
    assert [c["spec"]["volumeSnapshotRef"]["name"] for c in owned_of(product, name)] == [
        records.snapshots[0].snapshot
    ]
