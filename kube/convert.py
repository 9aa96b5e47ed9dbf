"""Storage-class conversion in the cluster: which volumes to convert, and the temporaries that do it.

For each file-level volume of a backup whose class is mapped to a disk class, the conversion
creates a temporary PVC ``<pvc>-for-convert<stamp>`` in the target class and a temporary pod of
the same name mounting it (the pod also makes a WaitForFirstConsumer class bind).  The node
worker of the pod's node writes the backed-up files into the mount, a VolumeSnapshot of the
temporary PVC is cut, and the PVC and pod go.  The snapshot stays (labelled with the conversion
and its backup): a restore mapping the class uses it, a delete request removes it.

Names are derived from the conversion's start minute, so a retried activity finds what an
earlier attempt created.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from kube.rest import Kube
from kube.restore.actions.storage import DISK_MINIMUM
from kube.restore.context import DISK_PROVISIONER, MULTI_NODE_MODES, NAS_PROVISIONER
from kube.restore.quantity import format_gib, quantity_bytes
from kube.restore.target import TargetClasses
from kube.restore.volumes import FILL_IMAGE, mount_of
from kube.snapshots import BACKUP_LABEL, POLICY_ANNOTATION, take_ownership
from kube.volumes import SNAPSHOT_API
from schemas.backup import VolumeRecords
from schemas.convert import ConvertedVolume, ConvertFillTarget, ConvertItem, ConvertPlan
from schemas.errors import BackupCenterError, ErrorInfo
from schemas.specs import ConvertSpec

CONVERT_LABEL = "backupcenter.io/convert"
TEMPORARY_LABEL = "backupcenter.io/convert-temporary"
CONVERTS_ANNOTATION = "backupcenter.io/converts"  # "<ns>/<pvc>" of the backup a temporary stands for
ZONE_LABEL = "topology.kubernetes.io/zone"
TARGET_PROVISIONERS = (DISK_PROVISIONER, NAS_PROVISIONER)
LEGACY_CLASS_ANNOTATION = "volume.beta.kubernetes.io/storage-class"
Obj = dict[str, Any]


def temp_name(pvc: str, stamp: str) -> str:
    """``<pvc>-for-convert<stamp>``, the reference product's name (pvc shortened to stay a valid name)."""
    suffix = f"-for-convert{stamp}"
    return pvc[: 253 - len(suffix)].rstrip("-.") + suffix


def cluster_zones(kube: Kube) -> set[str]:
    return {
        str(zone)
        for node in kube.list("/api/v1/nodes")[0]
        if (zone := ((node.get("metadata") or {}).get("labels") or {}).get(ZONE_LABEL))
    }


def check_targets(spec: ConvertSpec, classes: TargetClasses, zones: set[str]) -> None:
    """The target classes exist, are disk or NAS CSI classes, and can provision where pods run."""
    for target in sorted(set(spec.storage_class_mapping.values())):
        provisioner = classes.provisioners.get(target)
        if provisioner is None:
            raise BackupCenterError("StorageClassMissing", name=target)
        if provisioner not in TARGET_PROVISIONERS:
            raise BackupCenterError("StorageClassUnsupported", name=target, provisioner=provisioner)
        if (
            provisioner == DISK_PROVISIONER
            and classes.binding_modes.get(target) == "Immediate"
            and len(zones) > 1
        ):
            raise BackupCenterError("MultiZoneImmediate", name=target)


def claim_class(pvc: Obj) -> str:
    spec = pvc.get("spec") or {}
    annotations = (pvc.get("metadata") or {}).get("annotations") or {}
    return str(spec.get("storageClassName") or annotations.get(LEGACY_CLASS_ANNOTATION) or "")


def _size(pvc: Obj, disk: bool) -> str:
    raw = str((((pvc.get("spec") or {}).get("resources") or {}).get("requests") or {}).get("storage", "1Gi"))
    if not disk:
        return raw
    try:
        return format_gib(DISK_MINIMUM) if quantity_bytes(raw) < DISK_MINIMUM else raw
    except ValueError:
        return format_gib(DISK_MINIMUM)


def plan_conversion(
    spec: ConvertSpec,
    pvcs: Iterable[Obj],
    records: VolumeRecords,
    classes: TargetClasses,
    snapshot_classes: dict[str, str],
    *,
    namespace_for: dict[str, str],
    stamp: str,
    backup_cluster: str,
) -> tuple[ConvertPlan, dict[str, ErrorInfo]]:
    """The volumes to convert, those that need nothing (why), and those that cannot be (why).

    ``namespace_for`` maps a backup namespace to where its temporaries go in this cluster.
    """
    plan = ConvertPlan(backup_cluster=backup_cluster)
    failed: dict[str, ErrorInfo] = {}
    snapshots = {f"{s.namespace}/{s.pvc}": s for s in records.snapshots}
    for pvc in sorted(pvcs, key=lambda p: (p["metadata"]["namespace"], p["metadata"]["name"])):
        ns, name = str(pvc["metadata"]["namespace"]), str(pvc["metadata"]["name"])
        key, source_class = f"{ns}/{name}", claim_class(pvc)
        target = spec.storage_class_mapping.get(source_class)
        if target is None:
            continue  # its class is not converted
        driver = classes.provisioners[target]  # check_targets ran first
        snapshot = snapshots.get(key)
        if key not in records.files:
            if snapshot is not None and snapshot.driver == driver:
                plan.skipped[key] = f"its {driver} snapshot restores into {target} as it is"
            elif snapshot is not None:
                failed[key] = BackupCenterError(
                    "ConversionUnsupported", pvc=key, source=f"a {snapshot.driver} snapshot", target=target
                ).info()
            else:
                why = records.skipped.get(key, "its volume was not mounted by a pod of the backup")
                plan.skipped[key] = f"no volume data in the backup ({why})"
            continue
        if driver != DISK_PROVISIONER:
            plan.skipped[key] = (
                f"file-level data is written into {target} volumes at restore; nothing to convert"
            )
            continue
        snapshot_class = snapshot_classes.get(driver)
        if not snapshot_class:
            failed[key] = BackupCenterError(
                "NoSnapshotClass", pvc=key, driver=driver, storage_class=target
            ).info()
            continue
        modes = list((pvc.get("spec") or {}).get("accessModes") or ["ReadWriteOnce"])
        if spec.convert_to_access_modes:
            modes = list(spec.convert_to_access_modes)
        bad = next((m for m in modes if m in MULTI_NODE_MODES), None)
        if bad is not None:
            failed[key] = BackupCenterError("DiskMultiNodeAccess", pvc=key, mode=bad).info()
            continue
        plan.items.append(
            ConvertItem(
                source=key,
                namespace=namespace_for.get(ns, ns),
                temp_pvc=temp_name(name, stamp),
                source_class=source_class,
                target_class=target,
                driver=driver,
                snapshot_class=snapshot_class,
                size=_size(pvc, disk=True),
                access_modes=modes,
                files_snapshot=records.files[key],
            )
        )
    return plan, failed


# --- temporaries ------------------------------------------------------------------------------
def _labels(convert: str, *, temporary: bool) -> dict[str, str]:
    labels = {CONVERT_LABEL: convert}
    if temporary:
        labels[TEMPORARY_LABEL] = convert
    return labels


def create_temporaries(kube: Kube, convert: str, item: ConvertItem) -> None:
    """The temporary PVC in the target class and the pod that mounts it (idempotent)."""
    labels = _labels(convert, temporary=True)
    kube.create(
        f"/api/v1/namespaces/{item.namespace}/persistentvolumeclaims",
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {
                "name": item.temp_pvc,
                "labels": labels,
                "annotations": {CONVERTS_ANNOTATION: item.source},
            },
            "spec": {
                "storageClassName": item.target_class,
                "accessModes": item.access_modes,
                "resources": {"requests": {"storage": item.size}},
            },
        },
        exist_ok=True,
    )
    kube.create(
        f"/api/v1/namespaces/{item.namespace}/pods",
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": item.temp_pvc, "labels": labels},
            "spec": {
                "containers": [
                    {
                        "name": "fill",
                        "image": FILL_IMAGE,
                        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                    }
                ],
                "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": item.temp_pvc}}],
                "restartPolicy": "Never",
                "terminationGracePeriodSeconds": 0,
            },
        },
        exist_ok=True,
    )


def fill_target(kube: Kube, item: ConvertItem) -> ConvertFillTarget | None:
    """Where the node worker writes, once the pod runs and the PVC is bound; None until then."""
    mount = mount_of(kube, item.namespace, item.temp_pvc, item.temp_pvc)
    return ConvertFillTarget(item=item, **mount) if mount is not None else None


def create_snapshot(kube: Kube, convert: str, backup: str, item: ConvertItem) -> None:
    """The VolumeSnapshot of the filled temporary PVC; it outlives the PVC (idempotent)."""
    labels = {**_labels(convert, temporary=False), BACKUP_LABEL: backup}
    kube.create(
        f"{SNAPSHOT_API}/namespaces/{item.namespace}/volumesnapshots",
        {
            "apiVersion": "snapshot.storage.k8s.io/v1",
            "kind": "VolumeSnapshot",
            "metadata": {
                "name": item.temp_pvc,
                "labels": labels,
                "annotations": {CONVERTS_ANNOTATION: item.source},
            },
            "spec": {
                "volumeSnapshotClassName": item.snapshot_class,
                "source": {"persistentVolumeClaimName": item.temp_pvc},
            },
        },
        exist_ok=True,
    )


def observe_snapshot(kube: Kube, item: ConvertItem) -> tuple[ConvertedVolume | None, str]:
    """(the converted volume once its snapshot is ready, else None; the latest snapshot error)."""
    snap = kube.get(f"{SNAPSHOT_API}/namespaces/{item.namespace}/volumesnapshots/{item.temp_pvc}")
    if snap is None:
        return None, "the VolumeSnapshot was deleted"
    status = snap.get("status") or {}
    error = str((status.get("error") or {}).get("message", ""))
    content_name = status.get("boundVolumeSnapshotContentName")
    if not status.get("readyToUse") or not content_name:
        return None, error
    content = kube.get(f"{SNAPSHOT_API}/volumesnapshotcontents/{content_name}") or {}
    handle = str((content.get("status") or {}).get("snapshotHandle", ""))
    if not handle:
        return None, error
    return _converted(item, str(content_name), handle, str(status.get("restoreSize") or "")), error


def _converted(
    item: ConvertItem, content: str, handle: str, restore_size: str, **more: object
) -> ConvertedVolume:
    """The converted volume of ``item``, whose snapshot is ``content`` with ``handle``."""
    return ConvertedVolume.model_validate({
        "source": item.source,
        "source_class": item.source_class,
        "target_class": item.target_class,
        "driver": item.driver,
        "snapshot_class": item.snapshot_class,
        "snapshot": f"{item.namespace}/{item.temp_pvc}",
        "content": content,
        "handle": handle,
        "restore_size": restore_size,
        "access_modes": item.access_modes,
        **more,
    })


def own_snapshot(
    kube: Kube, convert: str, backup: str, volume: ConvertedVolume, beat: Callable[[], None] = lambda: None
) -> ConvertedVolume:
    """Like a backup's snapshots, the converted one is taken over: content Retain, labelled with the
    conversion and its backup, VolumeSnapshot removed (deleting the namespace cannot lose it)."""
    namespace, _, snapshot = volume.snapshot.partition("/")
    owned = take_ownership(
        kube,
        namespace,
        snapshot,
        volume.content,
        {CONVERT_LABEL: convert, BACKUP_LABEL: backup},
        {CONVERTS_ANNOTATION: volume.source},
        handle=volume.handle,
        beat=beat,
    )
    return volume.model_copy(
        update={
            "owned": True,
            "content": owned.content,
            "deletion_policy": owned.deletion_policy,
            "source_volume_mode": owned.source_volume_mode,
        }
    )


def owned_volume(kube: Kube, convert: str, item: ConvertItem) -> ConvertedVolume | None:
    """The converted snapshot an earlier attempt already took over, so a retry cuts no second one."""
    selector = f"{CONVERT_LABEL}={convert}"
    contents, _ = kube.list(f"{SNAPSHOT_API}/volumesnapshotcontents", labelSelector=selector)
    for content in contents:
        meta, status = content.get("metadata") or {}, content.get("status") or {}
        converts = (meta.get("annotations") or {}).get(CONVERTS_ANNOTATION)
        if converts != item.source or not status.get("readyToUse"):
            continue
        spec = content.get("spec") or {}
        size = status.get("restoreSize")
        return _converted(
            item,
            str(meta["name"]),
            str(status.get("snapshotHandle") or ""),
            str(size) if size is not None else "",
            owned=True,
            deletion_policy=str((meta.get("annotations") or {}).get(POLICY_ANNOTATION) or ""),
            source_volume_mode=str(spec.get("sourceVolumeMode") or ""),
        )
    return None


def delete_temporaries(kube: Kube, convert: str) -> int:
    """The conversion's temporary pods and PVCs (its snapshots stay)."""
    selector = f"{TEMPORARY_LABEL}={convert}"
    removed = 0
    for pod in kube.list("/api/v1/pods", labelSelector=selector)[0]:
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        removed += kube.delete(f"/api/v1/namespaces/{ns}/pods/{name}", {"gracePeriodSeconds": 0})
    for pvc in kube.list("/api/v1/persistentvolumeclaims", labelSelector=selector)[0]:
        ns, name = pvc["metadata"]["namespace"], pvc["metadata"]["name"]
        removed += kube.delete(f"/api/v1/namespaces/{ns}/persistentvolumeclaims/{name}")
    return removed


def delete_item_temporaries(kube: Kube, item: ConvertItem) -> int:
    """One volume's temporary pod and PVC (other volumes of the conversion may still be filling)."""
    removed = kube.delete(
        f"/api/v1/namespaces/{item.namespace}/pods/{item.temp_pvc}", {"gracePeriodSeconds": 0}
    )
    return removed + kube.delete(
        f"/api/v1/namespaces/{item.namespace}/persistentvolumeclaims/{item.temp_pvc}"
    )


def item_temporaries_left(kube: Kube, item: ConvertItem) -> int:
    return sum(
        kube.get(f"/api/v1/namespaces/{item.namespace}/{kind}/{item.temp_pvc}") is not None
        for kind in ("pods", "persistentvolumeclaims")
    )


def temporaries_left(kube: Kube, convert: str) -> int:
    selector = f"{TEMPORARY_LABEL}={convert}"
    return len(kube.list("/api/v1/pods", labelSelector=selector)[0]) + len(
        kube.list("/api/v1/persistentvolumeclaims", labelSelector=selector)[0]
    )


def delete_snapshots(kube: Kube, convert: str) -> int:
    """The conversion's VolumeSnapshots (their contents and data follow by deletion policy)."""
    removed = 0
    for snap in kube.list(f"{SNAPSHOT_API}/volumesnapshots", labelSelector=f"{CONVERT_LABEL}={convert}")[0]:
        ns, name = snap["metadata"]["namespace"], snap["metadata"]["name"]
        removed += kube.delete(f"{SNAPSHOT_API}/namespaces/{ns}/volumesnapshots/{name}")
    return removed
