"""Explaining a Completed restore that lacks something (requirements §8)."""

from kube.export import BundleIndex, NamespaceCount, ResourceIndex
from kube.restore.explain import Explanation, ItemOutcome, ItemStatus, MissingReason, explain_missing
from kube.restore.versions import choose_versions
from schemas.errors import BackupCenterError
from schemas.specs import RestoreSpec


def bundle(
    group: str, version: str, plural: str, kind: str, preferred: bool = True, **counts: int
) -> BundleIndex:
    return BundleIndex(
        group=group,
        version=version,
        plural=plural,
        kind=kind,
        namespaced=True,
        preferred=preferred,
        key="k",
        count=sum(counts.values()),
        bytes=1,
        namespaces={ns: NamespaceCount(count=c) for ns, c in counts.items()},
    )


INDEX = ResourceIndex(
    backup="b1",
    namespaces=["shop", "web"],
    bundles=[
        bundle("", "v1", "configmaps", "ConfigMap", shop=3, web=2),
        bundle("", "v1", "secrets", "Secret", shop=4, web=1),
        bundle("apps", "v1", "deployments", "Deployment", shop=1, web=2),
        bundle("extensions", "v1beta1", "deployments", "Deployment", preferred=False, shop=1, web=2),
        bundle("extensions", "v1beta1", "ingresses", "Ingress", shop=1),
    ],
)


def spec(**fields: object) -> RestoreSpec:
    return RestoreSpec(name="r1", backup="b1", vault="v1", **fields)


def reasons(entries: list[Explanation]) -> list[MissingReason]:
    return [e.reason for e in entries]


def test_nothing_missing_nothing_explained() -> None:
    assert explain_missing(INDEX, spec(), []) == []


def test_namespaces_and_types_not_in_backup() -> None:
    entries = explain_missing(
        INDEX,
        spec(include_namespaces=["shop", "billing"], include_resources=["configmaps", "pvc", "endpoints"]),
        [],
    )
    not_in = [e for e in entries if e.reason is MissingReason.not_in_backup]
    assert [(e.namespace, e.resource) for e in not_in] == [("billing", ""), ("", "pvc"), ("", "endpoints")]
    assert "namespace billing is not in backup b1" in not_in[0].message
    assert "holds no objects" in not_in[1].message
    assert "never backed up" in not_in[2].message


def test_excluded_namespaces_count_each_object_once() -> None:
    entries = explain_missing(INDEX, spec(exclude_namespaces=["web"]), [])
    assert len(entries) == 1
    entry = entries[0]
    assert entry.reason is MissingReason.excluded and entry.namespace == "web"
    assert entry.count == 2 + 1 + 2  # configmaps, secrets, deployments (once, not per version)
    assert "excluded by the restore's namespace selection" in entry.message


def test_excluded_types_count_what_the_namespace_selection_takes() -> None:
    entries = explain_missing(
        INDEX, spec(include_namespaces=["shop"], exclude_resources=["secrets", "deploy"]), []
    )
    by_resource = {e.resource: e for e in entries if e.resource}
    assert by_resource["secrets"].count == 4
    assert by_resource["deployments.apps"].count == 1
    assert all(e.reason is MissingReason.excluded for e in entries)
    assert any(e.namespace == "web" for e in entries)


def test_failed_and_skipped_items() -> None:
    choice = choose_versions(INDEX.bundles, [])["ingresses.networking.k8s.io"]
    error = choice.item_error("shop", "web")
    outcomes = [
        ItemOutcome(
            resource="ingresses.extensions",
            kind="Ingress",
            namespace="shop",
            name="web",
            status=ItemStatus.failed,
            error=error,
        ),
        ItemOutcome(
            resource="persistentvolumeclaims",
            kind="PersistentVolumeClaim",
            namespace="shop",
            name="data",
            status=ItemStatus.failed,
            error=BackupCenterError("DiskMultiNodeAccess", pvc="shop/data", mode="ReadWriteMany").info(),
        ),
        ItemOutcome(
            resource="secrets",
            kind="Secret",
            namespace="shop",
            name="app-token-x",
            status=ItemStatus.skipped,
            reason="service account token",
        ),
        ItemOutcome(
            resource="configmaps", kind="ConfigMap", namespace="shop", name="a", status=ItemStatus.exists
        ),
    ]
    entries = explain_missing(INDEX, spec(), outcomes)
    assert reasons(entries) == [MissingReason.failed, MissingReason.failed, MissingReason.skipped]
    assert (
        "Ingress shop/web failed: RestoreError: Ingress shop/web: none of the captured versions"
        in entries[0].message
    )
    assert "accessMode of PVC shop/data is ReadWriteMany" in entries[1].message
    assert entries[2].message == "Secret shop/app-token-x skipped: service account token"


def owned(name: str) -> ItemOutcome:
    return ItemOutcome(
        resource="pods",
        kind="Pod",
        namespace="shop",
        name=name,
        status=ItemStatus.created,
        dangling_owners=["ReplicaSet web-7d9f"],
    )


def test_owner_gc_is_likely_without_a_look_at_the_cluster() -> None:
    entries = explain_missing(INDEX, spec(), [owned("web-7d9f-a")])
    assert reasons(entries) == [MissingReason.owner_gc]
    assert "may be removed by ownerReferences GC" in entries[0].message
    assert "ReplicaSet web-7d9f" in entries[0].message


def test_owner_gc_and_other_removals_confirmed_by_what_is_present() -> None:
    plain = ItemOutcome(
        resource="configmaps", kind="ConfigMap", namespace="shop", name="gone", status=ItemStatus.created
    )
    kept = ItemOutcome(
        resource="configmaps", kind="ConfigMap", namespace="shop", name="kept", status=ItemStatus.created
    )
    present = {("configmaps", "shop", "kept"), ("pods", "shop", "web-7d9f-b")}
    entries = explain_missing(
        INDEX, spec(), [owned("web-7d9f-a"), owned("web-7d9f-b"), plain, kept], present=present
    )
    assert [(e.reason, e.name) for e in entries] == [
        (MissingReason.owner_gc, "web-7d9f-a"),
        (MissingReason.removed, "gone"),
    ]
    assert "was restored, then removed by ownerReferences GC" in entries[0].message


def test_legacy_group_outcomes_match_present_objects_by_canonical_name() -> None:
    item = ItemOutcome(
        resource="deployments.extensions",
        kind="Deployment",
        namespace="shop",
        name="web",
        status=ItemStatus.created,
    )
    assert explain_missing(INDEX, spec(), [item], present={("deployments.apps", "shop", "web")}) == []


def test_outcomes_serialize_for_activities() -> None:
    item = owned("p").model_copy(update={"warnings": ["w"]})
    assert ItemOutcome.model_validate_json(item.model_dump_json()) == item
