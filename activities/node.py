"""Node-worker activities: file-level volume data, read where the kubelet mounted the volume.

They run on the per-node task queue of the node the volume is mounted on, and read
``<kubelet-root>/pods/<pod-uid>/volumes/<plugin-dir>/<pv>/mount`` through the data mover.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from temporalio import activity

from activities.context import current
from activities.errors import product_errors
from datamover import DataMoverError, Progress, SnapshotSummary, backup_tree, restore_tree
from datamover.errors import PathNotInSnapshot, UnsafeChoice
from schemas.errors import BackupCenterError
from schemas.restore import FilesRestored
from schemas.volumes import Mount, VolumePlan


class VolumeFilesRequest(BaseModel):
    backup: str
    vault: str
    plan: VolumePlan
    mount: Mount
    parent_snapshot: str | None = None
    run_uid: str


def snapshot_id_for(run_uid: str, plan: VolumePlan) -> str:
    """Deterministic per run and volume: a retried activity finds the snapshot it already wrote."""
    return "vol-" + hashlib.sha256(f"{run_uid}/{plan.ref}".encode()).hexdigest()[:32]


def mount_path(kubelet_root: Path, plan: VolumePlan, mount: Mount) -> Path:
    return kubelet_root / "pods" / mount.pod_uid / "volumes" / plan.plugin_dir / plan.pv / "mount"


def _heartbeat(volume: str) -> Callable[[Progress], None]:
    """Heartbeats naming the volume, so describe and --wait can show its copy's progress."""

    def beat(progress: Progress) -> None:
        activity.heartbeat(
            {
                "volume": volume,
                "files_done": progress.files_done,
                "files_total": progress.files_total,
                "bytes_done": progress.bytes_done,
                "bytes_total": progress.bytes_total,
            }
        )

    return beat


@activity.defn
@product_errors
def backup_volume_files(request: VolumeFilesRequest) -> SnapshotSummary:
    ctx = current()
    path = mount_path(ctx.kubelet_root, request.plan, request.mount)
    if not path.is_dir():
        raise BackupCenterError(
            "VolumeMountMissing", volume=request.plan.ref, node=ctx.node_name or "?", path=str(path)
        )
    store = ctx.store(request.vault)
    try:
        # Kubelets bind-mount volumes; the path may also sit behind a symlinked root: read the real
        # directory so the data mover sees a directory, not a link to one.
        return backup_tree(
            store,
            path.resolve(strict=True),
            volume_id=request.plan.ref,
            parent_snapshot=request.parent_snapshot,
            snapshot_id=snapshot_id_for(request.run_uid, request.plan),
            progress=_heartbeat(request.plan.ref),
        )
    except (DataMoverError, OSError) as err:
        raise BackupCenterError("VolumeCopyFailed", volume=request.plan.ref, reason=str(err)) from None


class VolumeRestoreRequest(BaseModel):
    vault: str
    snapshot_id: str
    target_pod_uid: str
    plugin_dir: str
    pv: str
    volume: str  # "<ns>/<pvc>" in the target cluster, for messages


def _target_mount(request: VolumeRestoreRequest) -> Path:
    """The real directory of the target pod's mount of the volume on this node."""
    ctx = current()
    path = (
        ctx.kubelet_root
        / "pods"
        / request.target_pod_uid
        / "volumes"
        / request.plugin_dir
        / request.pv
        / "mount"
    )
    if not path.is_dir():
        raise BackupCenterError(
            "VolumeMountMissing", volume=request.volume, node=ctx.node_name or "?", path=str(path)
        )
    return path.resolve(strict=True)


@activity.defn
@product_errors
def restore_volume_files(request: VolumeRestoreRequest) -> int:
    """Write a file-level snapshot into a volume mounted on this node; returns files written."""
    path = _target_mount(request)
    try:
        summary = restore_tree(
            current().store(request.vault), request.snapshot_id, path, progress=_heartbeat(request.volume)
        )
    except (DataMoverError, OSError) as err:
        raise BackupCenterError("VolumeCopyFailed", volume=request.volume, reason=str(err)) from None
    return summary.files


class ChosenFilesRequest(VolumeRestoreRequest):
    paths: list[str]
    subdir: str = ""  # normalised (FileRestoreSpec): no '..', '.' or empty parts
    overwrite: bool = False


def _subdir_of(mount: Path, subdir: str, volume: str) -> Path:
    """``mount/subdir``, made where missing; refused where a part of it is a symlink or not a
    directory (a link in a live volume could point the restore outside it)."""
    path = mount
    for part in subdir.split("/") if subdir else []:
        path = path / part
        if path.is_symlink() or (path.exists() and not path.is_dir()):
            what = "a symlink" if path.is_symlink() else "not a directory"
            raise BackupCenterError(
                "InvalidSpec", field="subdir",
                reason=f"{path.relative_to(mount)} in volume {volume} is {what}: choose another directory",
            ).as_final()
        if not path.exists():
            path.mkdir()
    return path


@activity.defn
@product_errors
def restore_chosen_files(request: ChosenFilesRequest) -> FilesRestored:
    """Write chosen paths of a file-level snapshot into a volume mounted on this node (under its
    ``subdir``); files already there are kept unless ``overwrite``, the rest of the volume is untouched."""
    mount = _target_mount(request)
    target = _subdir_of(mount, request.subdir, request.volume)
    try:
        summary = restore_tree(
            current().store(request.vault), request.snapshot_id, target, paths=request.paths,
            overwrite=request.overwrite, progress=_heartbeat(request.volume),
        )
    except (PathNotInSnapshot, UnsafeChoice) as err:
        raise BackupCenterError("InvalidSpec", field="paths", reason=str(err)).as_final() from None
    except (DataMoverError, OSError) as err:
        raise BackupCenterError("VolumeCopyFailed", volume=request.volume, reason=str(err)) from None
    return FilesRestored(files=summary.files, dirs=summary.dirs, bytes=summary.bytes,
                         kept_existing=summary.kept_existing, warnings=list(summary.warning_paths))


ACTIVITIES: list[Callable[..., Any]] = [backup_volume_files, restore_volume_files, restore_chosen_files]
