"""What a conversion converts, and what it refuses, decided without a cluster."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from kube.convert import check_targets, plan_conversion, temp_name
from kube.restore.context import DISK_PROVISIONER, NAS_PROVISIONER
from kube.restore.target import TargetClasses
from schemas.backup import SnapshotState, VolumeRecords
from schemas.convert import ConvertedVolume, ConvertRecord, ConvertState
from schemas.errors import BackupCenterError
from schemas.specs import ConvertSpec
from vault import conversions
from vault.filestore import FileStore

CLASSES = TargetClasses(
    [
        {
            "metadata": {"name": "disk"},
            "provisioner": DISK_PROVISIONER,
            "volumeBindingMode": "WaitForFirstConsumer",
        },
        {"metadata": {"name": "disk-now"}, "provisioner": DISK_PROVISIONER, "volumeBindingMode": "Immediate"},
        {"metadata": {"name": "nas"}, "provisioner": NAS_PROVISIONER},
        {"metadata": {"name": "local"}, "provisioner": "rancher.io/local-path"},
    ]
)
SNAPSHOT_CLASSES = {DISK_PROVISIONER: "alicloud-disk-snapshot"}


def spec(mapping: dict[str, str], modes: list[str] | None = None) -> ConvertSpec:
    return ConvertSpec(
        name="c1",
        backup="b1",
        vault="main",
        storage_class_mapping=mapping,
        convert_to_access_modes=modes or [],
    )


def pvc(
    name: str, cls: str, modes: tuple[str, ...] = ("ReadWriteOnce",), size: str = "5Gi"
) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "shop", "name": name},
        "spec": {
            "storageClassName": cls,
            "accessModes": list(modes),
            "resources": {"requests": {"storage": size}},
        },
    }


def test_target_classes_are_checked_with_the_reference_messages() -> None:
    with pytest.raises(BackupCenterError) as missing:
        check_targets(spec({"nas": "no-such"}), CLASSES, {"a"})
    assert missing.value.short() == "ConvertError: storageclass no-such not exists"
    with pytest.raises(BackupCenterError) as unsupported:
        check_targets(spec({"nas": "local"}), CLASSES, {"a"})
    assert "only support convert to storageclass with CSI diskplugin or nasplugin provisioner" in str(
        unsupported.value
    )
    with pytest.raises(BackupCenterError) as zoned:
        check_targets(spec({"nas": "disk-now"}), CLASSES, {"a", "b"})
    assert "current cluster is multi-zoned" in str(zoned.value) and zoned.value.code == "MultiZoneImmediate"
    check_targets(spec({"nas": "disk-now"}), CLASSES, {"a"})  # one zone: Immediate is fine
    check_targets(spec({"nas": "disk"}), CLASSES, {"a", "b"})


def test_each_volume_is_converted_skipped_or_refused() -> None:
    records = VolumeRecords(
        snapshots=[
            SnapshotState(
                namespace="shop", pvc="db", snapshot="s", driver=DISK_PROVISIONER, handle="s-1", ready=True
            )
        ],
        files={"shop/web": "vol-1", "shop/rwx": "vol-2", "shop/tiny": "vol-3"},
        skipped={"shop/cold": "not mounted"},
    )
    claims = [
        pvc("web", "nas"),
        pvc("rwx", "nas", ("ReadWriteMany",)),
        pvc("db", "disk"),
        pvc("cold", "nas"),
        pvc("other", "unmapped"),
        pvc("tiny", "nas", size="1Gi"),
    ]
    plan, failed = plan_conversion(
        spec({"nas": "disk", "disk": "nas"}),
        claims,
        records,
        CLASSES,
        SNAPSHOT_CLASSES,
        namespace_for={"shop": "shop"},
        stamp="202611261045",
        backup_cluster="a",
    )
    assert [i.source for i in plan.items] == ["shop/tiny", "shop/web"]
    web = plan.items[1]
    assert web.temp_pvc == "web-for-convert202611261045" and web.target_class == "disk"
    assert web.files_snapshot == "vol-1" and web.snapshot_class == "alicloud-disk-snapshot"
    assert plan.items[0].size == "20Gi"  # raised to the disk minimum
    assert failed["shop/rwx"].code == "DiskMultiNodeAccess"
    assert failed["shop/db"].code == "ConversionUnsupported"  # a disk snapshot cannot become NAS
    assert "not mounted" in plan.skipped["shop/cold"]
    assert "shop/other" not in plan.skipped and "shop/other" not in failed


def test_access_modes_can_be_converted_and_nas_targets_need_nothing() -> None:
    records = VolumeRecords(files={"shop/rwx": "vol-2"})
    claims = [pvc("rwx", "nas", ("ReadWriteMany",))]
    plan, failed = plan_conversion(
        spec({"nas": "disk"}, ["ReadWriteOnce"]),
        claims,
        records,
        CLASSES,
        SNAPSHOT_CLASSES,
        namespace_for={},
        stamp="1",
        backup_cluster="a",
    )
    assert not failed and plan.items[0].access_modes == ["ReadWriteOnce"]
    plan, failed = plan_conversion(
        spec({"nas": "nas"}),
        claims,
        records,
        CLASSES,
        SNAPSHOT_CLASSES,
        namespace_for={},
        stamp="1",
        backup_cluster="a",
    )
    assert not plan.items and not failed and "nothing to convert" in plan.skipped["shop/rwx"]
    plan, failed = plan_conversion(
        spec({"nas": "disk"}, ["ReadWriteOnce"]),
        claims,
        records,
        CLASSES,
        {},
        namespace_for={},
        stamp="1",
        backup_cluster="a",
    )
    assert failed["shop/rwx"].code == "NoSnapshotClass"


def test_temp_names_stay_valid_for_long_claims() -> None:
    name = temp_name("x" * 250, "202611261045")
    assert len(name) <= 253 and name.endswith("-for-convert202611261045")


def test_vault_records_claim_commit_fail_and_reset(tmp_path: Any) -> None:
    store = FileStore(tmp_path)
    now = datetime.now(UTC)
    record = ConvertRecord(name="c1", backup="b1", cluster_id="a", uid="run-1", started_at=now)
    conversions.claim_conversion(store, record)
    assert conversions.claim_conversion(store, record).uid == "run-1"  # a retry of the same run
    with pytest.raises(BackupCenterError) as taken:
        conversions.claim_conversion(store, record.model_copy(update={"uid": "run-2"}))
    assert taken.value.code == "NameInUse"
    assert conversions.converted_volumes(store, "b1") == {}  # not committed yet
    volume = ConvertedVolume(
        source="shop/web",
        source_class="nas",
        target_class="disk",
        driver=DISK_PROVISIONER,
        snapshot_class="x",
        handle="s-9",
    )
    committed = conversions.commit_conversion(store, "c1", "run-1", [volume])
    assert committed.state is ConvertState.committed
    assert conversions.converted_volumes(store, "b1")[("shop/web", "disk")].handle == "s-9"
    assert conversions.converted_volumes(store, "b2") == {}
    assert conversions.fail_conversion(store, "c1", "run-2", None) is None  # not its run
    assert conversions.delete_conversion(store, "c1") and not conversions.delete_conversion(store, "c1")
    conversions.claim_conversion(store, record.model_copy(update={"uid": "run-3"}))  # the name is free
    failed = conversions.fail_conversion(store, "c1", "run-3", None)
    assert failed is not None and failed.state is ConvertState.failed
    assert conversions.converted_volumes(store, "b1") == {}
