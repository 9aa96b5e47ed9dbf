"""The actions every object goes through, and the pipeline."""

import copy
from typing import Any

from kube.restore.actions import actions_for, restore_item, run_actions
from kube.restore.actions.meta import GC_WARNING, clean_metadata, dangling_owners, owner_key
from kube.restore.context import BACKUP_ANNOTATION, RESTORE_LABEL, ActionResult, RestoreContext

from .objects import ctx, deployment, meta


def configmap(**extra: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta(
            "settings",
            labels={"app": "web"},
            annotations={"note": "x"},
            managedFields=[{"manager": "kubectl"}],
            deletionTimestamp="2024-05-02T00:00:00Z",
            deletionGracePeriodSeconds=30,
            **extra,
        ),
        "data": {"k": "v"},
    }


def test_server_set_fields_and_status_are_dropped() -> None:
    out = restore_item({**deployment("nginx:1.25")}, ctx()).objects[0]
    m = out["metadata"]
    for field in ("uid", "resourceVersion", "creationTimestamp", "generation", "selfLink"):
        assert field not in m
    assert "status" not in out
    out = restore_item(configmap(), ctx()).objects[0]
    for field in ("managedFields", "deletionTimestamp", "deletionGracePeriodSeconds"):
        assert field not in out["metadata"]
    assert out["data"] == {"k": "v"}


def test_restore_label_and_backup_annotation_are_added_to_existing_ones() -> None:
    out = restore_item(configmap(), ctx(restore_name="r-42", backup_name="nightly-1")).objects[0]
    assert out["metadata"]["labels"] == {"app": "web", RESTORE_LABEL: "r-42"}
    assert out["metadata"]["annotations"] == {"note": "x", BACKUP_ANNOTATION: "nightly-1"}
    bare = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "shop"}}
    out = restore_item(bare, ctx()).objects[0]
    assert out["metadata"]["labels"] == {RESTORE_LABEL: "r1"}


def test_namespace_is_mapped() -> None:
    out = restore_item(configmap(), ctx(namespace_mapping={"shop": "shop-copy"})).objects[0]
    assert out["metadata"]["namespace"] == "shop-copy"
    out = restore_item(configmap(), ctx(namespace_mapping={"other": "x"})).objects[0]
    assert out["metadata"]["namespace"] == "shop"


def test_cluster_scoped_objects_get_no_namespace() -> None:
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": meta("reader", namespace=None),
        "rules": [],
    }
    out = restore_item(role, ctx(namespace_mapping={"shop": "x"})).objects[0]
    assert "namespace" not in out["metadata"]


def test_input_is_not_modified() -> None:
    obj = deployment("docker.io/library/app1:v1")
    before = copy.deepcopy(obj)
    restore_item(
        obj,
        ctx(
            namespace_mapping={"shop": "x"},
            image_registry_mapping={"docker.io/library/": "r.example.com/lib/"},
        ),
    )
    assert obj == before


def owned_pod(owner_kind: str = "ReplicaSet", owner: str = "web-7d9f") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta(
            "web-7d9f-abcde",
            ownerReferences=[
                {
                    "apiVersion": "apps/v1",
                    "kind": owner_kind,
                    "name": owner,
                    "uid": "old-owner-uid",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        ),
        "spec": {"containers": [{"name": "c", "image": "nginx"}], "nodeName": "node-1"},
    }


def test_owner_references_are_kept_with_a_gc_warning() -> None:
    result = restore_item(owned_pod(), ctx())
    out = result.objects[0]
    assert out["metadata"]["ownerReferences"][0]["uid"] == "old-owner-uid"
    assert len(result.warnings) == 1
    assert GC_WARNING in result.warnings[0]
    assert "ReplicaSet web-7d9f" in result.warnings[0]
    assert "Pod shop/web-7d9f-abcde" in result.warnings[0]


def test_owner_references_point_at_restored_owners() -> None:
    c = ctx(
        namespace_mapping={"shop": "shop2"},
        owner_uids={owner_key("ReplicaSet", "shop2", "web-7d9f"): "new-owner-uid"},
    )
    result = restore_item(owned_pod(), c)
    assert result.objects[0]["metadata"]["ownerReferences"][0]["uid"] == "new-owner-uid"
    assert result.warnings == []
    assert dangling_owners(result.objects[0], c) == []
    assert dangling_owners(result.objects[0], ctx()) == ["ReplicaSet web-7d9f"]


def test_cluster_scoped_owners_are_found_too() -> None:
    c = ctx(owner_uids={owner_key("Widget", "", "w1"): "u2"})
    result = restore_item(owned_pod("Widget", "w1"), c)
    assert result.objects[0]["metadata"]["ownerReferences"][0]["uid"] == "u2"


def binding(kind: str) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": meta("b", namespace="shop" if kind == "RoleBinding" else None),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [
            {"kind": "ServiceAccount", "name": "app", "namespace": "shop"},
            {"kind": "ServiceAccount", "name": "ci", "namespace": "tools"},
            {"kind": "User", "name": "alice", "apiGroup": "rbac.authorization.k8s.io"},
        ],
    }


def test_role_binding_subjects_follow_the_namespace_mapping() -> None:
    for kind in ("RoleBinding", "ClusterRoleBinding"):
        out = restore_item(binding(kind), ctx(namespace_mapping={"shop": "shop2"})).objects[0]
        assert [s.get("namespace") for s in out["subjects"]] == ["shop2", "tools", None]
        assert out["roleRef"]["name"] == "view"


def test_role_binding_without_mapping_is_unchanged() -> None:
    out = restore_item(binding("RoleBinding"), ctx()).objects[0]
    assert [s.get("namespace") for s in out["subjects"]] == ["shop", "tools", None]


def test_clean_metadata_alone_is_pure() -> None:
    obj = configmap()
    before = copy.deepcopy(obj)
    result = clean_metadata(obj, ctx())
    assert obj == before
    assert result.objects[0] is not obj


def test_pipeline_feeds_every_produced_object_to_the_next_action() -> None:
    def split(obj: dict[str, Any], c: RestoreContext) -> ActionResult:
        a, b = copy.deepcopy(obj), copy.deepcopy(obj)
        a["metadata"]["name"] += "-a"
        b["metadata"]["name"] += "-b"
        return ActionResult(objects=[a, b], warnings=["split"])

    def tag(obj: dict[str, Any], c: RestoreContext) -> ActionResult:
        obj = copy.deepcopy(obj)
        obj["tagged"] = True
        return ActionResult.keep(obj, ["tagged " + obj["metadata"]["name"]])

    result = run_actions(configmap(), ctx(), [split, tag])
    assert [o["metadata"]["name"] for o in result.objects] == ["settings-a", "settings-b"]
    assert all(o["tagged"] for o in result.objects)
    assert result.warnings == ["split", "tagged settings-a", "tagged settings-b"]


def test_pipeline_stops_at_a_drop() -> None:
    called = []

    def drop(obj: dict[str, Any], c: RestoreContext) -> ActionResult:
        return ActionResult()

    def after(obj: dict[str, Any], c: RestoreContext) -> ActionResult:
        called.append(obj)
        return ActionResult.keep(obj)

    result = run_actions(configmap(), ctx(), [drop, after])
    assert result.objects == [] and called == []


def test_generic_action_runs_for_unknown_kinds() -> None:
    widget = {
        "apiVersion": "demo.backupcenter.io/v1",
        "kind": "Widget",
        "metadata": meta("w1"),
        "spec": {"size": 3},
        "status": {"ready": True},
    }
    chain = actions_for(widget)
    assert chain == [clean_metadata]
    out = restore_item(widget, ctx(namespace_mapping={"shop": "s2"})).objects[0]
    assert out["spec"] == {"size": 3} and "status" not in out and out["metadata"]["namespace"] == "s2"
