"""CSI VolumeSnapshots taken by a backup: create (idempotently), check readiness, remove."""

from __future__ import annotations

import hashlib
from typing import Any

from kube.rest import Kube, KubeError
from kube.volumes import SNAPSHOT_API
from schemas.backup import SnapshotState
from schemas.volumes import VolumePlan

BACKUP_LABEL = "backupcenter.io/backup"


def snapshot_name(backup: str, plan: VolumePlan) -> str:
    """Deterministic, so a retried activity finds the snapshot it already created."""
    digest = hashlib.sha256(f"{backup}/{plan.namespace}/{plan.pvc}".encode()).hexdigest()[:8]
    base = f"{backup}-{plan.pvc}"[:54].rstrip("-")
    return f"{base}-{digest}"


def create(kube: Kube, backup: str, plan: VolumePlan) -> SnapshotState:
    name = snapshot_name(backup, plan)
    body = {
        "apiVersion": "snapshot.storage.k8s.io/v1",
        "kind": "VolumeSnapshot",
        "metadata": {"name": name, "namespace": plan.namespace, "labels": {BACKUP_LABEL: backup}},
        "spec": {
            "volumeSnapshotClassName": plan.snapshot_class,
            "source": {"persistentVolumeClaimName": plan.pvc},
        },
    }
    kube.create(f"{SNAPSHOT_API}/namespaces/{plan.namespace}/volumesnapshots", body, exist_ok=True)
    return SnapshotState(
        namespace=plan.namespace,
        pvc=plan.pvc,
        snapshot=name,
        driver=plan.driver,
        snapshot_class=plan.snapshot_class,
    )


def observe(kube: Kube, state: SnapshotState) -> SnapshotState:
    """Refresh readiness, handle and restore size from the VolumeSnapshot and its content."""
    snap = kube.get(f"{SNAPSHOT_API}/namespaces/{state.namespace}/volumesnapshots/{state.snapshot}")
    if snap is None:
        return state.model_copy(update={"ready": False, "error": "the VolumeSnapshot was deleted"})
    status: dict[str, Any] = snap.get("status") or {}
    update: dict[str, Any] = {
        "ready": bool(status.get("readyToUse")),
        "error": (status.get("error") or {}).get("message", ""),
        "content": status.get("boundVolumeSnapshotContentName", ""),
        "restore_size": str(status.get("restoreSize") or ""),
    }
    if update["content"]:
        content = kube.get(f"{SNAPSHOT_API}/volumesnapshotcontents/{update['content']}") or {}
        update["handle"] = (content.get("status") or {}).get("snapshotHandle", "")
        # Retain keeps the cloud snapshot when the content goes: deleting the backup must leave it too.
        update["deletion_policy"] = (content.get("spec") or {}).get("deletionPolicy", "")
    return state.model_copy(update=update)


def delete_for_backup(kube: Kube, backup: str, namespaces: list[str]) -> int:
    """Delete every VolumeSnapshot the backup created; returns how many were removed."""
    removed = 0
    for ns in namespaces:
        items, _ = kube.list(
            f"{SNAPSHOT_API}/namespaces/{ns}/volumesnapshots", labelSelector=f"{BACKUP_LABEL}={backup}"
        )
        for item in items:
            try:
                if kube.delete(f"{SNAPSHOT_API}/namespaces/{ns}/volumesnapshots/{item['metadata']['name']}"):
                    removed += 1
            except KubeError as err:
                if err.status != 404:
                    raise
    return removed
