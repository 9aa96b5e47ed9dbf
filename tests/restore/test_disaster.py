"""The disaster a backup exists for, with ECS snapshots off (tests/alicloud/test_cross_region.py has it
with them on): the application namespace is deleted (and every VolumeSnapshot of the cluster, and the
cluster itself), then restored from the backup alone — disk and NAS data byte for byte.  A snapshot lost
out of band fails its volume within seconds, with the cause, and the rest of the restore completes."""

from __future__ import annotations

import asyncio
import shutil
import time
from typing import Any

import pytest

from kube.restore.explain import ItemStatus
from kube.restore.records import RestoreFolder
from kube.snapshots import kept_name
from localdev.kube.agent import csi_mount_path
from localdev.kube.controlplane import LocalCluster
from schemas.status import JobPhase
from tests.backup.test_backup_workflow import owned_of, seed
from tests.localcluster.helpers import SNAPSHOTS, get, pvc_path, running_pod, wait_for
from tests.product_fixtures import Product
from tests.restore.helpers import backup, delete, outcomes, restore, unique
from tests.restore.test_cross_cluster import nas_files
from vault import catalog

pytestmark = [pytest.mark.cluster, pytest.mark.asyncio(loop_scope="session")]

DISK_FILE, DISK_DATA = "rows.db", b"row\n" * 1000


def new_namespace(product: Product) -> str:
    name = unique("dr")
    product.kube.create("/api/v1/namespaces", {"metadata": {"name": name}})
    return name


async def delete_namespace(product: Product, ns: str) -> None:
    """`kubectl delete namespace` and wait until it is really gone (its objects went with it)."""
    product.kube.delete(f"/api/v1/namespaces/{ns}")
    deadline = asyncio.get_running_loop().time() + 120
    while product.kube.get(f"/api/v1/namespaces/{ns}") is not None:
        assert asyncio.get_running_loop().time() < deadline, f"namespace {ns} still terminating"
        await asyncio.sleep(0.3)


def delete_every_volumesnapshot(product: Product) -> int:
    items, _ = product.kube.list(f"{SNAPSHOTS}/volumesnapshots")
    for item in items:
        meta = item["metadata"]
        product.kube.delete(f"{SNAPSHOTS}/namespaces/{meta['namespace']}/volumesnapshots/{meta['name']}")
    return len(items)


def mounted(kube: Any, cluster: Any, ns: str, pod: str, claim: str) -> Any:
    running = wait_for(lambda: running_pod(kube, ns, pod), f"restored pod {ns}/{pod} Running", timeout=90)
    volume = get(kube, pvc_path(ns, claim))["spec"]["volumeName"]
    root = cluster.kubelet_root(running["spec"]["nodeName"])
    return csi_mount_path(root, running["metadata"]["uid"], volume)


def app(product: Product, agent: Any, ns: str) -> dict[str, bytes]:
    """A disk volume (CSI snapshot) mounted by pod db and a NAS volume (file level) mounted by pod web."""
    seed(product, agent, ns, configmaps=2)
    return nas_files(product, agent, ns)


def check_data(product: Product, cluster: Any, ns: str, files: dict[str, bytes]) -> None:
    kube = product.kube
    assert (mounted(kube, cluster, ns, "db", "data") / DISK_FILE).read_bytes() == DISK_DATA
    shared = mounted(kube, cluster, ns, "web", "shared")
    assert {rel: (shared / rel).read_bytes() for rel in files} == files


@pytest.mark.parametrize("lagging_controller", [False, True], ids=["controller", "lagging-controller"])
async def test_restore_after_the_namespace_and_every_volumesnapshot_are_deleted(
    product: Product, kube_agent: Any, kube_cluster: Any, lagging_controller: bool
) -> None:
    """``lagging-controller``: the snapshot controller judges the deleted VolumeSnapshot on a stale
    view of its content (still Delete, as before the backup made it Retain) and deletes the content;
    the data stays (Retain when the driver deletes it) and the backup holds it through a content it
    makes again from the handle."""
    ns = new_namespace(product)
    kube_agent.faults.stale_snapshot_cache(lagging_controller)
    try:
        files = app(product, kube_agent, ns)
        name = await backup(product, ns)
        [content] = owned_of(product, name)
        source = content["spec"].get("source") or {}
        handle = source.get("snapshotHandle") or content["status"]["snapshotHandle"]
        if lagging_controller:
            assert content["metadata"]["name"] == kept_name(handle)
            assert content["spec"]["deletionPolicy"] == "Retain"
            assert content["metadata"]["annotations"]["backupcenter.io/deletion-policy"] == "Delete"
            store = product.ctx.vaults().store("main")
            (state,) = catalog.volume_records(store, name).snapshots  # type: ignore[union-attr]
            assert state.owned and (state.content, state.handle) == (kept_name(handle), handle)

        await delete_namespace(product, ns)
        delete_every_volumesnapshot(product)
        # The data is the backup's: neither went with the namespace nor with the VolumeSnapshots.
        assert (kube_agent.layout.snapshot_dir(handle) / "data" / DISK_FILE).read_bytes() == DISK_DATA
        assert [c["metadata"]["name"] for c in owned_of(product, name)] == [content["metadata"]["name"]]

        started = time.monotonic()
        status = await restore(product, name)
        assert status.phase is JobPhase.completed, (status.error, status.item_errors, status.render_table())
        assert time.monotonic() - started < 120
        assert "1 PVCs from snapshots" in (status.step("restore volumes").message or "")
        assert "1 filled by node workers" in (status.step("restore volumes").message or "")
        check_data(product, kube_cluster, ns, files)
        assert get(product.kube, f"/api/v1/namespaces/{ns}/configmaps/cfg-1")["data"] == {"i": "1"}

        # Deleting the backup still releases what it owns: no content left, the data gone.
        done = await delete(product, "backup", name)
        assert done.phase is JobPhase.completed, done.error
        assert owned_of(product, name) == []
        assert not kube_agent.layout.snapshot_dir(handle).exists()
    finally:
        kube_agent.faults.stale_snapshot_cache(False)
        product.kube.delete(f"/api/v1/namespaces/{ns}")


async def test_restore_into_a_fresh_cluster_after_the_source_cluster_lost_everything(
    product: Product, product_b: Product, cluster_b: LocalCluster, kube_agent: Any
) -> None:
    """Cluster A loses the namespace and every snapshot object (as if it were gone); cluster B, new,
    restores from the vault alone, re-creating the snapshot content from the recorded handle."""
    ns = new_namespace(product)
    try:
        files = app(product, kube_agent, ns)
        name = await backup(product, ns)
        [content] = owned_of(product, name)
        await delete_namespace(product, ns)
        delete_every_volumesnapshot(product)
        # Even the retained content may go with the cluster: Retain means the data stays.
        product.kube.delete(f"{SNAPSHOTS}/volumesnapshotcontents/{content['metadata']['name']}")
        wait_for(lambda: not owned_of(product, name), "the content gone from cluster A")

        status = await restore(product_b, name)
        assert status.phase is JobPhase.completed, (status.error, status.item_errors, status.render_table())
        check_data(product_b, cluster_b, ns, files)
    finally:
        product.kube.delete(f"/api/v1/namespaces/{ns}")
        product_b.kube.delete(f"/api/v1/namespaces/{ns}")


async def test_a_snapshot_lost_out_of_band_fails_its_volume_at_once(
    product: Product, kube_agent: Any
) -> None:
    ns = new_namespace(product)
    target = f"{ns}-r"
    original = product.settings_path.read_text()
    try:
        files = app(product, kube_agent, ns)
        name = await backup(product, ns)
        records = catalog.volume_records(product.ctx.vaults().store("main"), name)
        assert records is not None
        [state] = records.snapshots
        # The cloud lost the snapshot (deleted in its console, say): the driver answers "not found".
        shutil.rmtree(kube_agent.layout.snapshot_dir(state.handle))
        # A long readiness timeout: the volume must fail on the driver's answer, not on the clock.
        longer = original.replace("snapshot_ready_timeout: 8s", "snapshot_ready_timeout: 10m")
        product.settings_path.write_text(longer)

        started = time.monotonic()
        status = await restore(product, name, namespace_mapping={ns: target})
        elapsed = time.monotonic() - started
        assert status.phase is JobPhase.partially_failed, (status.error, status.render_table())
        assert elapsed < 90, f"the restore took {elapsed:.0f}s: it waited for the readiness timeout"
        assert int(status.summary["failed"]) >= 1
        [error] = [e for e in status.item_errors if "persistentvolumeclaims" in e.item]
        assert error.item.endswith(f"{target}/data")
        assert f"the snapshot of backup {name} for PVC {target}/data no longer exists" in error.message
        assert "snapshot not found" in error.message
        # The restore's outcomes count it as failed, and describe --missing explains it.
        failed = [o for o in outcomes(product, status.name) if o.status is ItemStatus.failed]
        assert [(o.kind, o.name) for o in failed] == [("PersistentVolumeClaim", "data")]
        store = product.ctx.vaults().store("main")
        folder = RestoreFolder.of(store, product.settings.cluster_id, status.name)
        explanations = folder.read_explanations()
        assert any("data" in e.message and "no longer exists" in e.message for e in explanations)
        # No warning pretends the missing claim merely waits for a pod.
        assert not any("not bound yet" in w.message for w in status.warnings)
        # Everything else came back: the NAS files, the config.
        shared = mounted(product.kube, kube_agent, target, "web", "shared")
        assert {rel: (shared / rel).read_bytes() for rel in files} == files
        assert get(product.kube, f"/api/v1/namespaces/{target}/configmaps/cfg-0")
        # Its temporary snapshot objects went at once.
        left = product.kube.list(f"{SNAPSHOTS}/namespaces/{target}/volumesnapshots")[0]
        assert left == []
    finally:
        product.settings_path.write_text(original)
        product.kube.delete(f"/api/v1/namespaces/{ns}")
        product.kube.delete(f"/api/v1/namespaces/{target}")


async def test_a_skipped_volume_phase_counts_its_objects_as_failed(product: Product, kube_agent: Any) -> None:
    """A snapshot that stays unready (transient: the operator decides) and the operator skips the phase:
    its PVCs count as failed and `describe --missing` says why, instead of failed=0 and nothing."""
    from backupctl import jobctl
    from tests.restore.helpers import finished, start_restore, wait_phase

    ns = new_namespace(product)
    target = f"{ns}-s"
    try:
        seed(product, kube_agent, ns, configmaps=1)
        name = await backup(product, ns)
        kube_agent.faults.snapshots_never_ready(True)
        try:
            restore_name, _ = await start_restore(product, name, namespace_mapping={ns: target})
            waiting = await wait_phase(product, "restore", restore_name, JobPhase.waiting_for_operator)
            assert waiting.current_step == "restore volumes"
            assert waiting.error is not None and waiting.error.code == "RestoreSnapshotNotReady"
            await jobctl.signal_job(product.client, "restore", restore_name, "skip")
            status = await finished(product, "restore", restore_name, 120)
        finally:
            kube_agent.faults.snapshots_never_ready(False)
        assert status.phase is JobPhase.partially_failed, status.render_table()
        failed = {(o.kind, o.name) for o in outcomes(product, restore_name) if o.status is ItemStatus.failed}
        assert ("PersistentVolumeClaim", "data") in failed
        assert int(status.summary["failed"]) == len(failed)
        assert (status.step("restore volumes").message or "").startswith("skipped by the operator")
        store = product.ctx.vaults().store("main")
        folder = RestoreFolder.of(store, product.settings.cluster_id, restore_name)
        explanations = list(folder.read_explanations())
        assert any(e.name == "data" and "skipped after" in e.message for e in explanations), explanations
        # The later phases ran: the config is there.
        assert get(product.kube, f"/api/v1/namespaces/{target}/configmaps/cfg-0")
    finally:
        product.kube.delete(f"/api/v1/namespaces/{ns}")
        product.kube.delete(f"/api/v1/namespaces/{target}")
