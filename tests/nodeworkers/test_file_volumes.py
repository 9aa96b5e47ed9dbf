"""File-level volumes end to end: NAS volumes copied by the node worker of a node they are mounted
on, the scheduling policy honoured, a missing node worker named, data restorable byte for byte."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import uuid
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from datamover import restore_tree
from kube.rest import Kube
from localdev.kube.agent import csi_mount_path
from schemas.specs import BackupSpec
from schemas.status import JobPhase, JobStatus
from tests.backup.test_backup_workflow import start, wait_phase
from tests.localcluster.helpers import create, get, pod, pvc, pvc_path, running_pod, wait_for
from tests.product_fixtures import Product
from tests.restore.helpers import delete
from vault import catalog
from workflows.backup import BackupWorkflow

pytestmark = [pytest.mark.cluster, pytest.mark.asyncio(loop_scope="session")]

NAS = "alibabacloud-cnfs-nas"
EXCLUDED = "backupcenter.io/agent-excluded"


def pinned(name: str, claims: dict[str, str], node: str) -> dict[str, Any]:
    obj = pod(name, claims)
    obj["spec"]["nodeName"] = node
    return obj


def shared_volume(kube: Kube, agent: Any, ns: str, nodes: list[str]) -> tuple[dict[str, bytes], list[str]]:
    """A NAS volume mounted by one pod on each node; returns the files written and the pods' nodes."""
    create(kube, ns, pvc("shared", NAS, modes=("ReadWriteMany",)))
    for i, node in enumerate(nodes):
        create(kube, ns, pinned(f"reader-{i}", {"data": "shared"}, node))
    first = wait_for(lambda: running_pod(kube, ns, "reader-0"), "pod reader-0 Running")
    pv = wait_for(lambda: get(kube, pvc_path(ns, "shared"))["spec"].get("volumeName"), "NAS PVC bound")
    mount = csi_mount_path(agent.kubelet_root(first["spec"]["nodeName"]), first["metadata"]["uid"], pv)
    files = {
        "index.html": b"<h1>hello</h1>\n",
        "assets/big.bin": hashlib.sha256(b"seed").digest() * 40_000,
        "assets/empty.txt": b"",
    }
    for rel, data in files.items():
        (mount / rel).parent.mkdir(parents=True, exist_ok=True)
        (mount / rel).write_bytes(data)
    for i in range(1, len(nodes)):
        wait_for(partial(running_pod, kube, ns, f"reader-{i}"), f"pod reader-{i} Running")
    return files, nodes


def label_node(kube: Kube, node: str, value: str | None) -> None:
    kube.patch(f"/api/v1/nodes/{node}", {"metadata": {"labels": {EXCLUDED: value}}})


async def test_nas_volume_is_copied_on_an_eligible_node_and_restores_byte_identical(
    product: Product, kube_agent: Any, kube_namespace: str, tmp_path: Path
) -> None:
    files, _ = shared_volume(product.kube, kube_agent, kube_namespace, ["node-a1", "node-a2"])
    label_node(product.kube, "node-a1", "true")
    try:
        name = f"f-{uuid.uuid4().hex[:8]}"
        handle = await start(
            product, BackupSpec(name=name, vault="main", include_namespaces=[kube_namespace])
        )
        result: JobStatus = await asyncio.wait_for(handle.result(), 120)
    finally:
        label_node(product.kube, "node-a1", None)
    assert result.phase is JobPhase.completed, result.error
    # Truthful steps: a finished job has every step Succeeded or Skipped (nothing failed here), and
    # each step ran once, though "snapshot volumes" runs more than one activity.
    states = {s.name: s.state.value for s in result.steps}
    assert set(states.values()) <= {"Succeeded", "Skipped"}, states
    assert states["wait snapshots ready"] == "Skipped" and states["snapshot volumes"] == "Succeeded"
    assert result.step("snapshot volumes").attempts == 1
    assert result.step("wait snapshots ready").message == "no disk volumes to snapshot"
    ref = f"{kube_namespace}/shared"
    step = result.step(f"volume {ref}")
    assert step.state.value == "Succeeded"
    assert step.message and step.message.startswith("on node node-a2: 3 files")
    # node-a1 is excluded: the copy ran on node-a2's worker.
    history = [e async for e in handle.fetch_history_events()]
    queues = {
        e.activity_task_scheduled_event_attributes.task_queue.name
        for e in history
        if e.HasField("activity_task_scheduled_event_attributes")
        and e.activity_task_scheduled_event_attributes.activity_type.name == "backup_volume_files"
    }
    assert queues == {f"{product.settings.task_queue_prefix}-node-node-a2"}

    store = product.ctx.vaults().store("main")
    records = catalog.volume_records(store, name)
    assert records is not None
    snapshot = records.files[ref]
    restore_tree(store, snapshot, tmp_path / "restored")
    for rel, data in files.items():
        assert (tmp_path / "restored" / rel).read_bytes() == data

    # A second backup reads the same volume incrementally: nothing new is uploaded.
    again = f"f-{uuid.uuid4().hex[:8]}"
    second: JobStatus = await asyncio.wait_for(
        (
            await start(product, BackupSpec(name=again, vault="main", include_namespaces=[kube_namespace]))
        ).result(),
        120,
    )
    assert second.phase is JobPhase.completed
    assert second.step(f"volume {ref}").message.endswith(" 0 new")  # type: ignore[union-attr]


async def test_no_eligible_node_waits_for_operator_and_skip_ends_partially_failed(
    product: Product, kube_agent: Any, kube_namespace: str
) -> None:
    shared_volume(product.kube, kube_agent, kube_namespace, ["node-b1"])
    label_node(product.kube, "node-b1", "true")
    try:
        name = f"f-{uuid.uuid4().hex[:8]}"
        handle = await start(
            product, BackupSpec(name=name, vault="main", include_namespaces=[kube_namespace])
        )
        status = await wait_phase(product, name, JobPhase.waiting_for_operator)
    finally:
        label_node(product.kube, "node-b1", None)
    assert status.error is not None and status.error.code == "NoEligibleNode"
    assert f"no eligible node for volume {kube_namespace}/shared" in status.error.message
    assert "node-b1: labelled backupcenter.io/agent-excluded=true" in status.error.message
    await handle.signal(BackupWorkflow.skip)
    result: JobStatus = await asyncio.wait_for(handle.result(), 120)
    assert result.phase is JobPhase.partially_failed
    assert [e.item for e in result.item_errors] == [f"persistentvolumeclaims/{kube_namespace}/shared"]


async def test_node_without_a_worker_is_named(product: Product, kube_agent: Any, kube_namespace: str) -> None:
    kube = product.kube
    node = f"node-x{uuid.uuid4().hex[:4]}"
    kube.create(
        "/api/v1/nodes",
        {"metadata": {"name": node, "labels": {"topology.kubernetes.io/zone": "cn-hangzhou-a"}}},
    )
    try:
        create(kube, kube_namespace, pvc("shared", NAS, modes=("ReadWriteMany",)))
        wait_for(
            lambda: get(kube, pvc_path(kube_namespace, "shared"))["spec"].get("volumeName"), "NAS PVC bound"
        )
        create(kube, kube_namespace, pinned("lonely", {"data": "shared"}, node))
        name = f"f-{uuid.uuid4().hex[:8]}"
        handle = await start(
            product, BackupSpec(name=name, vault="main", include_namespaces=[kube_namespace])
        )
        status = await wait_phase(product, name, JobPhase.waiting_for_operator)
        assert status.error is not None and status.error.code == "NodeAgentMissing"
        assert status.error.message == (
            f"ClientNotExist: no node worker picked up volume {kube_namespace}/shared "
            f"on node {node} within 0:00:03"
        )
        await handle.signal(BackupWorkflow.cancel)
        assert (await handle.result()).phase is JobPhase.canceled
    finally:
        kube.delete(f"/api/v1/nodes/{node}")


async def test_data_protection_reads_an_unmounted_volume_through_a_temporary_pod(
    product: Product, kube_namespace: str
) -> None:
    kube = product.kube
    create(kube, kube_namespace, pvc("cold", NAS, modes=("ReadWriteMany",)))
    wait_for(lambda: get(kube, pvc_path(kube_namespace, "cold"))["spec"].get("volumeName"), "NAS PVC bound")
    name = f"f-{uuid.uuid4().hex[:8]}"
    handle = await start(
        product,
        BackupSpec(name=name, vault="main", mode="data-protection", include_namespaces=[kube_namespace]),
    )
    result: JobStatus = await asyncio.wait_for(handle.result(), 120)
    assert result.phase is JobPhase.completed, result.error
    assert result.step(f"volume {kube_namespace}/cold").message.startswith("on node ")  # type: ignore[union-attr]
    # The temporary pod is gone (deleted; its kubelet finishes it shortly after).
    wait_for(lambda: not kube.list(f"/api/v1/namespaces/{kube_namespace}/pods")[0], "temporary pod removed")


async def test_deleting_a_backup_collects_its_volume_data(
    product: Product, kube_agent: Any, kube_namespace: str
) -> None:
    shared_volume(product.kube, kube_agent, kube_namespace, ["node-b1"])
    original = product.settings_path.read_text()
    product.settings_path.write_text(original + "pack_gc_grace: 1s\n")
    try:
        name = f"f-{uuid.uuid4().hex[:8]}"
        handle = await start(
            product, BackupSpec(name=name, vault="main", include_namespaces=[kube_namespace])
        )
        assert (await asyncio.wait_for(handle.result(), 120)).phase is JobPhase.completed
        store = product.ctx.vaults().store("main")
        records = catalog.volume_records(store, name)
        assert records is not None
        (snapshot,) = records.files.values()
        assert store.exists(f"data/snapshots/{snapshot}")
        await asyncio.sleep(1.5)  # past the grace period
        deleted = await delete(product, "backup", name, vault="main")
        assert deleted.phase is JobPhase.completed, deleted.error
        assert not store.exists(f"data/snapshots/{snapshot}")
        # Other backups' data stays restorable.
        for ref_snapshot in catalog.live_file_snapshots(store).ids:
            assert store.exists(f"data/snapshots/{ref_snapshot}")
    finally:
        product.settings_path.write_text(original)


async def test_a_long_copy_shows_its_progress_while_it_runs(
    product: Product, kube_agent: Any, kube_namespace: str
) -> None:
    """Files and bytes done, throughput and ETA of a running copy reach `describe` (jobctl.job_status)
    while it runs, refreshed every few seconds (the workers' heartbeat throttle), not only at its end."""
    from backupctl import jobctl

    ns, kube = kube_namespace, product.kube
    create(kube, ns, pvc("many", NAS, modes=("ReadWriteMany",)))
    create(kube, ns, pinned("reader", {"data": "many"}, "node-a1"))
    running = wait_for(lambda: running_pod(kube, ns, "reader"), "pod reader Running")
    pv = wait_for(lambda: get(kube, pvc_path(ns, "many"))["spec"].get("volumeName"), "NAS PVC bound")
    mount = csi_mount_path(kube_agent.kubelet_root("node-a1"), running["metadata"]["uid"], pv)
    for d in range(400):  # 160,000 small files: a copy of several seconds (reader processes read ~20k/s)
        folder = mount / f"d{d:03d}"
        folder.mkdir()
        for f in range(400):
            (folder / f"f{f:03d}.txt").write_bytes(b"%d-%d\n" % (d, f) * 20)
    name = f"p-{uuid.uuid4().hex[:8]}"
    handle = await start(product, BackupSpec(name=name, vault="main", include_namespaces=[ns]))
    seen: list[tuple[float, str]] = []
    loop = asyncio.get_running_loop()
    while not (status := await jobctl.job_status(product.client, "backup", name)).phase.finished:
        message = next((s.message or "" for s in status.steps if s.name == f"volume {ns}/many"), "")
        done = message.partition("copying ")[2].partition(" files")[0]  # "<ns/pvc>: N/M"
        if done and (not seen or seen[-1][1].partition("copying ")[2].partition(" files")[0] != done):
            seen.append((loop.time(), message))  # a new heartbeat: files done changed
        await asyncio.sleep(0.2)
    assert status.phase is JobPhase.completed, status.error
    await handle.result()
    assert len(seen) >= 3, f"progress seen {len(seen)} times during the copy: {seen}"
    assert all("files" in m and "MiB" in m for _, m in seen), seen
    assert any("MiB/s" in m for _, m in seen), seen
    gaps = [b - a for (a, _), (b, _) in itertools.pairwise(seen)]
    assert max(gaps, default=0.0) <= 5, f"progress refreshed after {max(gaps):.1f} s"
