"""A restore where some items fail ends PartiallyFailed and explains what is missing; a canceled
restore removes its temporary snapshot objects and says that what it created stays."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from kube.restore.records import RestoreFolder
from kube.restore.volumes import TEMPORARY_LABEL
from schemas.status import JobPhase
from tests.backup.test_backup_workflow import seed
from tests.localcluster.helpers import SNAPSHOTS, wait_for
from tests.product_fixtures import Product
from tests.restore.helpers import backup, finished, restore, start_restore, wait_phase
from workflows.restore import RestoreWorkflow

pytestmark = pytest.mark.cluster

CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


def widget_crd(group: str) -> dict[str, Any]:
    schema = {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {"group": group, "scope": "Namespaced",
                 "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                 "versions": [{"name": "v1", "served": True, "storage": True, "schema": schema}]},
    }


def established(product: Product, name: str) -> bool:
    crd = product.kube.get(f"{CRDS}/{name}") or {}
    return any(c["type"] == "Established" and c["status"] == "True"
               for c in (crd.get("status") or {}).get("conditions") or [])


async def test_custom_resource_without_its_crd_fails_alone(product: Product, kube_namespace: str) -> None:
    source, kube = kube_namespace, product.kube
    group = f"t{uuid.uuid4().hex[:8]}.example.com"
    crd = widget_crd(group)
    kube.create(CRDS, crd)
    wait_for(lambda: established(product, crd["metadata"]["name"]), "CRD established")
    kube.create(f"/apis/{group}/v1/namespaces/{source}/widgets",
                {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "w1"}, "size": 3})
    kube.create(f"/api/v1/namespaces/{source}/configmaps", {"metadata": {"name": "settings"}})
    backup_name = await backup(product, source, volume_data=False)
    # The CRD is gone from the cluster, and the restore leaves it out: its widgets cannot be created.
    kube.delete(f"{CRDS}/{crd['metadata']['name']}")
    wait_for(lambda: kube.get(f"{CRDS}/{crd['metadata']['name']}") is None, "CRD deleted")

    target = f"{source}-x"
    try:
        status = await restore(product, backup_name, namespace_mapping={source: target},
                               exclude_resources=["customresourcedefinitions"])
        assert status.phase is JobPhase.partially_failed, status.error
        assert status.error is None and status.item_errors_total == 1
        (issue,) = status.item_errors
        assert issue.code == "NoServedVersion" and issue.item == f"widgets.{group}/{target}/w1"
        assert f"none of the captured versions ({group}/v1) is served" in issue.message
        assert kube.get(f"/api/v1/namespaces/{target}/configmaps/settings")  # the rest is restored
        assert int(status.summary["failed"]) == 1 and int(status.summary["missing (excluded)"]) == 1

        store = product.ctx.vaults().store(product.vault)
        entries = list(RestoreFolder.of(store, product.settings.cluster_id, status.name).read_explanations())
        reasons = {(e.reason.value, e.resource or e.name) for e in entries}
        assert ("excluded", "customresourcedefinitions.apiextensions.k8s.io") in reasons
        assert ("failed", f"widgets.{group}") in reasons
        assert any(w.item == "missing: excluded" for w in status.warnings)
    finally:
        kube.delete(f"/api/v1/namespaces/{target}")


async def test_cancel_removes_temporaries_and_keeps_created_objects(
    product: Product, kube_agent: Any, kube_namespace: str
) -> None:
    source, kube = kube_namespace, product.kube
    seed(product, kube_agent, source, configmaps=1)
    backup_name = await backup(product, source)
    target = f"{source}-c"
    temporaries = f"{SNAPSHOTS}/namespaces/{target}/volumesnapshots"
    kube_agent.faults.snapshots_never_ready(True)
    try:
        name, handle = await start_restore(product, backup_name, namespace_mapping={source: target})
        waiting = await wait_phase(product, "restore", name, JobPhase.waiting_for_operator)
        assert waiting.current_step == "restore volumes"
        assert waiting.error is not None and waiting.error.code == "RestoreSnapshotNotReady"
        assert f"for PVC {target}/data" in waiting.error.message
        assert kube.list(temporaries, labelSelector=f"{TEMPORARY_LABEL}={name}")[0]
        await handle.signal(RestoreWorkflow.cancel)
        status = await finished(product, "restore", name, 60)
    finally:
        kube_agent.faults.snapshots_never_ready(False)
    try:
        assert status.phase is JobPhase.canceled
        selector = f"{TEMPORARY_LABEL}={name}"
        assert kube.list(temporaries, labelSelector=selector)[0] == []
        assert kube.list(f"{SNAPSHOTS}/volumesnapshotcontents", labelSelector=selector)[0] == []
        assert kube.get(f"/api/v1/namespaces/{target}")  # created before the cancel: it stays
        assert any("stay in the cluster" in w.message for w in status.warnings)
    finally:
        kube.delete(f"/api/v1/namespaces/{target}")
