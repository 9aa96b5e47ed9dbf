"""Two local clusters sharing one snapshot store (one "region"): a snapshot taken in the first is restored
in the second through a pre-provisioned VolumeSnapshotContent, the way a restore re-creates it."""

from __future__ import annotations

from typing import Any

import pytest

from kube.rest import Kube
from localdev.kube.agent import csi_mount_path
from localdev.kube.controlplane import LocalCluster
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

pytestmark = pytest.mark.cluster


def test_snapshot_restored_in_another_cluster(
    kube_cluster: Any, kube_agent: Any, kube_namespace: str
) -> None:
    if not isinstance(kube_cluster, LocalCluster):
        pytest.skip("local backend only")
    ns, source = kube_namespace, Kube(kube_cluster.api_client())
    create(source, ns, pvc("data", "alicloud-disk-topology-alltype"))
    create(source, ns, pod("writer", {"data": "data"}))
    writer = wait_for(lambda: running_pod(source, ns, "writer"), "writer Running")
    volume = get(source, pvc_path(ns, "data"))["spec"]["volumeName"]
    mount = csi_mount_path(
        kube_agent.kubelet_root(writer["spec"]["nodeName"]), writer["metadata"]["uid"], volume
    )
    (mount / "state.json").write_text('{"orders": 42}')
    create(source, ns, snapshot("snap", "data"))
    ready = wait_for(
        lambda: (s := status(source, snapshot_path(ns, "snap"))).get("readyToUse") and s, "ready"
    )
    content = status(source, f"{SNAPSHOTS}/volumesnapshotcontents/{ready['boundVolumeSnapshotContentName']}")

    with LocalCluster(agent="thread", snapshot_store=kube_agent.layout.snapshot_store) as other:
        target = Kube(other.api_client())
        # Retain: deleting the copy in this cluster must not delete the source cluster's snapshot data.
        target.create(
            f"{SNAPSHOTS}/volumesnapshotcontents",
            {
                "apiVersion": "snapshot.storage.k8s.io/v1",
                "kind": "VolumeSnapshotContent",
                "metadata": {"name": "restored-content"},
                "spec": {
                    "deletionPolicy": "Retain",
                    "driver": "diskplugin.csi.alibabacloud.com",
                    "source": {"snapshotHandle": content["snapshotHandle"]},
                    "volumeSnapshotClassName": "alicloud-disk-snapshot",
                    "volumeSnapshotRef": {"name": "restored", "namespace": "default"},
                },
            },
        )
        create(
            target,
            "default",
            {
                "apiVersion": "snapshot.storage.k8s.io/v1",
                "kind": "VolumeSnapshot",
                "metadata": {"name": "restored"},
                "spec": {"source": {"volumeSnapshotContentName": "restored-content"}},
            },
        )
        adopted = wait_for(
            lambda: (s := status(target, snapshot_path("default", "restored"))).get("readyToUse") and s,
            "pre-provisioned snapshot ready",
        )
        assert adopted["restoreSize"] == "20Gi"
        source_ref = {"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": "restored"}
        create(target, "default", pvc("data", "alicloud-disk-topology-alltype", data_source=source_ref))
        create(target, "default", pod("reader", {"data": "data"}))
        reader = wait_for(lambda: running_pod(target, "default", "reader"), "reader Running")
        restored_volume = get(target, pvc_path("default", "data"))["spec"]["volumeName"]
        restored = csi_mount_path(
            other.kubelet_root(reader["spec"]["nodeName"]), reader["metadata"]["uid"], restored_volume
        )
        assert (restored / "state.json").read_text() == '{"orders": 42}'
        target.delete(snapshot_path("default", "restored"))
    assert kube_agent.layout.snapshot_dir(content["snapshotHandle"]).is_dir()
