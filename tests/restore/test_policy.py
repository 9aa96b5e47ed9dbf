"""Existing objects: policy none keeps them (skipped, exists), policy update brings them back to the
backed-up state; and objects an earlier attempt of the same restore created count as created."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from kube.discovery import ApiResource
from kube.restore.apply import ApplyOptions, ObjectApplier
from kube.restore.context import RESTORE_LABEL
from kube.restore.explain import ItemStatus
from schemas.specs import ExistingResourcePolicy
from schemas.status import JobPhase
from tests.localcluster.helpers import get
from tests.product_fixtures import Product
from tests.restore.helpers import backup, by_name, outcomes, restore

pytestmark = pytest.mark.cluster  # async tests run on the session loop (asyncio_mode auto)

CONFIGMAPS = ApiResource(group="", version="v1", plural="configmaps", kind="ConfigMap", namespaced=True)


def configmap(ns: str, name: str, restore_name: str, **fields: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": ns, "labels": {RESTORE_LABEL: restore_name}}, **fields}


async def test_existing_resource_policy_none_then_update(product: Product, kube_namespace: str) -> None:
    source, kube = kube_namespace, product.kube
    for i in range(3):
        kube.create(f"/api/v1/namespaces/{source}/configmaps",
                    {"metadata": {"name": f"cfg-{i}"}, "data": {"v": "backup"}})
    backup_name = await backup(product, source, volume_data=False)
    target = f"{source}-p"
    path = f"/api/v1/namespaces/{target}/configmaps/cfg-0"
    try:
        first = await restore(product, backup_name, namespace_mapping={source: target})
        assert first.phase is JobPhase.completed, first.item_errors
        kube.patch(path, {"data": {"v": "changed after the restore"}})

        kept = await restore(product, backup_name, namespace_mapping={source: target})
        assert kept.phase is JobPhase.completed
        assert by_name(outcomes(product, kept.name))[("ConfigMap", "cfg-0")].status is ItemStatus.exists
        assert int(kept.summary["exists"]) >= 4 and int(kept.summary["created"]) == 0  # 3 + the namespace
        assert get(kube, path)["data"] == {"v": "changed after the restore"}
        # One vocabulary: the step says "exists" like the summary, and the counts add up to the items.
        assert " exists" in (kept.step("restore config and RBAC").message or "")
        words = ("created", "updated", "exists", "skipped", "failed")
        outcomes_seen = sum(int(kept.summary[k]) for k in words)
        assert outcomes_seen == int(kept.summary["items"]) == len(outcomes(product, kept.name))

        updated = await restore(product, backup_name, namespace_mapping={source: target},
                                existing_resource_policy=ExistingResourcePolicy.update)
        assert updated.phase is JobPhase.completed, updated.item_errors
        assert by_name(outcomes(product, updated.name))[("ConfigMap", "cfg-0")].status is ItemStatus.updated
        restored = get(kube, path)
        assert restored["data"] == {"v": "backup"}
        assert restored["metadata"]["labels"][RESTORE_LABEL] == updated.name
    finally:
        kube.delete(f"/api/v1/namespaces/{target}")


def test_objects_of_an_earlier_attempt_count_as_created(product: Product, kube_namespace: str) -> None:
    ns, kube = kube_namespace, product.kube
    started = datetime.now(UTC)
    mine = ObjectApplier(kube, ApplyOptions("r-one", ExistingResourcePolicy.none, started))
    assert mine.apply(CONFIGMAPS, configmap(ns, "a", "r-one", data={"v": "1"}))[0] is ItemStatus.created
    # A retried activity creates the same object again: ours, so created — not "exists".
    assert mine.apply(CONFIGMAPS, configmap(ns, "a", "r-one", data={"v": "1"}))[0] is ItemStatus.created
    other = ObjectApplier(kube, ApplyOptions("r-two", ExistingResourcePolicy.none, datetime.now(UTC)))
    status, _, uid, _ = other.apply(CONFIGMAPS, configmap(ns, "a", "r-two", data={"v": "2"}))
    assert status is ItemStatus.exists
    # Its uid is known, so restored children can point their ownerReferences at it.
    assert uid == get(kube, f"/api/v1/namespaces/{ns}/configmaps/a")["metadata"]["uid"]

    updater = ObjectApplier(kube, ApplyOptions("r-three", ExistingResourcePolicy.update, datetime.now(UTC)))
    for _ in range(2):  # the second time as a retry would: the object is ours by then
        status, error, _, _ = updater.apply(CONFIGMAPS, configmap(ns, "a", "r-three", data={"v": "3"}))
        assert status is ItemStatus.updated, error
    assert get(kube, f"/api/v1/namespaces/{ns}/configmaps/a")["data"] == {"v": "3"}


def test_update_refused_by_the_server_restores_labels(product: Product, kube_namespace: str) -> None:
    ns, kube = kube_namespace, product.kube
    kube.create(f"/api/v1/namespaces/{ns}/configmaps",
                {"metadata": {"name": "frozen"}, "immutable": True, "data": {"v": "live"}})
    updater = ObjectApplier(kube, ApplyOptions("r-four", ExistingResourcePolicy.update, datetime.now(UTC)))
    status, error, _, warnings = updater.apply(
        CONFIGMAPS, configmap(ns, "frozen", "r-four", immutable=True, data={"v": "backup"}))
    assert status is ItemStatus.updated and error is None
    assert warnings and "only labels and annotations were updated" in warnings[0]
    frozen = get(kube, f"/api/v1/namespaces/{ns}/configmaps/frozen")
    assert frozen["data"] == {"v": "live"} and frozen["metadata"]["labels"][RESTORE_LABEL] == "r-four"


def test_refused_object_fails_alone(product: Product, kube_namespace: str) -> None:
    options = ApplyOptions("r-five", ExistingResourcePolicy.none, datetime.now(UTC))
    applier = ObjectApplier(product.kube, options)
    bad = configmap(kube_namespace, "Not_A_Name", "r-five", data={"v": "1"})
    status, error, _, _ = applier.apply(CONFIGMAPS, bad)
    assert status is ItemStatus.failed and error is not None
    assert error.code == "RestoreItemFailed" and "ConfigMap" in error.message and "422" in error.message
