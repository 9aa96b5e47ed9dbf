"""Activities of a backup verification (workflows/verify.py): each checks one part of a backup
without restoring anything or writing to it, and names what it found at fault and what that breaks.

What the vault holds wrongly (an object missing or corrupt) is a finding; a vault that cannot be
reached raises, so the step is retried rather than good data called bad.  Each step passes back at
most ``MAX_FINDINGS`` findings (the rest counted), so a badly damaged vault still gives a report.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from temporalio import activity

from activities.context import current
from activities.ecs import clients_by_region
from activities.errors import product_errors
from datamover import check
from datamover.errors import DataCorrupt, ObjectMissing
from kube import snapshots
from kube.export import check_bundle, read_index
from schemas.backup import VolumeRecords
from schemas.drill import DrillReport
from schemas.errors import BackupCenterError
from schemas.specs import VerifySpec
from schemas.verify import VerifyPart, VerifyReport
from vault import catalog, verifications
from vault.store import ObjectCorrupt, ObjectNotFound, ObjectStore, ObjectStoreError


@dataclass
class _Backup:
    store: ObjectStore
    source_cluster: str
    volume_count: int
    records: VolumeRecords | None  # None: volumes.json missing or unreadable (``records_problem``)
    records_problem: str = ""


def _backup(spec: VerifySpec) -> _Backup:
    """The committed backup (BackupNotInVault, final, says why not) and its volume records."""
    store = current().store(spec.vault)
    try:
        backup = catalog.committed_backup(store, spec.backup, spec.vault)
    except BackupCenterError as err:
        if err.code == "BackupNotInVault":
            raise err.as_final() from None  # the spec names it: no retry within this job mends that
        raise
    assert backup.record is not None
    found = _Backup(store, backup.source_cluster or "", backup.record.volume_count, None)
    try:
        found.records = catalog.volume_records(store, spec.backup)
    except BackupCenterError as err:
        if err.code != "VaultObjectCorrupt":
            raise
        found.records_problem = f"the volume records cannot be read: {err.message}"
    if found.records is None and not found.records_problem and found.volume_count:
        found.records_problem = f"the volume records are missing ({found.volume_count} volume(s) backed up)"
    return found


def _records_key(spec: VerifySpec) -> str:
    return f"{catalog.backup_prefix(spec.backup)}volumes.json"


@activity.defn
@product_errors
def verify_resources(spec: VerifySpec) -> VerifyPart:
    """Every resource bundle decodes and holds, per namespace, the objects its index counts and digests."""
    store = _backup(spec).store
    part = VerifyPart()
    key = f"{catalog.backup_prefix(spec.backup)}resources/index.json"
    try:
        index = read_index(store, spec.backup)
    except (ObjectNotFound, ObjectCorrupt, ValueError) as err:
        what = "missing" if isinstance(err, ObjectNotFound) else f"unreadable: {err}"
        part.add(key, f"the resource index is {what}", ["every resource of the backup"])
        return part
    part.checked = {"bundles": len(index.bundles), "objects": index.total_objects(preferred_only=False)}
    for n, bundle in enumerate(index.bundles):
        activity.heartbeat({"bundles_done": n})
        problem = check_bundle(store, bundle)
        if problem is None:
            continue
        what = f"{bundle.kind} ({bundle.group or 'core'}/{bundle.version})"
        spaces = sorted(ns or "(cluster-scoped)" for ns in bundle.namespaces)
        part.add(bundle.key, problem, [f"{what} in {', '.join(spaces) or 'no namespace'}"])
    part.restorable.append(f"{len(index.bundles) - part.found} of {len(index.bundles)} resource bundles")
    return part


@activity.defn
@product_errors
def verify_volume_files(spec: VerifySpec) -> VerifyPart:
    """Every file-level volume snapshot: manifest, chunk index and packs (and, with read_data,
    every chunk of every pack it uses)."""
    backup = _backup(spec)
    store, records = backup.store, backup.records
    part = VerifyPart()
    counts = {"volumes": 0, "manifests": 0, "files": 0, "chunks": 0, "packs": 0, "bytes_read": 0}
    part.checked = counts
    if records is None:
        if backup.records_problem:
            part.add(_records_key(spec), backup.records_problem, ["every volume of the backup"])
        return part
    if not records.files:
        return part
    try:
        repo, index = check.open_index(store)
    except (ObjectMissing, DataCorrupt) as err:
        part.add(err.key or "data/config", f"the data mover repository cannot be opened: {err}",
                 [f"volume {v}" for v in sorted(records.files)])
        return part
    stored = check.stored_packs(store)
    read = 0

    def beat(more: int) -> None:
        nonlocal read
        read += more
        activity.heartbeat({"bytes_read": read})

    for volume, snapshot_id in sorted(records.files.items()):
        counts["volumes"] += 1
        result = check.check_snapshot(store, snapshot_id, repo=repo, index=index, stored=stored,
                                      read_data=spec.read_data, progress=beat)
        counts["manifests"] += 1
        for name in ("files", "chunks", "packs", "bytes_read"):
            counts[name] += getattr(result, name)
        for problem in result.problems:
            affects = [f"volume {volume}"]
            if problem.files:
                more = f" and {problem.more_files} more" if problem.more_files else ""
                affects.append(f"files {', '.join(problem.files)}{more}")
            part.add(problem.object, problem.problem, affects)
        if not result.problems:
            part.restorable.append(f"volume {volume} (files)")
    return part


@activity.defn
@product_errors
def verify_disk_snapshots(spec: VerifySpec) -> VerifyPart:
    """Every disk snapshot the backup keeps still exists: its ECS snapshot (in its region, not
    failed) when ECS snapshots are on, else its VolumeSnapshotContent (on the backup's source
    cluster).  What cannot be checked from here is counted as not checked, not as restorable."""
    ctx = current()
    backup = _backup(spec)
    records = backup.records or VolumeRecords()  # missing records: reported by the files step
    source = backup.source_cluster
    part = VerifyPart(checked={"disk_snapshots": len(records.snapshots), "disk_snapshots_not_checked": 0})
    if not records.snapshots:
        return part
    kube = ctx.kube()
    ecs_on = ctx.settings.enable_ecs_snapshot
    client: Callable[[str], Any] | None = clients_by_region(ctx) if ecs_on else None
    by_region: dict[str, list[str]] = {}
    for snap in records.snapshots:
        if snap.ecs_id and client is not None:
            by_region.setdefault(snap.ecs_region or records.region, []).append(snap.ecs_id)
    found: dict[str, Any] = {}
    for region, ids in by_region.items():
        if client is not None:
            found.update(client(region).describe_snapshots(ids))
    for snap in records.snapshots:
        volume = f"volume {snap.namespace}/{snap.pvc}"
        if snap.ecs_id and client is not None:
            where = f"ECS snapshot {snap.ecs_id} ({snap.ecs_region or records.region})"
            info = found.get(snap.ecs_id)
            if info is None:
                part.add(where, "does not exist any more (deleted, or expired by its retention)", [volume])
                continue
            if getattr(info, "status", "") == "failed":
                part.add(where, "failed at the provider: it holds no data", [volume])
                continue
        elif snap.content and not (source and source != ctx.settings.cluster_id):
            content = kube.get(snapshots.content_path(snap.content))
            where = f"VolumeSnapshotContent {snap.content}"
            if content is None:
                gone = f"does not exist any more (snapshot handle {snap.handle or 'unknown'})"
                part.add(where, gone, [volume])
                continue
            if not (content.get("status") or {}).get("readyToUse", False):
                part.add(where, "is not ready to use", [volume])
                continue
        elif snap.content or snap.ecs_id:
            # On another cluster (contents are per cluster), or an ECS snapshot while ECS is off here.
            part.checked["disk_snapshots_not_checked"] += 1
            continue
        else:
            part.add(f"snapshot record of {snap.namespace}/{snap.pvc}",
                     "names no snapshot content or ECS snapshot", [volume])
            continue
        part.restorable.append(f"{volume} (disk snapshot)")
    return part


@activity.defn
@product_errors
def record_verification(report: VerifyReport) -> str:
    """Keep the report with the backup; its vault key."""
    return keep_report(report)


def keep_report(report: VerifyReport | DrillReport) -> str:
    """Keep a verification or drill report with its backup; its vault key.  Only while the backup is
    still committed: a report written after its deletion began would be left behind under its name."""
    store = current().store(report.vault)
    catalog.committed_backup(store, report.backup, report.vault)
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
