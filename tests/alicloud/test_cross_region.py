"""ECS disk snapshots end to end: two local clusters in two regions (cluster A in cn-hangzhou, cluster B in
cn-beijing) whose disk drivers register their snapshots with one local ECS endpoint, sharing a vault and
a snapshot store; product workers of each cluster with ECS snapshots on, talking to the endpoint through
the real aliyun SDK; the real Temporal dev server.

A backup in A records its ECS snapshots with the TTL as retention; a restore in B copies them into
cn-beijing (throttled, retried), restores the data byte for byte; a permission fault, a file-level volume
and a cancel behave as documented; deleting the backup deletes its ECS snapshots (or leaves retained ones).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from backupctl import jobctl
from kube.rest import Kube
from localdev.devenv import workers_in_process
from localdev.ecs_server import LocalEcsServer
from localdev.kube.agent import csi_mount_path
from localdev.kube.controlplane import LocalCluster
from schemas.ids import job_id
from schemas.status import JobPhase, StepState
from tests.alicloud.constants import KEY_ID, SECRET
from tests.localcluster.helpers import (
    SNAPSHOTS,
    create,
    get,
    pod,
    pvc,
    pvc_path,
    running_pod,
    snapshot,
    snapshot_path,
    status,
    wait_for,
)
from tests.product_fixtures import Product, worker_context
from tests.restore.helpers import backup, delete, finished, start_restore, unique, wait_phase
from vault import catalog
from workflows.restore import STEP_COPY

pytestmark = [pytest.mark.cluster, pytest.mark.asyncio(loop_scope="session")]

T = TypeVar("T")
REGION_A, REGION_B = "cn-hangzhou", "cn-beijing"
DISK_CLASS = "alicloud-disk-topology-alltype"
SECRET_NAME = "ecs-credentials"
SETTINGS = """
cluster_id: {cluster}
task_queue_prefix: {prefix}
snapshot_ready_timeout: 60s
operator_wait_timeout: 10m
node_pickup_timeout: 3s
enable_ecs_snapshot: true
ecs_endpoint: {endpoint}
cloud_credentials_secret: {secret}
"""


@dataclass
class Region:
    cluster: LocalCluster
    product: Product


@pytest.fixture(scope="module")
def ecs() -> Iterator[LocalEcsServer]:
    # 10 GiB/s for copies: a 20 GiB disk snapshot copies in 2 s of real time.
    with LocalEcsServer({KEY_ID: SECRET}, (REGION_A, REGION_B), copy_gib_per_second=10.0) as server:
        yield server


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("two-regions")
    dirs = {"store": root / "snapshot-store", "vault": root / "vault"}
    for path in dirs.values():
        path.mkdir()
    return dirs


def _cluster(region: str, ecs: LocalEcsServer, shared: dict[str, Path]) -> Iterator[LocalCluster]:
    with LocalCluster(
        agent="thread", region=region, ecs_endpoint=ecs.endpoint, snapshot_store=shared["store"]
    ) as cluster:
        kube = Kube(cluster.api_client())
        # The product's credentials, as a Secret in its namespace (setting cloud_credentials_secret).
        kube.create("/api/v1/namespaces", {"metadata": {"name": "backup-center"}}, exist_ok=True)
        kube.create(
            "/api/v1/namespaces/backup-center/secrets",
            {
                "metadata": {"name": SECRET_NAME},
                "stringData": {"AccessKeyId": KEY_ID, "AccessKeySecret": SECRET},
            },
        )
        yield cluster


@pytest.fixture(scope="module")
def cluster_a(ecs: LocalEcsServer, shared: dict[str, Path]) -> Iterator[LocalCluster]:
    yield from _cluster(REGION_A, ecs, shared)


@pytest.fixture(scope="module")
def cluster_b(ecs: LocalEcsServer, shared: dict[str, Path]) -> Iterator[LocalCluster]:
    yield from _cluster(REGION_B, ecs, shared)


async def _product(
    temporal: WorkflowEnvironment,
    cluster: LocalCluster,
    name: str,
    ecs: LocalEcsServer,
    shared: dict[str, Path],
) -> AsyncIterator[Product]:
    state = shared["vault"].parent / f"product-{name}"
    state.mkdir()
    settings_path = state / "settings.yaml"
    settings_path.write_text(
        SETTINGS.format(
            cluster=name, prefix=f"e{uuid.uuid4().hex[:6]}", endpoint=ecs.endpoint, secret=SECRET_NAME
        )
    )
    ctx = worker_context(settings_path, state, cluster.kubeconfig_path)
    ctx.vaults().create({"name": "main", "url": f"file://{shared['vault']}"})
    async with workers_in_process(temporal.client, ctx):
        yield Product(temporal.client, ctx, "main", shared["vault"], ctx.kube(), settings_path)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def region_a(
    temporal_env: WorkflowEnvironment, cluster_a: LocalCluster, ecs: LocalEcsServer, shared: dict[str, Path]
) -> AsyncIterator[Region]:
    async for product in _product(temporal_env, cluster_a, "cluster-a", ecs, shared):
        yield Region(cluster_a, product)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def region_b(
    temporal_env: WorkflowEnvironment, cluster_b: LocalCluster, ecs: LocalEcsServer, shared: dict[str, Path]
) -> AsyncIterator[Region]:
    async for product in _product(temporal_env, cluster_b, "cluster-b", ecs, shared):
        yield Region(cluster_b, product)


@pytest.fixture(autouse=True)
def no_faults(ecs: LocalEcsServer) -> Iterator[None]:
    yield
    ecs.faults.clear()


# --- helpers ---------------------------------------------------------------------------------------
def namespace(region: Region) -> str:
    name = unique("x")
    region.product.kube.create("/api/v1/namespaces", {"metadata": {"name": name}})
    return name


def disk_app(region: Region, ns: str) -> bytes:
    """Pod db mounting the disk claim data, which holds a file of random bytes; returns them."""
    kube = region.product.kube
    create(kube, ns, pvc("data", DISK_CLASS))
    create(kube, ns, pod("db", {"data": "data"}))
    running = wait_for(lambda: running_pod(kube, ns, "db"), "pod db Running")
    volume = wait_for(lambda: get(kube, pvc_path(ns, "data"))["spec"].get("volumeName"), "PVC data bound")
    root = region.cluster.kubelet_root(running["spec"]["nodeName"])
    mount = csi_mount_path(root, running["metadata"]["uid"], volume)
    blob = os.urandom(300 * 1024)
    (mount / "table.ibd").write_bytes(blob)
    return blob


def restored_bytes(region: Region, ns: str) -> bytes:
    kube = region.product.kube
    running = wait_for(lambda: running_pod(kube, ns, "db"), "restored pod db Running", timeout=60)
    volume = get(kube, pvc_path(ns, "data"))["spec"]["volumeName"]
    node, uid = running["spec"]["nodeName"], running["metadata"]["uid"]
    return (csi_mount_path(region.cluster.kubelet_root(node), uid, volume) / "table.ibd").read_bytes()


def records(region: Region, name: str) -> Any:
    found = catalog.volume_records(region.product.ctx.vaults().store("main"), name)
    assert found is not None
    return found


async def until(probe: Callable[[], T], what: str, timeout: float = 60.0) -> T:
    """Like wait_for, but yields to the event loop: this process's workers run the jobs meanwhile."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not (found := probe()):
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)
    return found


async def copy_heartbeat(product: Product, restore: str, timeout: float = 30.0) -> dict[str, Any]:
    """The latest heartbeat details of the restore's running copy activity."""
    handle = product.client.get_workflow_handle(job_id("restore", restore))
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        for pending in (await handle.describe()).raw_description.pending_activities:
            if pending.activity_type.name == "copy_snapshot_to_region" and pending.heartbeat_details.payloads:
                details = await product.client.data_converter.decode(pending.heartbeat_details.payloads)
                return dict(details[0])
        assert asyncio.get_running_loop().time() < deadline, "no heartbeat of the copy activity"
        await asyncio.sleep(0.3)


def copies_named(ecs: LocalEcsServer, restore: str) -> list[dict[str, Any]]:
    return [s for s in ecs.snapshots(REGION_B) if s["SnapshotName"].startswith(f"restore-{restore}-")]


# --- tests -----------------------------------------------------------------------------------------
async def test_backup_records_ecs_snapshots_with_the_ttl_as_retention(
    region_a: Region, ecs: LocalEcsServer
) -> None:
    ns = namespace(region_a)
    disk_app(region_a, ns)
    name = await backup(region_a.product, ns, ttl=timedelta(days=3, hours=2))
    state = records(region_a, name).snapshots[0]
    # The snapshot handle is the ECS snapshot id, of cluster A's region; retention is the TTL rounded up.
    assert state.handle.startswith("s-") and state.ecs_id == state.handle
    assert (state.ecs_region, state.size_gib, state.retention_days) == (REGION_A, 20, 4)
    assert records(region_a, name).region == REGION_A
    ecs_view = ecs.snapshot(state.ecs_id)
    assert ecs_view is not None and ecs_view["RegionId"] == REGION_A and ecs_view["RetentionDays"] == 4
    assert ecs_view["SourceDiskId"] == get(region_a.product.kube, pvc_path(ns, "data"))["spec"]["volumeName"]
    content = status(region_a.product.kube, f"{SNAPSHOTS}/volumesnapshotcontents/{state.content}")
    assert content["snapshotHandle"] == state.ecs_id
    final = await jobctl.job_status(region_a.product.client, "backup", name)
    assert final.summary["ecs_snapshots"] == f"1 in {REGION_A}: {state.ecs_id}"
    assert final.summary["ecs_retention_days"] == "4"
    # ModifySnapshotAttribute went through the SDK, signed with the product's key from its Secret.
    assert any(c.action == "ModifySnapshotAttribute" and c.access_key_id == KEY_ID for c in ecs.calls())


async def test_region_b_does_not_see_region_a_snapshots(region_a: Region, region_b: Region) -> None:
    """The shared store alone does not make a snapshot usable in another region (a restore must copy it)."""
    ns = namespace(region_a)
    disk_app(region_a, ns)
    name = await backup(region_a.product, ns)
    handle = records(region_a, name).snapshots[0].ecs_id
    kube_b = region_b.product.kube
    kube_b.create(
        f"{SNAPSHOTS}/volumesnapshotcontents",
        {
            "apiVersion": "snapshot.storage.k8s.io/v1",
            "kind": "VolumeSnapshotContent",
            "metadata": {"name": f"adopt-{ns}"},
            "spec": {
                "deletionPolicy": "Retain",
                "driver": "diskplugin.csi.alibabacloud.com",
                "source": {"snapshotHandle": handle},
                "volumeSnapshotRef": {"name": "adopted", "namespace": "default"},
            },
        },
    )
    try:
        path = f"{SNAPSHOTS}/volumesnapshotcontents/adopt-{ns}"
        error = wait_for(
            lambda: (status(kube_b, path).get("error") or {}).get("message"), "content error in cluster B"
        )
        assert error == f"failed to list snapshot {handle}: snapshot not found in region {REGION_B}"
    finally:
        kube_b.delete(f"{SNAPSHOTS}/volumesnapshotcontents/adopt-{ns}")


async def test_cross_region_restore_copies_snapshots_and_restores_the_data(
    region_a: Region, region_b: Region, ecs: LocalEcsServer
) -> None:
    ns = namespace(region_a)
    blob = disk_app(region_a, ns)
    name = await backup(region_a.product, ns)
    source = records(region_a, name).snapshots[0]
    # ECS throttles the first copy requests: the client backs off and the copy still happens once.
    seen = len(ecs.calls("CopySnapshot"))
    ecs.faults.throttle(3, action="CopySnapshot")

    restore_name, _ = await start_restore(region_b.product, name)
    final = await finished(region_b.product, "restore", restore_name, 300)
    assert final.phase is JobPhase.completed, (final.error, final.item_errors, final.render_table())

    copy_step = final.step(STEP_COPY)
    assert copy_step.state is StepState.succeeded
    assert copy_step.message is not None and copy_step.message.startswith(
        f"1 snapshots copied from {REGION_A} to {REGION_B}"
    )
    calls = ecs.calls("CopySnapshot")[seen:]
    assert [c.code for c in calls] == ["Throttling.User"] * 3 + [""]
    assert {c.region for c in calls} == {REGION_A}
    copies = copies_named(ecs, restore_name)
    assert len(copies) == 1
    copy = copies[0]
    assert (copy["SourceSnapshotId"], copy["SourceRegionId"], copy["Status"]) == (
        source.ecs_id,
        REGION_A,
        "accomplished",
    )
    assert copy["RetentionDays"] == source.retention_days
    assert final.summary["ecs_copies"] == f"1 in {REGION_B}: {copy['SnapshotId']}"
    # The data came across through the copy, byte for byte.
    assert restored_bytes(region_b, ns) == blob
    seconds = (copy_step.finished_at - copy_step.started_at).total_seconds()  # type: ignore[operator]
    print(f"\ncross-region copy step: {seconds:.1f}s for 1 snapshot of {copy['SourceDiskSize']} GiB")

    # The copies stay with the restore until it is deleted.
    removed = await delete(region_b.product, "restore", restore_name)
    assert removed.phase is JobPhase.completed, removed.error
    assert removed.step("delete ECS snapshots").message == "1 ECS snapshot copies deleted"
    assert ecs.snapshot(copy["SnapshotId"]) is None
    assert ecs.snapshot(source.ecs_id) is not None  # the backup's own snapshot stays


async def test_permission_denied_on_copy_fails_the_step_with_the_fix(
    region_a: Region, region_b: Region, ecs: LocalEcsServer
) -> None:
    ns = namespace(region_a)
    blob = disk_app(region_a, ns)
    name = await backup(region_a.product, ns)
    ecs.faults.deny("CopySnapshot")
    restore_name, _ = await start_restore(region_b.product, name)
    waiting = await wait_phase(region_b.product, "restore", restore_name, JobPhase.waiting_for_operator)
    assert waiting.current_step == STEP_COPY
    error = waiting.error
    assert error is not None and error.code == "CrossRegionFailed" and not error.retryable
    assert error.message.startswith("ECS snapshot cross region request failed: s-")
    assert "the ECS-snapshot related ram policy is missing: CopySnapshot" in error.message
    assert any("deploy/policies" in fix and "CopySnapshot" in fix for fix in error.fixes)
    assert copies_named(ecs, restore_name) == []

    # The operator fixes the policy and retries: the restore completes.
    ecs.faults.allow("CopySnapshot")
    await jobctl.signal_job(region_b.product.client, "restore", restore_name, "retry")
    final = await finished(region_b.product, "restore", restore_name, 300)
    assert final.phase is JobPhase.completed, (final.error, final.render_table())
    assert final.step(STEP_COPY).attempts == 2
    assert restored_bytes(region_b, ns) == blob


async def test_canceled_restore_deletes_its_copies(
    region_a: Region, region_b: Region, ecs: LocalEcsServer
) -> None:
    ns = namespace(region_a)
    disk_app(region_a, ns)
    name = await backup(region_a.product, ns)
    ecs.faults.slow_copies(10_000)  # the copy would take hours: it is still progressing when canceled
    restore_name, _ = await start_restore(region_b.product, name)
    copy = (await until(lambda: copies_named(ecs, restore_name), "the copy started in cn-beijing"))[0]
    assert copy["Status"] == "progressing"
    # The copy activity heartbeats its progress in percent (what the Web UI shows for it).
    beat = await copy_heartbeat(region_b.product, restore_name)
    assert beat["copy"] == copy["SnapshotId"] and beat["region"] == REGION_B
    assert 0 <= beat["percent"] < 100
    await jobctl.signal_job(region_b.product.client, "restore", restore_name, "cancel")
    final = await finished(region_b.product, "restore", restore_name, 120)
    assert final.phase is JobPhase.canceled
    assert final.summary["ecs_copies_deleted"] == 1
    assert ecs.snapshot(copy["SnapshotId"]) is None
    assert ecs.snapshot(records(region_a, name).snapshots[0].ecs_id) is not None  # the backup's own stays


async def test_file_level_volume_refused_across_regions(
    region_a: Region, region_b: Region, ecs: LocalEcsServer
) -> None:
    ns = namespace(region_a)
    kube = region_a.product.kube
    create(kube, ns, pvc("shared", "alibabacloud-cnfs-nas", modes=("ReadWriteMany",)))
    create(kube, ns, pod("web", {"site": "shared"}))
    wait_for(lambda: running_pod(kube, ns, "web"), "pod web Running")
    name = await backup(region_a.product, ns)
    assert records(region_a, name).files  # backed up at file level

    restore_name, _ = await start_restore(region_b.product, name)
    waiting = await wait_phase(region_b.product, "restore", restore_name, JobPhase.waiting_for_operator)
    assert waiting.current_step == STEP_COPY and waiting.error is not None
    assert waiting.error.code == "CrossRegionNonDisk"
    assert waiting.error.message == (
        f"only disk type PVs support cross-region restore in current version: {ns}/shared"
    )
    await jobctl.signal_job(region_b.product.client, "restore", restore_name, "cancel")
    assert (await finished(region_b.product, "restore", restore_name, 60)).phase is JobPhase.canceled
    assert region_b.product.kube.get(pvc_path(ns, "shared")) is None  # nothing of the volume restored


async def test_delete_backup_deletes_its_ecs_snapshots(region_a: Region, ecs: LocalEcsServer) -> None:
    ns = namespace(region_a)
    disk_app(region_a, ns)
    name = await backup(region_a.product, ns)
    snapshot_id = records(region_a, name).snapshots[0].ecs_id
    assert ecs.snapshot(snapshot_id) is not None
    seen = len(ecs.calls("DeleteSnapshot"))

    done = await delete(region_a.product, "backup", name)
    assert done.phase is JobPhase.completed, done.error
    assert done.step("delete ECS snapshots").message == "1 ECS snapshots deleted"
    assert ecs.snapshot(snapshot_id) is None
    # The product deleted it through the SDK (the driver's release of the content came after: not found).
    calls = ecs.calls("DeleteSnapshot")[seen:]
    assert [(c.access_key_id, c.region, c.code) for c in calls] == [(KEY_ID, REGION_A, "")]


async def test_delete_backup_leaves_retained_snapshots(region_a: Region, ecs: LocalEcsServer) -> None:
    kube = region_a.product.kube
    path = f"{SNAPSHOTS}/volumesnapshotclasses/alicloud-disk-snapshot"
    kube.patch(path, {"deletionPolicy": "Retain"})
    try:
        ns = namespace(region_a)
        disk_app(region_a, ns)
        name = await backup(region_a.product, ns)
        state = records(region_a, name).snapshots[0]
        assert state.deletion_policy == "Retain"
        done = await delete(region_a.product, "backup", name)
        assert done.phase is JobPhase.completed, done.error
        expected = f"0 ECS snapshots deleted; 1 left (snapshot class deletionPolicy Retain): {state.ecs_id}"
        assert done.step("delete ECS snapshots").message == expected
        assert done.summary["ecs_snapshots"] == expected
        assert ecs.snapshot(state.ecs_id) is not None
    finally:
        kube.patch(path, {"deletionPolicy": "Delete"})


async def test_local_driver_releases_the_ecs_snapshot_of_a_deleted_content(
    region_a: Region, ecs: LocalEcsServer
) -> None:
    """The disk driver's side, without the product: DeleteSnapshot follows a content with policy Delete."""
    ns = namespace(region_a)
    disk_app(region_a, ns)
    kube = region_a.product.kube
    # A class with retentionDays: the driver passes it to ECS when it cuts the snapshot.
    kube.create(
        f"{SNAPSHOTS}/volumesnapshotclasses",
        {
            "apiVersion": "snapshot.storage.k8s.io/v1",
            "kind": "VolumeSnapshotClass",
            "metadata": {"name": f"keep-9-days-{ns}"},
            "driver": "diskplugin.csi.alibabacloud.com",
            "deletionPolicy": "Delete",
            "parameters": {"retentionDays": "9"},
        },
    )
    create(kube, ns, snapshot("snap", "data", snapshot_class=f"keep-9-days-{ns}"))
    ready = wait_for(lambda: (s := status(kube, snapshot_path(ns, "snap"))).get("readyToUse") and s, "ready")
    content = f"{SNAPSHOTS}/volumesnapshotcontents/{ready['boundVolumeSnapshotContentName']}"
    handle = status(kube, content)["snapshotHandle"]
    found = ecs.snapshot(handle)
    assert found is not None and (found["RegionId"], found["Status"]) == (REGION_A, "accomplished")
    assert found["RetentionDays"] == 9
    assert (region_a.cluster.layout.snapshot_dir(handle) / "data" / "table.ibd").is_file()
    kube.delete(snapshot_path(ns, "snap"))
    wait_for(lambda: kube.get(content) is None, "content deleted")
    assert ecs.snapshot(handle) is None
    assert not region_a.cluster.layout.snapshot_dir(handle).exists()
    kube.delete(f"{SNAPSHOTS}/volumesnapshotclasses/keep-9-days-{ns}")


async def test_converted_nas_volume_is_copied_and_restored_in_another_region(
    region_a: Region, region_b: Region, ecs: LocalEcsServer
) -> None:
    """NAS files cannot cross regions, a conversion's disk snapshot can: convert in A, restore in B."""
    from tests.convert.test_convert import FILES, NAS, nas_backup
    from tests.convert.test_convert import start as start_conversion

    ns = namespace(region_a)
    name = await nas_backup(region_a.product, region_a.cluster, ns)
    conversion = await start_conversion(
        region_a.product,
        name,
        storage_class_mapping={NAS: DISK_CLASS},
        convert_to_access_modes=["ReadWriteOnce"],
    )
    converted = await finished(region_a.product, "convert", conversion, 180)
    assert converted.phase is JobPhase.completed, (converted.error, converted.item_errors)
    restore_name, _ = await start_restore(region_b.product, name, storage_class_mapping={NAS: DISK_CLASS})
    final = await finished(region_b.product, "restore", restore_name, 300)
    assert final.phase is JobPhase.completed, (final.error, final.item_errors, final.render_table())
    assert (final.step(STEP_COPY).message or "").startswith(
        f"1 snapshots copied from {REGION_A} to {REGION_B}"
    )
    [copy] = copies_named(ecs, restore_name)
    source = ecs.snapshot(copy["SourceSnapshotId"])
    assert source is not None and source["RegionId"] == REGION_A
    assert "1 PVCs from snapshots (1 converted)" in (final.step("restore volumes").message or "")
    kube = region_b.product.kube
    running = wait_for(lambda: running_pod(kube, ns, "web"), "restored pod web Running", timeout=60)
    volume = get(kube, pvc_path(ns, "shared"))["spec"]["volumeName"]
    mount = csi_mount_path(
        region_b.cluster.kubelet_root(running["spec"]["nodeName"]), running["metadata"]["uid"], volume
    )
    for rel, data in FILES.items():
        assert (mount / rel).read_bytes() == data, rel


# --- the disaster: the namespace is deleted, the backup's ECS snapshots stay ---------------------------
async def delete_namespace(region: Region, ns: str) -> None:
    kube = region.product.kube
    kube.delete(f"/api/v1/namespaces/{ns}")
    await until(lambda: kube.get(f"/api/v1/namespaces/{ns}") is None, f"namespace {ns} gone", timeout=120)


async def test_namespace_deleted_then_restored_with_its_ecs_snapshot(
    region_a: Region, ecs: LocalEcsServer
) -> None:
    ns = namespace(region_a)
    try:
        blob = disk_app(region_a, ns)
        name = await backup(region_a.product, ns)
        state = records(region_a, name).snapshots[0]
        assert state.owned and state.ecs_id
        await delete_namespace(region_a, ns)
        # Deleting the namespace deleted no ECS snapshot: the backup owns it, not the namespace.
        assert ecs.snapshot(state.ecs_id) is not None

        restore_name, _ = await start_restore(region_a.product, name)
        final = await finished(region_a.product, "restore", restore_name, 300)
        assert final.phase is JobPhase.completed, (final.error, final.item_errors, final.render_table())
        assert restored_bytes(region_a, ns) == blob

        done = await delete(region_a.product, "backup", name)
        assert done.phase is JobPhase.completed, done.error
        assert ecs.snapshot(state.ecs_id) is None
        assert not region_a.cluster.layout.snapshot_dir(state.ecs_id).exists()
        labelled = region_a.product.kube.list(
            f"{SNAPSHOTS}/volumesnapshotcontents", labelSelector=f"backupcenter.io/backup={name}"
        )[0]
        assert labelled == []
    finally:
        region_a.product.kube.delete(f"/api/v1/namespaces/{ns}")


async def test_ecs_snapshot_deleted_out_of_band_fails_the_volume_at_once(
    region_a: Region, ecs: LocalEcsServer
) -> None:
    from alicloud import snapshots as ecs_snapshots

    ns = namespace(region_a)
    target = f"{ns}-r"
    product = region_a.product
    original = product.settings_path.read_text()
    try:
        disk_app(region_a, ns)
        create(product.kube, ns, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}})
        name = await backup(product, ns)
        state = records(region_a, name).snapshots[0]
        client = ecs_snapshots.client(product.kube, product.settings, REGION_A)
        assert client.delete_snapshot(state.ecs_id, missing_ok=True)
        longer = original.replace("snapshot_ready_timeout: 60s", "snapshot_ready_timeout: 10m")
        product.settings_path.write_text(longer)

        started = asyncio.get_running_loop().time()
        restore_name, _ = await start_restore(product, name, namespace_mapping={ns: target})
        final = await finished(product, "restore", restore_name, 300)
        elapsed = asyncio.get_running_loop().time() - started
        assert final.phase is JobPhase.partially_failed, (final.error, final.render_table())
        assert elapsed < 90, f"{elapsed:.0f}s: the restore waited for the readiness timeout"
        [error] = [e for e in final.item_errors if "persistentvolumeclaims" in e.item]
        assert f"the snapshot of backup {name} for PVC {target}/data no longer exists" in error.message
        assert f"snapshot not found in region {REGION_A}" in error.message
        assert get(product.kube, f"/api/v1/namespaces/{target}/configmaps/cfg")
    finally:
        product.settings_path.write_text(original)
        product.kube.delete(f"/api/v1/namespaces/{ns}")
        product.kube.delete(f"/api/v1/namespaces/{target}")
