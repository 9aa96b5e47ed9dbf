"""How restored PVCs get their data, and the temporary snapshot objects that carry it.

A PVC whose volume the backup snapshotted is restored from that snapshot the way CSI restores
snapshots across clusters: a pre-provisioned VolumeSnapshotContent naming the recorded snapshot
handle (``deletionPolicy: Retain``, so removing the copy here never deletes the backup's data),
a VolumeSnapshot in the target namespace bound to it, and the PVC with that snapshot as its data
source.  The two snapshot objects are temporaries of the restore (labelled with it): they go
once the PVC is bound, or when the restore is canceled.

A PVC whose data was copied at file level is filled by a node worker: a temporary pod mounts
it (binding it, when its class waits for a consumer), the node worker of the pod's node writes
the files into that mount, and the pod goes, all before the workloads are restored.  A PVC
without data in the backup is restored empty (a new volume), with a warning.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from kube.rest import Kube, KubeError
from kube.restore.apply import Obj, Prepare
from kube.restore.context import RESTORE_LABEL, ActionResult, RestoreContext
from kube.volumes import SNAPSHOT_API
from schemas.backup import SnapshotState
from schemas.convert import ConvertedVolume
from schemas.errors import BackupCenterError, ErrorInfo
from schemas.restore import FileTarget, FileVolume
from schemas.volumes import CSI_PLUGIN_DIR

TEMPORARY_LABEL = "backupcenter.io/restore-temporary"
SNAPSHOT_GROUP = "snapshot.storage.k8s.io"
# The fill pod only holds the volume mounted on a node for the node worker; it runs nothing.
FILL_IMAGE = "registry.k8s.io/pause:3.10"
# Volume sources of kubelet in-tree plugins, whose mount directory is kubernetes.io~<kind>.
IN_TREE_KINDS = ("nfs", "local", "cephfs", "glusterfs", "iscsi", "azureFile")


class SourceKind(StrEnum):
    snapshot = "snapshot"  # from the backup's CSI snapshot
    files = "files"  # to be filled by a node worker from the file-level backup
    empty = "empty"  # no data in the backup (or volume data not requested): a new volume
    exists = "exists"  # the PVC exists in the target and the policy keeps it


class VolumeSource(BaseModel):
    source: str  # "<namespace>/<pvc>" in the backup
    namespace: str  # in the target
    pvc: str
    kind: SourceKind
    snapshot: str = ""  # temporary VolumeSnapshot (target namespace)
    content: str = ""  # temporary VolumeSnapshotContent
    handle: str = ""
    driver: str = ""
    snapshot_class: str = ""
    source_volume_mode: str = ""  # recorded with the backup: the re-created content states it
    files_snapshot: str = ""  # data mover snapshot of a file-level backup
    converted_to: str = ""  # the snapshot is a conversion's, to this class
    error: ErrorInfo | None = None
    note: str = ""  # a warning for describe

    @property
    def target(self) -> str:
        return f"{self.namespace}/{self.pvc}"


class VolumeSources(BaseModel):
    """``volume-sources.json`` of a restore, keyed by the PVC's name in the backup."""

    sources: dict[str, VolumeSource] = Field(default_factory=dict)

    def with_snapshots(self) -> list[VolumeSource]:
        return [s for s in self.sources.values() if s.kind is SourceKind.snapshot and s.error is None]

    def with_files(self) -> list[VolumeSource]:
        return [s for s in self.sources.values() if s.kind is SourceKind.files and s.error is None]


def temporary_names(restore: str, namespace: str, pvc: str) -> tuple[str, str]:
    """(VolumeSnapshot, VolumeSnapshotContent) names; deterministic so retries find their objects."""
    digest = hashlib.sha256(f"{restore}/{namespace}/{pvc}".encode()).hexdigest()
    snapshot = f"{restore}-{pvc}"[:52].rstrip("-.") + f"-{digest[:8]}"
    return snapshot, f"restore-{digest[:24]}"


def _target_class(pvc: Obj, ctx: RestoreContext) -> str | None:
    """The class the restored claim asks for; None for "no class" (a statically bound volume)."""
    spec = pvc.get("spec") or {}
    annotations = (pvc.get("metadata") or {}).get("annotations") or {}
    # Absent means the cluster's default class; "" means none.  Old claims name it in an annotation.
    name = spec.get("storageClassName", annotations.get("volume.beta.kubernetes.io/storage-class"))
    if name is None:
        return ctx.default_storage_class
    return ctx.storage_class_mapping.get(name, name) or None


def plan_sources(
    pvcs: Iterable[Obj],
    ctx: RestoreContext,
    *,
    snapshots: dict[str, SnapshotState],
    files: dict[str, str],
    skipped: dict[str, str],
    volume_data: bool,
    existing: set[str],
    converted: dict[tuple[str, str], ConvertedVolume] | None = None,
) -> VolumeSources:
    """One source per selected PVC (originals as backed up).  ``existing`` holds target
    "<ns>/<pvc>" that exist already and stay (policy none): they need no data source.
    ``converted`` holds the backup's converted snapshots by (source "<ns>/<pvc>", target class):
    a claim whose class maps to a converted class is restored from that snapshot."""
    converted = converted or {}
    plan = VolumeSources()
    for pvc in pvcs:
        meta = pvc.get("metadata") or {}
        ns, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
        key, target_ns = f"{ns}/{name}", ctx.map_namespace(ns)
        snap_name, content = temporary_names(ctx.restore_name, target_ns, name)
        source = VolumeSource(source=key, namespace=target_ns, pvc=name, kind=SourceKind.empty)
        cls = _target_class(pvc, ctx)
        record = snapshots.get(key)
        if f"{target_ns}/{name}" in existing:
            source.kind = SourceKind.exists
        elif cls and not ctx.knows_class(cls):
            source.error = BackupCenterError("StorageClassMissing", name=cls).info()
        elif not volume_data:
            source.note = "volume data not requested: restored as a new, empty volume"
        elif (conversion := converted.get((key, cls or ""))) is not None:
            source = source.model_copy(update={
                "kind": SourceKind.snapshot, "snapshot": snap_name, "content": content,
                "handle": conversion.handle, "driver": conversion.driver,
                "snapshot_class": conversion.snapshot_class, "converted_to": conversion.target_class,
                "source_volume_mode": conversion.source_volume_mode})
        elif record is not None and record.ready and record.handle:
            provisioner = ctx.storage_classes.get(cls or "", "")
            if provisioner and record.driver and provisioner != record.driver:
                source.error = BackupCenterError(
                    "VolumeNeedsConversion", pvc=f"{target_ns}/{name}", driver=record.driver,
                    storage_class=cls or "", provisioner=provisioner).info()
            else:
                source = source.model_copy(update={
                    "kind": SourceKind.snapshot, "snapshot": snap_name, "content": content,
                    "handle": record.handle, "driver": record.driver,
                    "snapshot_class": record.snapshot_class,
                    "source_volume_mode": record.source_volume_mode})
        elif key in files:
            source.kind = SourceKind.files
            source.files_snapshot = files[key]
        else:
            why = skipped.get(key, "its volume was not mounted by a pod of the backup")
            source.note = f"volume data is not in the backup ({why}): restored as a new, empty volume"
        plan.sources[key] = source
    return plan


def data_source_preparer(plan: VolumeSources) -> Prepare:
    """The apply hook for PVCs: the data source, or the planning's error and warning."""

    def prepare(original: Obj, obj: Obj) -> ActionResult | None:
        if obj.get("kind") != "PersistentVolumeClaim" or obj.get("apiVersion") != "v1":
            return None
        meta = original.get("metadata") or {}
        source = plan.sources.get(f"{meta.get('namespace', '')}/{meta.get('name', '')}")
        if source is None:
            return None
        warnings = [source.note] if source.note else []
        if source.error is not None:
            return ActionResult(error=source.error, warnings=warnings)
        if source.kind is SourceKind.snapshot:
            obj.setdefault("spec", {})["dataSource"] = {
                "apiGroup": SNAPSHOT_GROUP, "kind": "VolumeSnapshot", "name": source.snapshot}
        return ActionResult(warnings=warnings)

    return prepare


# --- temporary snapshot objects -------------------------------------------------------------
def _labels(restore: str) -> dict[str, str]:
    return {RESTORE_LABEL: restore, TEMPORARY_LABEL: restore}


def create_temporaries(kube: Kube, source: VolumeSource, restore: str, snapshot_classes: set[str]) -> None:
    """The pre-provisioned content and its VolumeSnapshot (idempotent)."""
    content_spec: dict[str, Any] = {
        "deletionPolicy": "Retain",
        "driver": source.driver,
        "source": {"snapshotHandle": source.handle},
        "volumeSnapshotRef": {"name": source.snapshot, "namespace": source.namespace},
    }
    if source.snapshot_class in snapshot_classes:
        content_spec["volumeSnapshotClassName"] = source.snapshot_class
    if source.source_volume_mode:
        content_spec["sourceVolumeMode"] = source.source_volume_mode
    kube.create(f"{SNAPSHOT_API}/volumesnapshotcontents", {
        "apiVersion": f"{SNAPSHOT_GROUP}/v1", "kind": "VolumeSnapshotContent",
        "metadata": {"name": source.content, "labels": _labels(restore)}, "spec": content_spec,
    }, exist_ok=True)
    kube.create(f"{SNAPSHOT_API}/namespaces/{source.namespace}/volumesnapshots", {
        "apiVersion": f"{SNAPSHOT_GROUP}/v1", "kind": "VolumeSnapshot",
        "metadata": {"name": source.snapshot, "labels": _labels(restore)},
        "spec": {"source": {"volumeSnapshotContentName": source.content}},
    }, exist_ok=True)


def snapshot_classes(kube: Kube) -> set[str]:
    try:
        return {c["metadata"]["name"] for c in kube.list(f"{SNAPSHOT_API}/volumesnapshotclasses")[0]}
    except KubeError:
        return set()


def snapshot_ready(kube: Kube, source: VolumeSource) -> tuple[bool, str]:
    """(ready, the latest error of the snapshot or its content)."""
    snap = kube.get(f"{SNAPSHOT_API}/namespaces/{source.namespace}/volumesnapshots/{source.snapshot}")
    if snap is None:
        return False, "the VolumeSnapshot was deleted"
    status = snap.get("status") or {}
    if status.get("readyToUse"):
        return True, ""
    # The content's error is the driver's word on the handle; the snapshot's may only mirror it.
    content = kube.get(f"{SNAPSHOT_API}/volumesnapshotcontents/{source.content}") or {}
    error = ((content.get("status") or {}).get("error") or {}).get("message", "")
    return False, str(error or (status.get("error") or {}).get("message", ""))


# What CSI drivers say when a snapshot handle names nothing they can find: final, never transient.
_GONE = re.compile(r"not\s*found|does\s*not\s*exist|no\s+such\s+snapshot|InvalidSnapshotId", re.IGNORECASE)


def snapshot_gone(error: str) -> bool:
    """Whether a snapshot's (or its content's) error says the snapshot data no longer exists."""
    # "VolumeSnapshotContent x not found" is about the restore's own temporary, not the data.
    return bool(error) and "VolumeSnapshotContent" not in error and bool(_GONE.search(error))


def delete_source_temporaries(kube: Kube, source: VolumeSource) -> int:
    """One source's temporary VolumeSnapshot and content (its PVC will not use them)."""
    removed = kube.delete(f"{SNAPSHOT_API}/namespaces/{source.namespace}/volumesnapshots/{source.snapshot}")
    return removed + kube.delete(f"{SNAPSHOT_API}/volumesnapshotcontents/{source.content}")


def delete_temporaries(kube: Kube, restore: str, keep: set[str] | None = None) -> int:
    """Delete the restore's temporaries: fill pods, and snapshots and contents but those of ``keep``
    ("<ns>/<snapshot>")."""
    keep = keep or set()
    selector = f"{TEMPORARY_LABEL}={restore}"
    removed = delete_fill_pods(kube, restore)
    for snap in kube.list(f"{SNAPSHOT_API}/volumesnapshots", labelSelector=selector)[0]:
        ns, name = snap["metadata"]["namespace"], snap["metadata"]["name"]
        if f"{ns}/{name}" not in keep:
            removed += kube.delete(f"{SNAPSHOT_API}/namespaces/{ns}/volumesnapshots/{name}")
    for content in kube.list(f"{SNAPSHOT_API}/volumesnapshotcontents", labelSelector=selector)[0]:
        ref = (content.get("spec") or {}).get("volumeSnapshotRef") or {}
        if f"{ref.get('namespace')}/{ref.get('name')}" not in keep:
            removed += kube.delete(f"{SNAPSHOT_API}/volumesnapshotcontents/{content['metadata']['name']}")
    return removed


def claim_phase(kube: Kube, namespace: str, name: str) -> tuple[str, str | None]:
    """(phase, storage class) of a PVC; phase "" when it does not exist."""
    found = kube.get(f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/{name}")
    if found is None:
        return "", None
    phase = str((found.get("status") or {}).get("phase", ""))
    return phase, (found.get("spec") or {}).get("storageClassName")


def has_consumer(kube: Kube, namespace: str, claim: str) -> bool:
    """Whether a pod of the namespace mounts the claim (it will make a waiting claim bind)."""
    for pod in kube.list(f"/api/v1/namespaces/{namespace}/pods")[0]:
        for volume in (pod.get("spec") or {}).get("volumes") or []:
            if (volume.get("persistentVolumeClaim") or {}).get("claimName") == claim:
                return True
    return False


# --- file-level data: the fill pods -------------------------------------------------------------
def fill_pod_name(restore: str, namespace: str, pvc: str) -> str:
    digest = hashlib.sha256(f"{restore}/{namespace}/{pvc}".encode()).hexdigest()[:8]
    return f"restore-fill-{pvc}"[:53].rstrip("-.") + f"-{digest}"


def create_mount_pod(kube: Kube, namespace: str, pvc: str, name: str, labels: dict[str, str]) -> None:
    """A pod that only mounts the PVC, so its kubelet mounts it for a node worker (idempotent)."""
    kube.create(f"/api/v1/namespaces/{namespace}/pods", {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "containers": [{"name": "fill", "image": FILL_IMAGE,
                            "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": pvc}}],
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 0,
        },
    }, exist_ok=True)


def create_fill_pod(kube: Kube, source: VolumeSource, restore: str) -> FileVolume:
    """The temporary pod mounting a file-backed PVC (idempotent)."""
    name = fill_pod_name(restore, source.namespace, source.pvc)
    create_mount_pod(kube, source.namespace, source.pvc, name, _labels(restore))
    return FileVolume(source=source.source, namespace=source.namespace, pvc=source.pvc, pod=name,
                      snapshot_id=source.files_snapshot)


def plugin_dir(pv: Obj) -> str:
    """The kubelet's directory for the volume's plugin under <pod>/volumes/."""
    spec = pv.get("spec") or {}
    for kind in IN_TREE_KINDS:
        if kind in spec:
            return f"kubernetes.io~{kind.lower()}"
    return CSI_PLUGIN_DIR


def mount_of(kube: Kube, namespace: str, pod_name: str, claim_name: str) -> dict[str, str] | None:
    """Where a node worker finds a claim mounted by a pod: node, pod_uid, pv and plugin_dir, once the
    pod runs and the claim is bound; None until then."""
    pod = kube.get(f"/api/v1/namespaces/{namespace}/pods/{pod_name}") or {}
    node = (pod.get("spec") or {}).get("nodeName")
    if (pod.get("status") or {}).get("phase") != "Running" or not node:
        return None
    claim = kube.get(f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/{claim_name}") or {}
    pv_name = (claim.get("spec") or {}).get("volumeName")
    if (claim.get("status") or {}).get("phase") != "Bound" or not pv_name:
        return None
    pv = kube.get(f"/api/v1/persistentvolumes/{pv_name}") or {}
    return {"node": str(node), "pod_uid": str(pod["metadata"]["uid"]), "pv": str(pv_name),
            "plugin_dir": plugin_dir(pv)}


def fill_target(kube: Kube, volume: FileVolume) -> FileTarget | None:
    """Where to write, once the fill pod runs and its claim is bound; None until then."""
    mount = mount_of(kube, volume.namespace, volume.pod, volume.pvc)
    return FileTarget(**volume.model_dump(), **mount) if mount is not None else None


def delete_fill_pods(kube: Kube, restore: str) -> int:
    removed = 0
    for pod in kube.list("/api/v1/pods", labelSelector=f"{TEMPORARY_LABEL}={restore}")[0]:
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        removed += kube.delete(f"/api/v1/namespaces/{ns}/pods/{name}", {"gracePeriodSeconds": 0})
    return removed


def fill_pods_left(kube: Kube, restore: str) -> int:
    return len(kube.list("/api/v1/pods", labelSelector=f"{TEMPORARY_LABEL}={restore}")[0])
