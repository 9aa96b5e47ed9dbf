"""Volumes end to end on the local cluster: provision, mount, snapshot, restore; and the disk/NAS rules."""

from __future__ import annotations

import os
import uuid
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from kube.rest import Kube
from localdev.kube.agent import csi_mount_path
from localdev.kube.agent.model import DISK_MULTI_NODE_ERROR, ZONE_LABEL
from tests.localcluster.helpers import (
    SNAPSHOTS,
    create,
    get,
    gone,
    pod,
    pvc,
    pvc_path,
    pvc_phase,
    running_pod,
    snapshot,
    snapshot_path,
    status,
    wait_for,
)

pytestmark = pytest.mark.cluster


def _mount_of(kube: Kube, agent: Any, namespace: str, pod_name: str, claim: str) -> Path:
    running = wait_for(lambda: running_pod(kube, namespace, pod_name), f"pod {pod_name} Running")
    volume = get(kube, pvc_path(namespace, claim))["spec"]["volumeName"]
    root = agent.kubelet_root(running["spec"]["nodeName"])
    return csi_mount_path(root, running["metadata"]["uid"], volume)


def test_snapshot_and_restore_round_trip(kube_cluster: Any, kube_agent: Any, kube_namespace: str) -> None:
    ns, kube = kube_namespace, Kube(kube_cluster.api_client())
    create(kube, ns, pvc("data", "alicloud-disk-topology-alltype"))
    create(kube, ns, pod("writer", {"data": "data"}))

    mount = _mount_of(kube, kube_agent, ns, "writer", "data")
    assert mount.is_symlink() and mount.is_dir(), f"{mount} should link to the volume's data"
    (mount / "hello.txt").write_text("hello from the writer\n")
    (mount / "sub").mkdir()
    (mount / "sub" / "blob.bin").write_bytes(bytes(range(256)) * 64)
    # What a block-level snapshot keeps and a file copy would not: a hard link, a sparse file's holes.
    os.link(mount / "sub" / "blob.bin", mount / "sub" / "blob.link")
    with open(mount / "sparse.img", "wb") as sparse:
        sparse.truncate(64 * 1024 * 1024)
        sparse.write(b"head")

    # The disk was made in the zone of the node the pod landed on.
    writer = get(kube, f"/api/v1/namespaces/{ns}/pods/writer")
    pv = get(kube, f"/api/v1/persistentvolumes/{get(kube, pvc_path(ns, 'data'))['spec']['volumeName']}")
    zone = get(kube, f"/api/v1/nodes/{writer['spec']['nodeName']}")["metadata"]["labels"][ZONE_LABEL]
    term = pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0]
    assert (term["key"], term["values"]) == (ZONE_LABEL, [zone])
    assert pv["spec"]["csi"]["driver"] == "diskplugin.csi.alibabacloud.com"

    create(kube, ns, snapshot("snap", "data"))
    ready = wait_for(
        lambda: (s := status(kube, snapshot_path(ns, "snap"))).get("readyToUse") and s, "snapshot ready"
    )
    assert ready["restoreSize"] == "20Gi"
    content_path = f"{SNAPSHOTS}/volumesnapshotcontents/{ready['boundVolumeSnapshotContentName']}"
    content = status(kube, content_path)
    handle = content["snapshotHandle"]
    assert handle.startswith("s-") and content["readyToUse"] is True

    # A snapshot is a point in time: later writes do not reach it.
    (mount / "hello.txt").write_text("changed after the snapshot\n")

    source = {"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": "snap"}
    create(kube, ns, pvc("restored", "alicloud-disk-topology-alltype", data_source=source))
    create(kube, ns, pod("reader", {"data": "restored"}))
    restored = _mount_of(kube, kube_agent, ns, "reader", "restored")
    assert (restored / "hello.txt").read_text() == "hello from the writer\n"
    assert (restored / "sub" / "blob.bin").read_bytes() == bytes(range(256)) * 64
    blob, link = os.stat(restored / "sub" / "blob.bin"), os.stat(restored / "sub" / "blob.link")
    assert blob.st_ino == link.st_ino and blob.st_nlink == 2
    held = os.stat(restored / "sparse.img")
    assert held.st_size == 64 * 1024 * 1024 and held.st_blocks * 512 < 1024 * 1024

    # Deleting a snapshot whose class says Delete removes its content and the data copy.
    kube.delete(snapshot_path(ns, "snap"))
    wait_for(lambda: gone(kube, content_path), "content deleted")
    assert not kube_agent.layout.snapshot_dir(handle).exists()

    # A deleted pod is finished by its "kubelet" and its volume directories go; the data stays.
    kube.delete(f"/api/v1/namespaces/{ns}/pods/writer")
    wait_for(lambda: gone(kube, f"/api/v1/namespaces/{ns}/pods/writer"), "writer pod deleted")
    assert not mount.parent.exists()
    assert (kube_agent.layout.volume_dir(pv["spec"]["csi"]["volumeHandle"]) / "hello.txt").exists()


def test_storage_objects_mirror_the_reference_cloud(kube_cluster: Any, kube_agent: Any) -> None:
    kube = Kube(kube_cluster.api_client())
    classes = {sc["metadata"]["name"]: sc for sc in kube.list("/apis/storage.k8s.io/v1/storageclasses")[0]}
    topo = classes["alicloud-disk-topology-alltype"]
    assert (topo["provisioner"], topo["volumeBindingMode"], topo["allowVolumeExpansion"]) == (
        "diskplugin.csi.alibabacloud.com",
        "WaitForFirstConsumer",
        True,
    )
    assert classes["alicloud-disk-immediate"]["volumeBindingMode"] == "Immediate"
    assert classes["alibabacloud-cnfs-nas"]["provisioner"] == "nasplugin.csi.alibabacloud.com"
    assert classes["unsupported-local"]["provisioner"] == "rancher.io/local-path"
    drivers = {d["metadata"]["name"] for d in kube.list("/apis/storage.k8s.io/v1/csidrivers")[0]}
    assert {"diskplugin.csi.alibabacloud.com", "nasplugin.csi.alibabacloud.com"} <= drivers
    nodes = kube.list("/api/v1/nodes")[0]
    assert len({n["metadata"]["labels"][ZONE_LABEL] for n in nodes}) >= 2
    assert len([n for n in nodes if n["metadata"]["labels"].get("type") == "virtual-kubelet"]) == 1
    for node in nodes:
        assert any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"]["conditions"])
        assert not [t for t in node["spec"].get("taints", []) if t["key"].startswith("node.kubernetes.io/")]


def test_pods_avoid_the_virtual_node_unless_they_ask(
    kube_cluster: Any, kube_agent: Any, kube_namespace: str
) -> None:
    ns, kube = kube_namespace, Kube(kube_cluster.api_client())
    for i in range(4):
        create(kube, ns, pod(f"plain-{i}", {}))
    eci = pod("eci", {})
    eci["spec"]["nodeSelector"] = {"type": "virtual-kubelet"}
    eci["spec"]["tolerations"] = [{"key": "virtual-kubelet.io/provider", "operator": "Exists"}]
    create(kube, ns, eci)
    for i in range(4):
        placed = wait_for(partial(running_pod, kube, ns, f"plain-{i}"), f"plain-{i} Running")
        assert not placed["spec"]["nodeName"].startswith("virtual-kubelet")
    placed = wait_for(lambda: running_pod(kube, ns, "eci"), "eci Running")
    assert placed["spec"]["nodeName"].startswith("virtual-kubelet")


def test_multi_node_disk_claim_stays_pending_with_the_drivers_warning(
    kube_cluster: Any, kube_agent: Any, kube_namespace: str
) -> None:
    ns, kube = kube_namespace, Kube(kube_cluster.api_client())
    create(kube, ns, pvc("shared-disk", "alicloud-disk-immediate", modes=("ReadWriteMany",)))

    def warning() -> Any:
        events = kube.list(
            f"/api/v1/namespaces/{ns}/events", fieldSelector="involvedObject.name=shared-disk"
        )[0]
        return next(
            (e for e in events if e["type"] == "Warning" and DISK_MULTI_NODE_ERROR in e["message"]), None
        )

    event = wait_for(warning, "the multi-node writing warning event")
    assert event["reason"] == "ProvisioningFailed"
    assert pvc_phase(kube, ns, "shared-disk") == "Pending"


def test_disk_claim_below_the_disk_minimum_stays_pending_with_the_drivers_warning(
    kube_cluster: Any, kube_agent: Any, kube_namespace: str
) -> None:
    """The cloud's disk types start at 20 GiB (ESSD PL1, SSD, efficiency): a 50Mi disk claim is refused
    as the real driver refuses it (ProvisioningFailed "disk size is not supported", Pending)."""
    ns, kube = kube_namespace, Kube(kube_cluster.api_client())
    create(kube, ns, pvc("tiny-disk", "alicloud-disk-immediate", size="50Mi"))
    create(kube, ns, pvc("big-enough", "alicloud-disk-immediate", size="20Gi"))

    def warning() -> Any:
        events = kube.list(
            f"/api/v1/namespaces/{ns}/events", fieldSelector="involvedObject.name=tiny-disk"
        )[0]
        refused = "disk size is not supported"
        return next((e for e in events if e["type"] == "Warning" and refused in e["message"]), None)

    event = wait_for(warning, "the disk size warning event")
    assert event["reason"] == "ProvisioningFailed" and "20Gi" in event["message"]
    assert pvc_phase(kube, ns, "tiny-disk") == "Pending"
    wait_for(lambda: pvc_phase(kube, ns, "big-enough") == "Bound", "the 20Gi claim bound")


def test_nas_snapshot_fails_in_status(kube_cluster: Any, kube_agent: Any, kube_namespace: str) -> None:
    ns, kube = kube_namespace, Kube(kube_cluster.api_client())
    create(kube, ns, pvc("shared", "alibabacloud-cnfs-nas", modes=("ReadWriteMany",)))
    wait_for(lambda: pvc_phase(kube, ns, "shared") == "Bound", "NAS claim bound (Immediate)")
    create(kube, ns, snapshot("nas-snap", "shared"))
    error = wait_for(
        lambda: status(kube, snapshot_path(ns, "nas-snap")).get("error"), "snapshot error in status"
    )
    assert "does not support CreateSnapshot" in error["message"]
    assert status(kube, snapshot_path(ns, "nas-snap")).get("readyToUse") is False


def test_unknown_snapshot_class_is_reported(kube_cluster: Any, kube_agent: Any, kube_namespace: str) -> None:
    ns, kube = kube_namespace, Kube(kube_cluster.api_client())
    create(kube, ns, pvc("d", "alicloud-disk-immediate"))
    wait_for(lambda: pvc_phase(kube, ns, "d") == "Bound", "claim bound")
    create(kube, ns, snapshot("s", "d", snapshot_class=f"nope-{uuid.uuid4().hex[:6]}"))
    error = wait_for(lambda: status(kube, snapshot_path(ns, "s")).get("error"), "snapshot error")
    assert "not found" in error["message"]


def test_deleting_a_namespace_cleans_up_pods_claims_and_volume_data(
    kube_cluster: Any, kube_agent: Any
) -> None:
    kube = Kube(kube_cluster.api_client())
    ns = f"t-gone-{uuid.uuid4().hex[:6]}"
    kube.create("/api/v1/namespaces", {"metadata": {"name": ns}})
    create(kube, ns, pvc("data", "alicloud-disk-topology-alltype"))
    create(kube, ns, pod("app", {"data": "data"}))
    wait_for(lambda: running_pod(kube, ns, "app"), "app Running")
    handle = get(kube, pvc_path(ns, "data"))["spec"]["volumeName"]
    data_dir = kube_agent.layout.volume_dir(handle)
    assert data_dir.is_dir()

    kube.delete(f"/api/v1/namespaces/{ns}")
    # Needs the namespace controller, the agent's "kubelet" to finish the pod, PVC protection to let go,
    # and the provisioner to delete the Delete-policy volume with its data.
    wait_for(lambda: gone(kube, f"/api/v1/namespaces/{ns}"), "namespace deleted", timeout=60)
    wait_for(lambda: gone(kube, f"/api/v1/persistentvolumes/{handle}"), "volume deleted", timeout=30)
    wait_for(lambda: not data_dir.exists(), "volume data removed")
