"""Namespace self-service: a tenant with rights only on the job kinds in their own namespace backs
up and restores that namespace, into shareable vaults, and is refused anything wider."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO
from tests.crd.conftest import Kubectl
from tests.product_fixtures import Product
from tests.worker_process import WorkerProcess

pytestmark = [pytest.mark.cluster, pytest.mark.asyncio(loop_scope="session")]


def tenant_kubectl(product: Product, kube_cluster: Any, namespace: str) -> Kubectl:
    """A minted identity bound to deploy/controller.yaml's tenant ClusterRole in ``namespace`` only."""
    kube = product.kube
    role = next(d for d in yaml.safe_load_all((REPO / "deploy" / "controller.yaml").read_text())
                if d and d["kind"] == "ClusterRole" and d["metadata"]["name"] == "backup-center-tenant")
    kube.create("/apis/rbac.authorization.k8s.io/v1/clusterroles", role, exist_ok=True)
    user = f"tenant-{uuid.uuid4().hex[:6]}"
    kube.create(
        f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/rolebindings",
        {
            "metadata": {"name": user},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": "backup-center-tenant"},
            "subjects": [{"kind": "User", "name": user, "apiGroup": "rbac.authorization.k8s.io"}],
        },
    )
    return Kubectl(kube_cluster.mint_identity(user))


def backup(name: str, namespace: str, vault: str, extra: str = "") -> str:
    return f"""
apiVersion: backupcenter.io/v1alpha1
kind: ApplicationBackup
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  vault: {vault}
{extra}"""


async def test_a_tenant_backs_up_and_restores_its_own_namespace_only(
    product: Product, controller: WorkerProcess, kubectl: Kubectl, kube_cluster: Any,
    kube_namespace: str, tmp_path: Path,
) -> None:
    ns, home = kube_namespace, product.settings.product_namespace
    app = {"metadata": {"name": "app"}, "data": {"k": "v"}}
    product.kube.create(f"/api/v1/namespaces/{ns}/configmaps", app)
    shared = f"shared-{uuid.uuid4().hex[:6]}"
    kubectl.apply(f"""
apiVersion: backupcenter.io/v1alpha1
kind: BackupLocation
metadata: {{name: {shared}, namespace: {home}}}
spec: {{url: "file://{tmp_path / 'shared'}", shareable: true}}
""")
    await asyncio.to_thread(kubectl.wait_phase, "backuplocation", shared, home, {"Available"})
    tenant = tenant_kubectl(product, kube_cluster, ns)

    name = f"tb-{uuid.uuid4().hex[:6]}"
    tenant.apply(backup(name, ns, shared))
    obj = await asyncio.to_thread(tenant.wait_phase, "applicationbackup", name, ns, {"Completed", "Failed"})
    assert obj["status"]["phase"] == "Completed", obj["status"]

    # Anything wider is refused, with the reason, and nothing starts.
    refusals = {
        "wide": (backup(f"tw-{uuid.uuid4().hex[:6]}", ns, shared, "  includeNamespaces: [kube-public]"),
                 "spec.includeNamespaces"),
        "vault": (backup(f"tv-{uuid.uuid4().hex[:6]}", ns, product.vault), "not shareable"),
        "all": (backup(f"ta-{uuid.uuid4().hex[:6]}", ns, shared, "  clusterResources: all"),
                "spec.clusterResources"),
    }
    for manifest, _ in refusals.values():
        tenant.apply(manifest)
    for manifest, reason in refusals.values():
        refused = yaml.safe_load(manifest)["metadata"]["name"]
        obj = await asyncio.to_thread(tenant.wait_phase, "applicationbackup", refused, ns, {"Failed"})
        assert reason in obj["status"]["message"], obj["status"]
    # Another namespace is not theirs at all (RBAC).
    done = tenant.apply(backup(f"to-{uuid.uuid4().hex[:6]}", home, shared), check=False)
    assert done.returncode != 0 and "forbidden" in done.stderr.lower(), done.stderr

    # The disaster of a tenant: their object is gone; they restore it from their own backup.
    product.kube.delete(f"/api/v1/namespaces/{ns}/configmaps/app")
    restore = f"tr-{uuid.uuid4().hex[:6]}"
    tenant.apply(f"""
apiVersion: backupcenter.io/v1alpha1
kind: ApplicationRestore
metadata: {{name: {restore}, namespace: {ns}}}
spec: {{backup: {name}, vault: {shared}}}
""")
    obj = await asyncio.to_thread(tenant.wait_phase, "applicationrestore", restore, ns,
                                  {"Completed", "PartiallyFailed", "Failed"}, 120)
    assert obj["status"]["phase"] == "Completed", obj["status"]
    back = product.kube.get(f"/api/v1/namespaces/{ns}/configmaps/app")
    assert back is not None and back["data"] == {"k": "v"}
    # Restoring it into another namespace is refused.
    elsewhere = f"te-{uuid.uuid4().hex[:6]}"
    tenant.apply(f"""
apiVersion: backupcenter.io/v1alpha1
kind: ApplicationRestore
metadata: {{name: {elsewhere}, namespace: {ns}}}
spec: {{backup: {name}, vault: {shared}, namespaceMapping: {{{ns}: stolen}}}}
""")
    obj = await asyncio.to_thread(tenant.wait_phase, "applicationrestore", elsewhere, ns, {"Failed"})
    assert "spec.namespaceMapping" in obj["status"]["message"]
    assert product.kube.get("/api/v1/namespaces/stolen") is None
