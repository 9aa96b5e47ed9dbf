"""A second cluster (its own control plane, control and node workers, cluster id cluster-b) attached
to the same vault restores cluster A's backup end to end, disk and NAS data included; deleting that
backup from cluster B only marks it deleted, and only cluster A removes it."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from localdev.kube.agent import csi_mount_path
from localdev.kube.controlplane import LocalCluster
from schemas.status import JobPhase, StepState
from schemas.vault import BackupState
from tests.backup.test_backup_workflow import seed
from tests.localcluster.helpers import create, get, pod, pvc, pvc_path, running_pod, wait_for
from tests.product_fixtures import Product
from tests.restore.helpers import backup, delete, restore
from vault import catalog

pytestmark = pytest.mark.cluster


def nas_files(product: Product, agent: Any, ns: str) -> dict[str, bytes]:
    """A NAS volume (file-level backup) mounted by pod web, holding a few files."""
    kube = product.kube
    create(kube, ns, pvc("shared", "alibabacloud-cnfs-nas", modes=("ReadWriteMany",)))
    create(kube, ns, pod("web", {"data": "shared"}))
    running = wait_for(lambda: running_pod(kube, ns, "web"), "pod web Running")
    volume = wait_for(lambda: get(kube, pvc_path(ns, "shared"))["spec"].get("volumeName"), "PVC bound")
    node, uid = running["spec"]["nodeName"], running["metadata"]["uid"]
    mount = csi_mount_path(agent.kubelet_root(node), uid, volume)
    files = {"site/index.html": b"<h1>shop</h1>\n", "site/app.js": b"run()\n" * 300}
    for rel, data in files.items():
        (mount / rel).parent.mkdir(parents=True, exist_ok=True)
        (mount / rel).write_bytes(data)
    return files


async def test_restore_into_second_cluster(product: Product, product_b: Product, cluster_b: LocalCluster,
                                           kube_agent: Any, kube_namespace: str) -> None:
    ns = kube_namespace
    seed(product, kube_agent, ns)
    files = nas_files(product, kube_agent, ns)
    backup_name = await backup(product, ns)
    offered = catalog.list_backups(product_b.ctx.vaults().store("main"))
    assert backup_name in {b.name for b in offered}

    kube = product_b.kube
    try:
        status = await restore(product_b, backup_name)
        assert status.phase is JobPhase.completed, (status.error, status.item_errors)
        assert f"of cluster {product.settings.cluster_id}" in (status.step("validate").message or "")
        assert get(kube, f"/api/v1/namespaces/{ns}/configmaps/cfg-3")["data"] == {"i": "3"}
        secret = get(kube, f"/api/v1/namespaces/{ns}/secrets/creds")
        assert base64.b64decode(secret["data"]["password"]) == b"s3cret"
        assert get(kube, f"/apis/apps/v1/namespaces/{ns}/deployments/web")
        # The disk data came across through the shared snapshot store ("same region").
        pod = wait_for(lambda: running_pod(kube, ns, "db"), "restored pod db Running in cluster B")
        claim = get(kube, pvc_path(ns, "data"))
        mount = csi_mount_path(cluster_b.kubelet_root(pod["spec"]["nodeName"]), pod["metadata"]["uid"],
                               claim["spec"]["volumeName"])
        assert (mount / "rows.db").read_bytes() == b"row\n" * 1000
        # The NAS files came across through the vault, written by one of cluster B's node workers.
        web = wait_for(lambda: running_pod(kube, ns, "web"), "restored pod web Running in cluster B")
        shared = get(kube, pvc_path(ns, "shared"))["spec"]["volumeName"]
        path = csi_mount_path(cluster_b.kubelet_root(web["spec"]["nodeName"]), web["metadata"]["uid"], shared)
        assert {rel: (path / rel).read_bytes() for rel in files} == files
    finally:
        kube.delete(f"/api/v1/namespaces/{ns}")


async def test_delete_from_another_cluster_only_marks_it(product: Product, product_b: Product,
                                                          kube_namespace: str) -> None:
    product.kube.create(f"/api/v1/namespaces/{kube_namespace}/configmaps", {"metadata": {"name": "c"}})
    name = await backup(product, kube_namespace, volume_data=False)
    store = product.ctx.vaults().store("main")

    marked = await delete(product_b, "backup", name)
    assert marked.phase is JobPhase.completed, marked.error
    assert marked.summary["vault"] == "marked"
    assert marked.step("delete cluster objects").state is StepState.skipped
    assert marked.step("free the name").state is StepState.skipped
    found = catalog.get_backup(store, name)
    assert found.state is BackupState.deleted and found.record is not None  # hidden, not removed
    assert name not in {b.name for b in catalog.list_backups(store)}
    assert name not in {b.name for b in catalog.list_backups(product_b.ctx.vaults().store("main"))}

    # Its source cluster removes it for real and frees the name.
    removed = await delete(product, "backup", name)
    assert removed.phase is JobPhase.completed, removed.error
    assert removed.summary["vault"] == "deleted"
    assert list(store.list(catalog.backup_prefix(name))) == []
