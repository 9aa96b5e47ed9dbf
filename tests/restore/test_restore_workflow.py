"""Restore end to end into a mapped namespace of the same cluster: every object with its rewrites,
and the disk volume restored from its snapshot with the same file content."""

from __future__ import annotations

import base64
import random
from typing import Any

import pytest

from kube.restore.volumes import TEMPORARY_LABEL
from localdev.kube.agent import csi_mount_path
from schemas.status import JobPhase, StepState
from tests.backup.test_backup_workflow import seed
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
from tests.restore.helpers import backup, by_name, outcomes, restore

pytestmark = [pytest.mark.cluster, pytest.mark.asyncio(loop_scope="session")]

ROWS = b"row\n" * 1000
NAS = "alibabacloud-cnfs-nas"


def services(product: Product, ns: str, node_port: int) -> None:
    """One Service of each type; the NodePort one with a fixed port, the LoadBalancer one Local."""
    port = [{"name": "http", "port": 80, "targetPort": 8080}]
    for name, spec in (
        ("svc-cip", {"type": "ClusterIP", "ports": port}),
        ("svc-np", {"type": "NodePort", "ports": [{**port[0], "nodePort": node_port}]}),
        ("svc-lb", {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "ports": port}),
    ):
        product.kube.create(f"/api/v1/namespaces/{ns}/services",
                            {"metadata": {"name": name}, "spec": {**spec, "selector": {"app": "web"}}})


def svc(product: Product, ns: str, name: str) -> dict[str, Any]:
    return get(product.kube, f"/api/v1/namespaces/{ns}/services/{name}")


async def test_restore_into_mapped_namespace(product: Product, kube_agent: Any, kube_namespace: str) -> None:
    source, kube = kube_namespace, product.kube
    seed(product, kube_agent, source)
    node_port = random.randint(30000, 32700)
    services(product, source, node_port)
    before = {name: svc(product, source, name)["spec"] for name in ("svc-cip", "svc-np", "svc-lb")}
    assert before["svc-lb"]["healthCheckNodePort"]
    backup_name = await backup(product, source)
    # The application moved away: its node ports are free for the restored services.
    for name in ("svc-np", "svc-lb"):
        kube.delete(f"/api/v1/namespaces/{source}/services/{name}")

    target = f"{source}-m"
    try:
        # preserve_node_ports keeps the allocated ports too, not only the explicitly set one.
        status = await restore(
            product, backup_name, namespace_mapping={source: target}, preserve_node_ports=True
        )
        assert status.phase is JobPhase.completed, (status.error, status.item_errors)
        assert all(s.state in (StepState.succeeded, StepState.skipped) for s in status.steps), status.steps
        assert status.step("restore CRDs").state is StepState.skipped
        restore_name = status.name
        label = f"backupcenter.io/restore={restore_name}"

        namespace = get(kube, f"/api/v1/namespaces/{target}")
        assert namespace["metadata"]["labels"]["backupcenter.io/restore"] == restore_name
        for i in range(5):
            cm = get(kube, f"/api/v1/namespaces/{target}/configmaps/cfg-{i}")
            assert cm["data"] == {"i": str(i)} and cm["metadata"]["labels"]["app"] == "web"
        secret = get(kube, f"/api/v1/namespaces/{target}/secrets/creds")
        assert base64.b64decode(secret["data"]["password"]) == b"s3cret"
        deployment = get(kube, f"/apis/apps/v1/namespaces/{target}/deployments/web")
        assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.27"

        cip = svc(product, target, "svc-cip")["spec"]
        assert cip["clusterIP"] != before["svc-cip"]["clusterIP"]  # allocated anew
        assert svc(product, target, "svc-np")["spec"]["ports"][0]["nodePort"] == node_port
        lb = svc(product, target, "svc-lb")["spec"]
        assert lb["externalTrafficPolicy"] == "Local"
        assert lb["ports"][0]["nodePort"] == before["svc-lb"]["ports"][0]["nodePort"]
        assert lb["healthCheckNodePort"] == before["svc-lb"]["healthCheckNodePort"]  # preserve_node_ports

        # The disk volume: restored from the backup's snapshot, bound when the restored pod arrived.
        claim = get(kube, pvc_path(target, "data"))
        assert claim["spec"]["dataSource"]["kind"] == "VolumeSnapshot"
        assert claim["status"]["phase"] == "Bound"
        pod = wait_for(lambda: running_pod(kube, target, "db"), "restored pod db Running")
        mount = csi_mount_path(kube_agent.kubelet_root(pod["spec"]["nodeName"]), pod["metadata"]["uid"],
                               claim["spec"]["volumeName"])
        assert (mount / "rows.db").read_bytes() == ROWS
        # Temporaries are gone once the claim is bound; the backup's own snapshot is untouched.
        for path in (f"{SNAPSHOTS}/namespaces/{target}/volumesnapshots",
                     f"{SNAPSHOTS}/volumesnapshotcontents"):
            assert kube.list(path, labelSelector=f"{TEMPORARY_LABEL}={restore_name}")[0] == []
        assert owned_contents(kube, f"backupcenter.io/backup={backup_name}")

        # Every outcome is in the vault, and the status counts agree with it.
        items = outcomes(product, restore_name)
        found = by_name(items)
        assert found[("ConfigMap", "cfg-0")].status.value == "created"
        assert found[("PersistentVolumeClaim", "data")].namespace == target
        counted = {k: int(v) for k, v in status.summary.items()
                   if k in ("created", "updated", "exists", "skipped", "failed")}
        assert sum(counted.values()) == len(items)
        assert counted["failed"] == 0 and counted["created"] >= 12
        assert kube.list(f"/api/v1/namespaces/{target}/configmaps", labelSelector=label)[0]
    finally:
        kube.delete(f"/api/v1/namespaces/{target}")


async def test_file_level_volume_is_filled_by_a_node_worker(
    product: Product, kube_agent: Any, kube_namespace: str
) -> None:
    source, kube = kube_namespace, product.kube
    create(kube, source, pvc("shared", NAS, modes=("ReadWriteMany",)))
    create(kube, source, pod("web", {"data": "shared"}))
    running = wait_for(lambda: running_pod(kube, source, "web"), "pod web Running")
    volume = wait_for(lambda: get(kube, pvc_path(source, "shared"))["spec"].get("volumeName"), "PVC bound")
    mount = csi_mount_path(kube_agent.kubelet_root(running["spec"]["nodeName"]), running["metadata"]["uid"],
                           volume)
    files = {"index.html": b"<h1>shop</h1>\n", "assets/app.js": b"console.log(1)\n" * 500}
    for rel, data in files.items():
        (mount / rel).parent.mkdir(parents=True, exist_ok=True)
        (mount / rel).write_bytes(data)
    backup_name = await backup(product, source)

    target = f"{source}-f"
    try:
        status = await restore(product, backup_name, namespace_mapping={source: target})
        assert status.phase is JobPhase.completed, (status.error, status.item_errors)
        assert "1 filled by node workers" in (status.step("restore volumes").message or "")
        restored = wait_for(lambda: running_pod(kube, target, "web"), "restored pod web Running")
        claim = get(kube, pvc_path(target, "shared"))
        node, uid = restored["spec"]["nodeName"], restored["metadata"]["uid"]
        path = csi_mount_path(kube_agent.kubelet_root(node), uid, claim["spec"]["volumeName"])
        for rel, data in files.items():
            assert (path / rel).read_bytes() == data
        assert kube.list("/api/v1/pods", labelSelector=f"{TEMPORARY_LABEL}={status.name}")[0] == []
    finally:
        kube.delete(f"/api/v1/namespaces/{target}")
