"""Activities of a backup verification (workflows/verify.py): each checks one part of a backup
without restoring anything, and names what it found at fault and what that breaks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from temporalio import activity

from activities.context import current
from activities.ecs import clients_by_region
from activities.errors import product_errors
from datamover import check
from datamover.errors import DataMoverError
from kube import snapshots
from kube.export import check_bundle, read_index
from schemas.backup import VolumeRecords
from schemas.errors import BackupCenterError
from schemas.specs import VerifySpec
from schemas.verify import VerifyFinding, VerifyPart, VerifyReport
from vault import catalog, verifications
from vault.store import ObjectStore, ObjectStoreError


def _store_and_records(spec: VerifySpec) -> tuple[ObjectStore, str, VolumeRecords]:
    """The vault's store, the backup's source cluster and its volume records; the backup must be
    committed (BackupNotInVault says why not)."""
    store = current().store(spec.vault)
    try:
        backup = catalog.committed_backup(store, spec.backup, spec.vault)
    except BackupCenterError as err:
        if err.code == "BackupNotInVault":
            raise err.as_final() from None  # the spec names it: no retry within this job mends that
        raise
    return store, backup.source_cluster or "", catalog.volume_records(store, spec.backup) or VolumeRecords()


@activity.defn
@product_errors
def verify_resources(spec: VerifySpec) -> VerifyPart:
    """Every resource bundle decodes and holds, per namespace, the objects its index counts and digests."""
    store, _, _ = _store_and_records(spec)
    part = VerifyPart()
    try:
        index = read_index(store, spec.backup)
    except (ObjectStoreError, ValueError) as err:
        key = f"{catalog.backup_prefix(spec.backup)}resources/index.json"
        part.findings.append(VerifyFinding(object=key, problem=f"the resource index cannot be read: {err}",
                                           affects=["every resource of the backup"]))
        return part
    part.checked = {"bundles": len(index.bundles), "objects": index.total_objects(preferred_only=False)}
    for n, bundle in enumerate(index.bundles):
        activity.heartbeat({"bundles_done": n})
        problem = check_bundle(store, bundle)
        what = f"{bundle.kind} ({bundle.group or 'core'}/{bundle.version})"
        if problem is None:
            continue
        spaces = sorted(ns or "(cluster-scoped)" for ns in bundle.namespaces)
        part.findings.append(VerifyFinding(object=bundle.key, problem=problem,
                                           affects=[f"{what} in {', '.join(spaces) or 'no namespace'}"]))
    intact = len(index.bundles) - len(part.findings)
    part.restorable.append(f"{intact} of {len(index.bundles)} resource bundles")
    return part


@activity.defn
@product_errors
def verify_volume_files(spec: VerifySpec) -> VerifyPart:
    """Every file-level volume snapshot: manifest, chunk index and packs (and, with read_data,
    every chunk of every pack it uses)."""
    store, _, records = _store_and_records(spec)
    part = VerifyPart()
    counts = {"volumes": 0, "manifests": 0, "files": 0, "chunks": 0, "packs": 0, "bytes_read": 0}
    if not records.files:
        part.checked = counts
        return part
    try:
        repo, index = check.open_index(store)
    except (DataMoverError, ObjectStoreError) as err:
        part.findings.append(VerifyFinding(
            object="data/config", problem=f"the data mover repository cannot be opened: {err}",
            affects=[f"volume {v}" for v in sorted(records.files)]))
        return part
    read = 0

    def beat(more: int) -> None:
        nonlocal read
        read += more
        activity.heartbeat({"bytes_read": read})

    for volume, snapshot_id in sorted(records.files.items()):
        counts["volumes"] += 1
        result = check.check_snapshot(store, snapshot_id, repo=repo, index=index, read_data=spec.read_data,
                                      progress=beat)
        counts["manifests"] += 1
        for name in ("files", "chunks", "packs", "bytes_read"):
            counts[name] += getattr(result, name)
        for problem in result.problems:
            affects = [f"volume {volume}"]
            if problem.files:
                more = f" and {problem.more_files} more" if problem.more_files else ""
                affects.append(f"files {', '.join(problem.files)}{more}")
            finding = VerifyFinding(object=problem.object, problem=problem.problem, affects=affects)
            part.findings.append(finding)
        if not result.problems:
            part.restorable.append(f"volume {volume} (files)")
    part.checked = counts
    return part


@activity.defn
@product_errors
def verify_disk_snapshots(spec: VerifySpec) -> VerifyPart:
    """Every disk snapshot the backup keeps still exists: its ECS snapshot (in its region) when ECS
    snapshots are on, else its VolumeSnapshotContent (on the backup's source cluster)."""
    ctx = current()
    _, source, records = _store_and_records(spec)
    part = VerifyPart(checked={"disk_snapshots": len(records.snapshots)})
    if not records.snapshots:
        return part
    kube = ctx.kube()
    client: Callable[[str], Any] | None = clients_by_region(ctx) if ctx.settings.enable_ecs_snapshot else None
    by_region: dict[str, list[str]] = {}
    for snap in records.snapshots:
        if snap.ecs_id and client is not None:
            by_region.setdefault(snap.ecs_region or records.region, []).append(snap.ecs_id)
    found: dict[str, Any] = {}
    for region, ids in by_region.items():
        found.update(client(region).describe_snapshots(ids) if client is not None else {})
    for snap in records.snapshots:
        volume = f"volume {snap.namespace}/{snap.pvc}"
        if snap.ecs_id and client is not None:
            if snap.ecs_id not in found:
                part.findings.append(VerifyFinding(
                    object=f"ECS snapshot {snap.ecs_id} ({snap.ecs_region or records.region})",
                    problem="does not exist any more (deleted, or expired by its retention)",
                    affects=[volume]))
                continue
        elif snap.content:
            if source and source != ctx.settings.cluster_id:
                part.restorable.append(f"{volume} (disk snapshot on cluster {source}, not checked from here)")
                continue
            content = kube.get(snapshots.content_path(snap.content))
            if content is None:
                part.findings.append(VerifyFinding(
                    object=f"VolumeSnapshotContent {snap.content}",
                    problem=f"does not exist any more (snapshot handle {snap.handle or 'unknown'})",
                    affects=[volume]))
                continue
            if not (content.get("status") or {}).get("readyToUse", False):
                part.findings.append(VerifyFinding(object=f"VolumeSnapshotContent {snap.content}",
                                                   problem="is not ready to use", affects=[volume]))
                continue
        else:
            part.findings.append(VerifyFinding(object=f"snapshot record of {snap.namespace}/{snap.pvc}",
                                               problem="names no snapshot content or ECS snapshot",
                                               affects=[volume]))
            continue
        part.restorable.append(f"{volume} (disk snapshot)")
    return part


@activity.defn
@product_errors
def record_verification(report: VerifyReport) -> str:
    """Keep the report with the backup; its vault key."""
    store = current().store(report.vault)
    try:
        return verifications.record(store, report)
    except ObjectStoreError as err:
        raise BackupCenterError("VaultUnavailable", cause=str(err)) from None


ACTIVITIES: list[Callable[..., Any]] = [
    verify_resources,
    verify_volume_files,
    verify_disk_snapshots,
    record_verification,
]
