"""PVCs, PVs and claim templates: classes, sizes, access modes, bindings (requirements §7, §8)."""

import pytest

from kube.restore.actions import restore_item
from kube.restore.actions.storage import PVC_STALE_ANNOTATIONS, claim_templates_action, pv_action, pvc_action
from kube.restore.context import NAS_PROVISIONER

from .objects import ctx, meta, pod_spec, pv, pvc

# --- PVC ----------------------------------------------------------------------------------------


def test_stale_binding_annotations_are_dropped() -> None:
    out = restore_item(pvc(annotations={"keep": "me"}), ctx()).objects[0]
    annotations = out["metadata"]["annotations"]
    for name in PVC_STALE_ANNOTATIONS:
        assert name not in annotations
    assert annotations["keep"] == "me"


def test_volume_name_is_dropped_for_volumes_not_restored_from_yaml() -> None:
    out = restore_item(pvc(size="30Gi"), ctx()).objects[0]
    assert "volumeName" not in out["spec"]


def test_volume_name_follows_pv_renames() -> None:
    out = restore_item(pvc(size="30Gi"), ctx(pv_renames={"d-abc123": "d-abc123"})).objects[0]
    assert out["spec"]["volumeName"] == "d-abc123"
    out = restore_item(pvc(size="30Gi"), ctx(pv_renames={"d-abc123": "restored-d-abc123"})).objects[0]
    assert out["spec"]["volumeName"] == "restored-d-abc123"


def test_storage_class_is_mapped() -> None:
    out = restore_item(
        pvc("data", storage_class="alicloud-nas", size="5Gi", modes=("ReadWriteOnce",)),
        ctx(storage_class_mapping={"alicloud-nas": "alicloud-disk-essd"}),
    ).objects[0]
    assert out["spec"]["storageClassName"] == "alicloud-disk-essd"
    assert out["spec"]["resources"]["requests"]["storage"] == "20Gi"  # the target is a disk class


def test_legacy_class_annotation_is_mapped_too() -> None:
    claim = pvc(
        storage_class=None,
        size="50Gi",
        annotations={"volume.beta.kubernetes.io/storage-class": "alicloud-nas"},
    )
    out = restore_item(claim, ctx(storage_class_mapping={"alicloud-nas": "alicloud-disk-essd"})).objects[0]
    assert out["metadata"]["annotations"]["volume.beta.kubernetes.io/storage-class"] == "alicloud-disk-essd"
    assert out["spec"]["storageClassName"] == "alicloud-disk-essd"


@pytest.mark.parametrize("size", ["10Gi", "1Gi", "19.5Gi", "21474836479", "20G", "500Mi", "1e9", "0.01Ti"])
def test_small_disk_volumes_are_raised_to_20gi(size: str) -> None:
    result = restore_item(pvc(size=size), ctx())
    assert result.objects[0]["spec"]["resources"]["requests"]["storage"] == "20Gi"
    assert any("raised from" in w and size in w and "20Gi" in w for w in result.warnings)


@pytest.mark.parametrize("size", ["20Gi", "21474836480", "0.02Ti", "25G", "100Gi", "1.5Ti"])
def test_disk_volumes_of_20gi_or_more_keep_their_size(size: str) -> None:
    result = restore_item(pvc(size=size), ctx())
    assert result.objects[0]["spec"]["resources"]["requests"]["storage"] == size
    assert not result.warnings


def test_disk_limit_is_raised_with_the_request() -> None:
    claim = pvc(size="10Gi")
    claim["spec"]["resources"]["limits"] = {"storage": "10Gi"}
    out = restore_item(claim, ctx()).objects[0]
    assert out["spec"]["resources"]["limits"]["storage"] == "20Gi"


def test_non_disk_volumes_keep_small_sizes() -> None:
    for klass in ("alicloud-nas", "local-path"):
        out = restore_item(pvc(storage_class=klass, size="1Gi"), ctx()).objects[0]
        assert out["spec"]["resources"]["requests"]["storage"] == "1Gi"


def test_default_class_decides_for_claims_without_one() -> None:
    out = restore_item(pvc(storage_class=None, size="1Gi"), ctx(default_storage_class="alicloud-disk-essd"))
    assert out.objects[0]["spec"]["resources"]["requests"]["storage"] == "20Gi"
    out = restore_item(pvc(storage_class=None, size="1Gi"), ctx(default_storage_class="alicloud-nas"))
    assert out.objects[0]["spec"]["resources"]["requests"]["storage"] == "1Gi"


def test_empty_class_means_no_class() -> None:
    out = restore_item(
        pvc(storage_class="", size="1Gi", annotations={"volume.kubernetes.io/storage-provisioner": "none"}),
        ctx(),
    ).objects[0]
    assert out["spec"]["resources"]["requests"]["storage"] == "1Gi"
    assert out["spec"]["storageClassName"] == ""


def test_unknown_class_falls_back_to_the_source_provisioner() -> None:
    out = restore_item(pvc(storage_class="gone-disk", size="1Gi"), ctx()).objects[0]
    assert out["spec"]["resources"]["requests"]["storage"] == "20Gi"  # annotated disk provisioner
    claim = pvc(
        storage_class="gone-nas",
        size="1Gi",
        annotations={
            "volume.kubernetes.io/storage-provisioner": NAS_PROVISIONER,
            "volume.beta.kubernetes.io/storage-provisioner": NAS_PROVISIONER,
        },
    )
    assert restore_item(claim, ctx()).objects[0]["spec"]["resources"]["requests"]["storage"] == "1Gi"


def test_unparseable_size_is_left_with_a_warning() -> None:
    result = restore_item(pvc(size="ten gigs"), ctx())
    assert result.objects[0]["spec"]["resources"]["requests"]["storage"] == "ten gigs"
    assert any("size left unchanged" in w for w in result.warnings)


@pytest.mark.parametrize("mode", ["ReadWriteMany", "ReadOnlyMany"])
def test_disk_claims_with_multi_node_modes_fail_without_conversion(mode: str) -> None:
    result = restore_item(pvc(size="30Gi", modes=(mode,)), ctx(namespace_mapping={"shop": "shop2"}))
    assert result.objects == []
    assert result.error is not None
    assert result.error.code == "DiskMultiNodeAccess"
    assert result.error.message.startswith("multi-node writing is only supported for block volume.")
    assert result.error.message.endswith(f"(accessMode of PVC shop2/data is {mode})")


def test_disk_block_volumes_may_be_shared() -> None:
    result = restore_item(pvc(size="30Gi", modes=("ReadWriteMany",), volumeMode="Block"), ctx())
    assert result.error is None
    assert result.objects[0]["spec"]["accessModes"] == ["ReadWriteMany"]


def test_multi_node_modes_are_converted_when_asked() -> None:
    result = restore_item(
        pvc(size="30Gi", modes=("ReadWriteMany",)), ctx(convert_to_access_modes=("ReadWriteOnce",))
    )
    assert result.error is None
    assert result.objects[0]["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert any("access modes converted from ReadWriteMany to ReadWriteOnce" in w for w in result.warnings)


def test_nas_to_disk_conversion_converts_access_modes() -> None:
    claim = pvc(storage_class="alicloud-nas", size="5Gi", modes=("ReadWriteMany",))
    c = ctx(
        storage_class_mapping={"alicloud-nas": "alicloud-disk-essd"},
        convert_to_access_modes=("ReadWriteOnce",),
    )
    out = restore_item(claim, c).objects[0]
    assert out["spec"]["storageClassName"] == "alicloud-disk-essd"
    assert out["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert out["spec"]["resources"]["requests"]["storage"] == "20Gi"


def test_nas_to_disk_conversion_without_access_modes_fails() -> None:
    claim = pvc(storage_class="alicloud-nas", size="5Gi", modes=("ReadWriteMany",))
    result = restore_item(claim, ctx(storage_class_mapping={"alicloud-nas": "alicloud-disk-essd"}))
    assert result.error is not None and result.error.code == "DiskMultiNodeAccess"


def test_conversion_leaves_unconverted_shared_volumes_alone() -> None:
    claim = pvc(storage_class="alicloud-nas", size="5Gi", modes=("ReadWriteMany",))
    out = restore_item(claim, ctx(convert_to_access_modes=("ReadWriteOnce",))).objects[0]
    assert out["spec"]["accessModes"] == ["ReadWriteMany"]


def test_unknown_access_modes_are_refused() -> None:
    with pytest.raises(ValueError, match="not an access mode"):
        ctx(convert_to_access_modes=("ReadWriteAll",))


def test_pvc_action_alone_is_pure() -> None:
    claim = pvc()
    before = repr(claim)
    pvc_action(claim, ctx())
    assert repr(claim) == before


# --- PV -----------------------------------------------------------------------------------------


def test_pvs_not_restored_from_yaml_are_skipped() -> None:
    result = restore_item(pv(), ctx())
    assert result.objects == [] and result.skip_reason and "new volume" in result.skip_reason


def test_pv_claim_ref_is_rebound_to_the_mapped_namespace() -> None:
    result = restore_item(
        pv(size="40Gi"), ctx(pv_renames={"d-abc123": "d-abc123"}, namespace_mapping={"shop": "shop2"})
    )
    claim = result.objects[0]["spec"]["claimRef"]
    assert claim == {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "namespace": "shop2",
        "name": "data",
    }
    assert result.objects[0]["metadata"]["name"] == "d-abc123"
    assert "namespace" not in result.objects[0]["metadata"]


def test_pv_rename_class_mapping_and_disk_size() -> None:
    volume = pv(storage_class="alicloud-nas", size="8Gi", driver=NAS_PROVISIONER)
    c = ctx(
        pv_renames={"d-abc123": "d-abc123-r1"}, storage_class_mapping={"alicloud-nas": "alicloud-disk-essd"}
    )
    result = restore_item(volume, c)
    out = result.objects[0]
    assert out["metadata"]["name"] == "d-abc123-r1"
    assert out["spec"]["storageClassName"] == "alicloud-disk-essd"
    assert out["spec"]["capacity"]["storage"] == "20Gi"
    assert "status" not in out


def test_disk_pv_by_driver_is_raised_nas_pv_is_not() -> None:
    disk = pv_action(pv(storage_class="gone", size="2Gi"), ctx(pv_renames={"d-abc123": "d-abc123"}))
    assert disk.objects[0]["spec"]["capacity"]["storage"] == "20Gi"
    nas = pv_action(
        pv(storage_class="alicloud-nas", size="2Gi", driver=NAS_PROVISIONER),
        ctx(pv_renames={"d-abc123": "d-abc123"}),
    )
    assert nas.objects[0]["spec"]["capacity"]["storage"] == "2Gi"


def test_pv_access_modes_are_converted_with_the_claim() -> None:
    volume = pv(storage_class="alicloud-nas", driver=NAS_PROVISIONER, modes=("ReadWriteMany",), size="50Gi")
    c = ctx(
        pv_renames={"d-abc123": "d-abc123"},
        storage_class_mapping={"alicloud-nas": "alicloud-disk-essd"},
        convert_to_access_modes=("ReadWriteOnce",),
    )
    assert pv_action(volume, c).objects[0]["spec"]["accessModes"] == ["ReadWriteOnce"]


# --- StatefulSet claim templates ------------------------------------------------------------------


def statefulset(
    size: str = "10Gi", modes: tuple[str, ...] = ("ReadWriteOnce",), storage_class: str = "alicloud-nas"
) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": meta("db"),
        "spec": {
            "serviceName": "db",
            "selector": {"matchLabels": {"app": "db"}},
            "template": {"metadata": {"labels": {"app": "db"}}, "spec": pod_spec("postgres:16")},
            "volumeClaimTemplates": [
                {
                    "metadata": {
                        "name": "pgdata",
                        "annotations": {"volume.kubernetes.io/selected-node": "n1"},
                    },
                    "spec": {
                        "accessModes": list(modes),
                        "storageClassName": storage_class,
                        "resources": {"requests": {"storage": size}},
                    },
                    "status": {"phase": "Pending"},
                }
            ],
        },
    }


def test_claim_templates_get_class_mapping_and_disk_size() -> None:
    result = restore_item(statefulset(), ctx(storage_class_mapping={"alicloud-nas": "alicloud-disk-essd"}))
    template = result.objects[0]["spec"]["volumeClaimTemplates"][0]
    assert template["spec"]["storageClassName"] == "alicloud-disk-essd"
    assert template["spec"]["resources"]["requests"]["storage"] == "20Gi"
    assert "status" not in template
    assert template["metadata"]["annotations"] == {}


def test_claim_templates_of_nas_keep_their_size() -> None:
    template = claim_templates_action(statefulset(), ctx()).objects[0]["spec"]["volumeClaimTemplates"][0]
    assert template["spec"]["resources"]["requests"]["storage"] == "10Gi"


def test_shared_disk_claim_templates_fail_or_convert() -> None:
    sts = statefulset(modes=("ReadWriteMany",), storage_class="alicloud-disk-essd")
    failed = restore_item(sts, ctx())
    assert failed.error is not None and failed.error.code == "DiskMultiNodeAccess"
    assert "shop/pgdata-db-*" in failed.error.message
    converted = restore_item(sts, ctx(convert_to_access_modes=("ReadWriteOnce",)))
    assert converted.objects[0]["spec"]["volumeClaimTemplates"][0]["spec"]["accessModes"] == ["ReadWriteOnce"]


def test_data_sources_of_the_source_cluster_are_dropped() -> None:
    claim = pvc(
        size="30Gi",
        dataSource={"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": "old-snap"},
        dataSourceRef={"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": "old-snap"},
    )
    out = restore_item(claim, ctx()).objects[0]
    assert "dataSource" not in out["spec"] and "dataSourceRef" not in out["spec"]
