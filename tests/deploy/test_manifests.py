"""deploy/ is real: the manifests pass the API server's validation, and a backup runs end to end
under the control worker's ClusterRole (not as admin) — the role is exactly enough."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.config import new_client_from_config

from backupctl import jobctl
from kube.discovery import ApiResource, discover
from kube.rest import Kube, KubeError
from kube.vault_registry import KubeVaultRegistry
from schemas.settings import SettingsProvider
from schemas.specs import BackupSpec, DeleteSpec, JobKind
from schemas.status import JobPhase, JobStatus
from tests.backup.test_backup_workflow import owned_of, seed
from tests.conftest import REPO
from tests.product_fixtures import Product, worker_context
from vault.lifecycle import VaultManager
from workers import run as worker_run
from workflows.backup import BackupWorkflow
from workflows.delete import DeleteWorkflow

pytestmark = pytest.mark.cluster

DEPLOY = REPO / "deploy"
MANIFESTS = ["namespace.yaml", "crds.yaml", "settings.yaml", "rbac.yaml", "control.yaml", "node.yaml",
             "controller.yaml"]


def documents() -> Iterator[dict[str, Any]]:
    for name in MANIFESTS:
        for doc in yaml.safe_load_all((DEPLOY / name).read_text()):
            if doc:
                yield doc


def _path(resources: list[ApiResource], obj: dict[str, Any]) -> str:
    group_version, kind = obj["apiVersion"], obj["kind"]
    for res in resources:
        if res.group_version == group_version and res.kind == kind:
            ns = obj["metadata"].get("namespace") if res.namespaced else None
            return f"{res.list_path(ns)}/{obj['metadata']['name']}"
    raise AssertionError(f"{group_version} {kind} is not served")


def apply(kube: Kube, obj: dict[str, Any], *, dry_run: bool) -> dict[str, Any]:
    query = {"fieldManager": "backupctl-test", "force": "true", **({"dryRun": "All"} if dry_run else {})}
    return kube.request(
        "PATCH",
        _path(discover(kube), obj),
        body=obj,
        query=query,
        content_type="application/apply-patch+yaml",
    )


def test_manifests_pass_server_side_dry_run(kube_cluster: Any) -> None:
    kube = Kube(kube_cluster.api_client())
    kube.create("/api/v1/namespaces", {"metadata": {"name": "backup-center"}}, exist_ok=True)
    kinds = []
    for doc in documents():
        applied = apply(kube, doc, dry_run=True)
        kinds.append(applied["kind"])
    assert sorted(set(kinds)) == [
        "ClusterRole",
        "ClusterRoleBinding",
        "ConfigMap",
        "CustomResourceDefinition",
        "DaemonSet",
        "Deployment",
        "Namespace",
        "Role",
        "RoleBinding",
        "ServiceAccount",
    ]
    # Dry run: nothing of the product exists after it.
    assert kube.get("/apis/apps/v1/namespaces/backup-center/deployments/backup-center-control") is None
    settings = next(d for d in documents() if d["kind"] == "ConfigMap")
    SettingsProvider(lambda: ("1", settings["data"]["settings.yaml"]), source="deploy/settings.yaml")


@pytest.mark.asyncio(loop_scope="session")
async def test_backup_under_the_control_cluster_role(
    product: Product, kube_cluster: Any, kube_agent: Any, kube_namespace: str, tmp_path: Path
) -> None:
    admin = Kube(kube_cluster.api_client())
    for doc in documents():
        if doc["kind"] in ("ClusterRole", "Role", "Namespace"):
            apply(admin, doc, dry_run=False)
    user = f"control-{uuid.uuid4().hex[:6]}"
    subject = [{"kind": "User", "name": user, "apiGroup": "rbac.authorization.k8s.io"}]
    role_ref = {"apiGroup": "rbac.authorization.k8s.io", "name": "backup-center-control"}
    admin.create(
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        {"metadata": {"name": user}, "roleRef": {**role_ref, "kind": "ClusterRole"}, "subjects": subject},
    )
    admin.create(
        "/apis/rbac.authorization.k8s.io/v1/namespaces/backup-center/rolebindings",
        {"metadata": {"name": user}, "roleRef": {**role_ref, "kind": "Role"}, "subjects": subject},
    )
    kubeconfig = kube_cluster.mint_identity(user)
    limited = Kube(new_client_from_config(str(kubeconfig)))
    # Not admin: it may read, but not write ordinary objects.
    with pytest.raises(KubeError) as denied:
        limited.create(f"/api/v1/namespaces/{kube_namespace}/configmaps", {"metadata": {"name": "x"}})
    assert denied.value.status == 403

    seed(product, kube_agent, kube_namespace, configmaps=2)
    settings_path = tmp_path / "settings.yaml"
    # As deployed: the vault registry is ConfigMaps in the product namespace.
    settings_path.write_text(
        f"cluster_id: cluster-a\ntask_queue_prefix: rbac{uuid.uuid4().hex[:6]}\n"
        "vault_registry: kubernetes\nproduct_namespace: backup-center\n"
    )
    registry = KubeVaultRegistry(admin, "backup-center")
    if registry.get("main") is None:
        VaultManager(registry=registry, cluster_id="cluster-a").create(
            {"name": "main", "url": f"file://{product.vault_dir}"}
        )
    # The same state directory: the same vault registry.
    ctx = worker_context(settings_path, product.ctx.state_dir, kubeconfig, min_interval=2.0)
    name = f"rbac-{uuid.uuid4().hex[:6]}"
    with ThreadPoolExecutor(worker_run.ACTIVITY_THREADS) as executor:
        async with worker_run.control_worker(product.client, ctx, executor):
            handle = await jobctl.start_job(
                product.client,
                ctx.settings,
                "backup",
                name,
                BackupWorkflow.run,
                BackupSpec(name=name, vault="main", include_namespaces=[kube_namespace]),
                vault="main",
                summary="rbac test",
            )
            result: JobStatus = await asyncio.wait_for(handle.result(), 120)
            assert result.phase is JobPhase.completed, result.error
            # The job's object (a CLI job's, made by its workflow) follows it: within the role too.
            objects = "/apis/backupcenter.io/v1alpha1/namespaces/backup-center/applicationbackups"
            mirror = admin.get(f"{objects}/{name}")
            assert mirror is not None and mirror["status"]["phase"] == "Completed", mirror
            # Taking the snapshot over (patch the content, delete the VolumeSnapshot) is within the role.
            assert len(owned_of(product, name)) == 1
            # So is releasing it when the backup is deleted (a pre-provisioned content, then deleted).
            request = f"rbac-delete-{uuid.uuid4().hex[:6]}"
            deleting = await jobctl.start_job(
                product.client, ctx.settings, "delete", request, DeleteWorkflow.run,
                DeleteSpec(name=request, target_kind=JobKind.backup, target=name, vault="main"),
                summary="rbac test delete",
            )
            deleted: JobStatus = await asyncio.wait_for(deleting.result(), 120)
            assert deleted.phase is JobPhase.completed, deleted.error
            assert owned_of(product, name) == []
