"""Control activities of a file restore (workflows/file_restore.py): find the chosen files in the
backup and the pod that mounts the target PVC, and remove the temporary pod the job made.

Writing the files is the node worker's (activities/node.py ``restore_chosen_files``): it runs on
the node where the kubelet mounted the PVC.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from temporalio import activity

from activities import waiting
from activities.context import current
from activities.errors import product_errors
from datamover import check_paths
from datamover.errors import PathNotInSnapshot, UnsafeChoice
from kube.rest import Kube
from kube.restore.volumes import create_mount_pod
from schemas.errors import BackupCenterError
from schemas.restore import FileRestorePlan, FileVolume
from schemas.specs import FileRestoreSpec
from vault import catalog
from vault.store import ObjectStore

FILE_RESTORE_LABEL = "backupcenter.io/file-restore"
POD_GONE_TIMEOUT = timedelta(minutes=1)


def find_files(store: ObjectStore, spec: FileRestoreSpec) -> tuple[str, list[str]]:
    """(the snapshot holding the volume's files, the chosen paths normalised): InvalidSpec naming the
    field when the backup has no such copy or the paths are unsafe or not in it.  The CLI checks the
    same before it starts the job."""
    try:
        catalog.committed_backup(store, spec.backup, spec.vault)
        snapshot = catalog.file_copy(store, spec.backup, spec.volume)
    except BackupCenterError as err:
        if err.code in ("InvalidSpec", "BackupNotInVault"):
            raise err.as_final() from None
        raise
    try:
        return snapshot, check_paths(store, snapshot, spec.paths)
    except (PathNotInSnapshot, UnsafeChoice) as err:
        raise BackupCenterError("InvalidSpec", field="paths", reason=str(err)).as_final() from None


def mount_pod_name(job: str, namespace: str, pvc: str) -> str:
    digest = hashlib.sha256(f"{job}/{namespace}/{pvc}".encode()).hexdigest()[:8]
    return f"file-restore-{pvc}"[:53].rstrip("-.") + f"-{digest}"


def running_consumer(kube: Kube, namespace: str, pvc: str) -> str | None:
    """A running pod (not being deleted) that mounts the claim: its node has the volume mounted."""
    pods = kube.list(f"/api/v1/namespaces/{namespace}/pods")[0]
    for pod in sorted(pods, key=lambda p: str(p["metadata"]["name"])):
        meta, spec = pod["metadata"], pod.get("spec") or {}
        if meta.get("deletionTimestamp") or (pod.get("status") or {}).get("phase") != "Running":
            continue
        if not spec.get("nodeName"):
            continue
        for volume in spec.get("volumes") or []:
            if (volume.get("persistentVolumeClaim") or {}).get("claimName") == pvc:
                return str(meta["name"])
    return None


@activity.defn
@product_errors
def plan_file_restore(spec: FileRestoreSpec) -> FileRestorePlan:
    """The snapshot and chosen paths, and the pod whose mount the node worker writes through: a
    running pod of the PVC's own, else a temporary pod this job makes (removed when it ends)."""
    ctx = current()
    snapshot, paths = find_files(ctx.store(spec.vault), spec)
    kube = ctx.kube()
    ns, pvc = spec.target_namespace, spec.target_pvc
    if kube.get(f"/api/v1/namespaces/{ns}/persistentvolumeclaims/{pvc}") is None:
        raise BackupCenterError("NotFound", kind="persistentvolumeclaim", name=f"{ns}/{pvc}").as_final()
    pod = running_consumer(kube, ns, pvc)
    temporary = pod is None
    if pod is None:
        pod = mount_pod_name(spec.name, ns, pvc)
        create_mount_pod(kube, ns, pvc, pod, {FILE_RESTORE_LABEL: spec.name})
    return FileRestorePlan(
        snapshot_id=snapshot,
        paths=paths,
        mount=FileVolume(source=spec.volume, namespace=ns, pvc=pvc, pod=pod, snapshot_id=snapshot),
        temporary_pod=temporary,
    )


def _mount_pods(kube: Kube, job: str) -> list[dict[str, Any]]:
    return kube.list("/api/v1/pods", labelSelector=f"{FILE_RESTORE_LABEL}={job}")[0]


@activity.defn
@product_errors
def remove_mount_pod(job: str) -> int:
    """Delete the temporary pod of file restore ``job`` (if it made one) and wait until it is gone:
    a disk volume attaches to one node only, and the PVC's own pod must be able to take it."""
    kube = current().kube()
    removed = 0
    for pod in _mount_pods(kube, job):
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        removed += kube.delete(f"/api/v1/namespaces/{ns}/pods/{name}", {"gracePeriodSeconds": 0})
    until = waiting.deadline(POD_GONE_TIMEOUT)
    waiting.poll([job], lambda j: not _mount_pods(kube, j), until, "temporary pod gone")
    return removed


ACTIVITIES: list[Callable[..., Any]] = [plan_file_restore, remove_mount_pod]
