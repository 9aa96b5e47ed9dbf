"""How each restored PVC gets its data (no cluster needed): snapshot, file level, empty, or an error."""

from __future__ import annotations

from typing import Any

from kube.restore.context import DISK_PROVISIONER, NAS_PROVISIONER, RestoreContext
from kube.restore.volumes import SourceKind, data_source_preparer, plan_sources
from schemas.backup import SnapshotState

CLASSES = {"disk": DISK_PROVISIONER, "disk-2": DISK_PROVISIONER, "nas": NAS_PROVISIONER}


def ctx(**fields: Any) -> RestoreContext:
    return RestoreContext(restore_name="r1", backup_name="b1", storage_classes=CLASSES,
                          default_storage_class="disk", namespace_mapping={"shop": "shop2"}, **fields)


def pvc(name: str, storage_class: str | None = "disk") -> dict[str, Any]:
    spec: dict[str, Any] = {"resources": {"requests": {"storage": "20Gi"}}}
    if storage_class is not None:
        spec["storageClassName"] = storage_class
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "namespace": "shop"}, "spec": spec}


def snap(name: str, ready: bool = True) -> SnapshotState:
    return SnapshotState(namespace="shop", pvc=name, snapshot=f"b1-{name}", ready=ready, handle=f"s-{name}",
                         driver=DISK_PROVISIONER, snapshot_class="alicloud-disk-snapshot")


def test_each_claim_gets_its_source() -> None:
    claims = [pvc("db"), pvc("moved", "nas"), pvc("files", "nas"), pvc("nothing"), pvc("there"),
              pvc("ghost", "no-such-class"), pvc("static", ""), pvc("defaulted", None)]
    plan = plan_sources(
        claims, ctx(storage_class_mapping={"disk": "disk-2"}),
        snapshots={f"shop/{n}": snap(n) for n in ("db", "moved", "there", "defaulted")},
        files={"shop/files": "vol-123"}, skipped={"shop/nothing": "not mounted"}, volume_data=True,
        existing={"shop2/there"})
    s = plan.sources
    assert s["shop/db"].kind is SourceKind.snapshot and s["shop/db"].namespace == "shop2"
    assert s["shop/db"].handle == "s-db" and s["shop/db"].snapshot.startswith("r1-db-")
    assert s["shop/moved"].error is not None and s["shop/moved"].error.code == "VolumeNeedsConversion"
    assert s["shop/files"].kind is SourceKind.files and s["shop/files"].files_snapshot == "vol-123"
    assert [x.pvc for x in plan.with_files()] == ["files"]
    assert s["shop/nothing"].kind is SourceKind.empty and "not mounted" in s["shop/nothing"].note
    assert s["shop/there"].kind is SourceKind.exists
    ghost = s["shop/ghost"].error
    assert ghost is not None and ghost.message == "storageclass no-such-class not exists"
    assert s["shop/static"].kind is SourceKind.empty and s["shop/static"].error is None
    assert s["shop/defaulted"].kind is SourceKind.snapshot  # the default class is a disk class
    assert [x.pvc for x in plan.with_snapshots()] == ["db", "defaulted"]


def test_no_volume_data_restores_empty_claims() -> None:
    plan = plan_sources([pvc("db")], ctx(), snapshots={"shop/db": snap("db")}, files={}, skipped={},
                        volume_data=False, existing=set())
    source = plan.sources["shop/db"]
    assert source.kind is SourceKind.empty and "not requested" in source.note


def test_preparer_sets_the_data_source_or_fails_the_item() -> None:
    plan = plan_sources([pvc("db"), pvc("ghost", "no-such-class")], ctx(), snapshots={"shop/db": snap("db")},
                        files={}, skipped={}, volume_data=True, existing=set())
    prepare = data_source_preparer(plan)
    restored = pvc("db") | {"metadata": {"name": "db", "namespace": "shop2"}}
    verdict = prepare(pvc("db"), restored)
    assert verdict is not None and verdict.error is None
    assert restored["spec"]["dataSource"] == {"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot",
                                              "name": plan.sources["shop/db"].snapshot}
    failed = prepare(pvc("ghost", "no-such-class"), pvc("ghost", "no-such-class"))
    assert failed is not None and failed.error is not None and failed.error.code == "StorageClassMissing"
    assert prepare({"kind": "ConfigMap"}, {"kind": "ConfigMap", "apiVersion": "v1"}) is None
