"""Restore-time selection of namespaces and types, and namespace mapping validation."""

from typing import Any

import pytest

from kube.discovery import ApiResource
from kube.export import BundleIndex, NamespaceCount, ResourceIndex
from kube.restore.selection import (
    bundle_resource,
    item_selected,
    namespace_selected,
    resource_selected,
    selected_bundles,
    validate_namespace_mapping,
)
from schemas.errors import BackupCenterError
from schemas.specs import RestoreSpec


def spec(**fields: Any) -> RestoreSpec:
    return RestoreSpec(name="r1", backup="b1", vault="v1", **fields)


def bundle(
    group: str, version: str, plural: str, kind: str, namespaced: bool = True, **counts: int
) -> BundleIndex:
    return BundleIndex(
        group=group,
        version=version,
        plural=plural,
        kind=kind,
        namespaced=namespaced,
        preferred=True,
        key="k",
        count=sum(counts.values()),
        bytes=1,
        namespaces={ns: NamespaceCount(count=c) for ns, c in counts.items()},
    )


INDEX = ResourceIndex(
    backup="b1",
    namespaces=["shop", "web", "tools"],
    bundles=[
        bundle("", "v1", "configmaps", "ConfigMap", shop=3, web=2),
        bundle("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", shop=1),
        bundle("apps", "v1", "deployments", "Deployment", shop=1, web=1),
        bundle("extensions", "v1beta1", "deployments", "Deployment", shop=1, web=1),
        bundle("", "v1", "namespaces", "Namespace", namespaced=False, **{"": 3}),
        bundle("", "v1", "persistentvolumes", "PersistentVolume", namespaced=False, **{"": 1}),
    ],
)
TARGET = [
    ApiResource(
        group="",
        version="v1",
        plural="persistentvolumeclaims",
        kind="PersistentVolumeClaim",
        namespaced=True,
        short_names=["pvc"],
        preferred=True,
    ),
    ApiResource(
        group="apps",
        version="v1",
        plural="deployments",
        kind="Deployment",
        namespaced=True,
        short_names=["deploy"],
        preferred=True,
    ),
]


def res(
    plural: str, group: str = "", kind: str = "Thing", namespaced: bool = True, short: tuple[str, ...] = ()
) -> ApiResource:
    return ApiResource(
        group=group, version="v1", plural=plural, kind=kind, namespaced=namespaced, short_names=list(short)
    )


@pytest.mark.parametrize("name", ["persistentvolumeclaims", "pvc", "PersistentVolumeClaim", "PVC"])
def test_types_match_by_plural_kind_short_name_and_alias(name: str) -> None:
    pvcs = res("persistentvolumeclaims", kind="PersistentVolumeClaim", short=("pvc",))
    assert resource_selected(pvcs, spec(include_resources=[name]))
    assert not resource_selected(pvcs, spec(exclude_resources=[name]))
    assert not resource_selected(res("configmaps", kind="ConfigMap"), spec(include_resources=[name]))


def test_group_qualified_names_match_legacy_groups() -> None:
    legacy = res("deployments", group="extensions", kind="Deployment")
    assert resource_selected(legacy, spec(include_resources=["deployments.apps"]))
    assert resource_selected(legacy, spec(include_resources=["deploy"]))
    assert not resource_selected(legacy, spec(exclude_resources=["deployments.apps"]))


def test_short_names_come_from_the_target_discovery() -> None:
    captured = INDEX.bundles[1]
    assert bundle_resource(captured, TARGET).short_names == ["pvc"]
    assert bundle_resource(captured).short_names == []


def test_namespaces_are_always_taken_for_selected_namespaces() -> None:
    ns_res = res("namespaces", kind="Namespace", namespaced=False)
    s = spec(include_resources=["configmaps"], include_namespaces=["shop"])
    assert resource_selected(ns_res, s)
    assert item_selected({"metadata": {"name": "shop"}}, ns_res, s)
    assert not item_selected({"metadata": {"name": "web"}}, ns_res, s)


def test_namespace_include_and_exclude() -> None:
    assert namespace_selected("shop", spec())
    assert namespace_selected("shop", spec(include_namespaces=["shop"]))
    assert not namespace_selected("web", spec(include_namespaces=["shop"]))
    assert not namespace_selected("web", spec(exclude_namespaces=["web"]))
    cm = res("configmaps", kind="ConfigMap")
    assert not item_selected(
        {"metadata": {"name": "a", "namespace": "web"}}, cm, spec(exclude_namespaces=["web"])
    )
    assert item_selected(
        {"metadata": {"name": "a", "namespace": "shop"}}, cm, spec(exclude_namespaces=["web"])
    )


def test_bound_volumes_follow_their_claims_namespace() -> None:
    pvs = res("persistentvolumes", kind="PersistentVolume", namespaced=False)
    bound_web = {"metadata": {"name": "d-1"}, "spec": {"claimRef": {"namespace": "web", "name": "data"}}}
    unbound = {"metadata": {"name": "d-2"}, "spec": {}}
    s = spec(include_namespaces=["shop"])
    assert not item_selected(bound_web, pvs, s)
    assert item_selected(unbound, pvs, s)
    role = res("clusterroles", group="rbac.authorization.k8s.io", kind="ClusterRole", namespaced=False)
    assert item_selected({"metadata": {"name": "view"}}, role, s)


def test_selected_bundles() -> None:
    chosen = selected_bundles(INDEX, spec(include_resources=["pvc", "deploy"]), TARGET)
    assert [(b.group, b.plural) for b in chosen] == [
        ("", "persistentvolumeclaims"),
        ("apps", "deployments"),
        ("extensions", "deployments"),
        ("", "namespaces"),
    ]
    chosen = selected_bundles(INDEX, spec(exclude_resources=["configmaps", "pv"]))
    assert {b.plural for b in chosen} == {"persistentvolumeclaims", "deployments", "namespaces"}


def test_valid_mapping_passes() -> None:
    assert validate_namespace_mapping(spec(namespace_mapping={"shop": "shop-copy"}), INDEX) == []


def test_mapping_keys_must_be_in_the_backup() -> None:
    with pytest.raises(BackupCenterError) as caught:
        validate_namespace_mapping(spec(namespace_mapping={"nope": "x"}), INDEX)
    assert caught.value.code == "InvalidSpec"
    assert "namespace nope is not in backup b1 (it holds shop, tools, web)" in caught.value.message


def test_mapping_keys_must_be_selected() -> None:
    with pytest.raises(BackupCenterError, match="excludes it"):
        validate_namespace_mapping(spec(namespace_mapping={"web": "x"}, include_namespaces=["shop"]), INDEX)


def test_mapping_targets_must_be_valid_names() -> None:
    # RestoreSpec validates too; a spec built without validation is still caught.
    bad = spec().model_copy(update={"namespace_mapping": {"shop": "Shop_Copy"}})
    with pytest.raises(BackupCenterError, match="Shop_Copy"):
        validate_namespace_mapping(bad, INDEX)


def test_every_problem_is_reported_at_once() -> None:
    bad = spec().model_copy(update={"namespace_mapping": {"nope": "x", "shop": "-bad"}})
    with pytest.raises(BackupCenterError) as caught:
        validate_namespace_mapping(bad, INDEX)
    assert "nope" in caught.value.message and "-bad" in caught.value.message


def test_merging_namespaces_is_a_warning() -> None:
    warnings = validate_namespace_mapping(spec(namespace_mapping={"shop": "web"}), INDEX)
    assert warnings == [
        "namespaces shop, web are all restored into web: objects with the same kind and name will clash"
    ]
    assert validate_namespace_mapping(spec(namespace_mapping={"shop": "web", "web": "web2"}), INDEX) == []
