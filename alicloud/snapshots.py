"""What the product does with ECS disk snapshots (requirements.md §3, §8, §9), over :mod:`alicloud.ecs`.

* **Backup**: a ready VolumeSnapshot of the Alibaba Cloud disk driver has an ECS snapshot id as its handle.
  :func:`record_snapshots` looks each one up in the cluster's region (id, region, size) and gives it the
  backup's retention: the TTL in whole days, rounded up, so a snapshot never expires before its backup.
  A VolumeSnapshotClass parameter ``retentionDays`` is the default: the driver gives it to snapshots when
  it cuts them, and it stays for snapshots of a backup without a TTL.
* **Delete**: :func:`delete_backup_snapshots` deletes them (already gone is fine: the CSI driver releases
  the snapshot of a deleted content with ``deletionPolicy: Delete`` too); a snapshot whose content is
  ``Retain`` stays, and the result says so.
* **Cross-region restore**: :func:`plan_copies` finds the disk snapshots a restore needs in another region
  (and refuses file-level volumes: only disk snapshots can be copied); each is copied with a name derived
  from the restore run, hence a stable client token, so a retried copy never copies twice.  Copy records
  (:class:`~schemas.ecs.CopyRecord`) live in the restore's vault folder: :func:`with_copies` makes the
  restore's snapshot contents use the copies, :func:`delete_copies` removes them after a cancel or failure.

Every ECS call blocks (the SDK is synchronous): callers are sync activities on the worker's thread pool.
"""

from __future__ import annotations

import hashlib
import math
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from alicloud.credentials import AccessKey, credentials_from_env, credentials_from_secret_data
from alicloud.ecs import ENV_ECS_ENDPOINT, EcsClient
from alicloud.errors import EcsError
from kube.rest import Kube
from kube.restore.records import RestoreFolder
from kube.volumes import SNAPSHOT_API
from schemas.backup import SnapshotState, VolumeRecords
from schemas.convert import ConvertedVolume
from schemas.ecs import MAX_LISTED, CopyItem, CopyPlan, CopyRecord, CopyRequest, CopyResult, EcsDeleteResult
from schemas.errors import BackupCenterError
from schemas.settings import Settings
from vault.store import ObjectInfo

# CSI drivers whose snapshot handles are ECS snapshot ids.
DISK_DRIVERS = frozenset({"diskplugin.csi.alibabacloud.com"})
REGION_LABEL = "topology.kubernetes.io/region"
COPIES = "ecs-copies/"
RETENTION_PARAMETER = "retentionDays"
_MAX_RETENTION = 65536


# --- where and as whom ------------------------------------------------------------------------
def cluster_region(kube: Kube, configured: str = "") -> str:
    """The setting ``region``, else the region most nodes are labelled with."""
    if configured:
        return configured
    nodes, _ = kube.list("/api/v1/nodes")
    regions = Counter(
        labels[REGION_LABEL]
        for labels in ((n.get("metadata") or {}).get("labels") or {} for n in nodes)
        if labels.get(REGION_LABEL)
    )
    if not regions:
        raise BackupCenterError(
            "EcsRegionUnknown", reason=f"none of {len(nodes)} nodes has the label {REGION_LABEL}"
        )
    return regions.most_common(1)[0][0]


def credentials(kube: Kube, settings: Settings) -> AccessKey:
    """From the Secret named by ``cloud_credentials_secret`` (product namespace), else the environment."""
    name = settings.cloud_credentials_secret
    if not name:
        return credentials_from_env()
    secret = kube.get(f"/api/v1/namespaces/{settings.product_namespace}/secrets/{name}")
    if secret is None:
        raise BackupCenterError(
            "CloudCredentialsMissing",
            reason=f"credentials Secret {settings.product_namespace}/{name} does not exist",
        )
    if secret.get("data"):
        return credentials_from_secret_data(secret["data"], encoded=True)
    return credentials_from_secret_data(secret.get("stringData") or {}, encoded=False)


def client(kube: Kube, settings: Settings, region: str) -> EcsClient:
    endpoint = settings.ecs_endpoint or os.environ.get(ENV_ECS_ENDPOINT) or None
    return EcsClient(region, credentials(kube, settings), endpoint)


# --- backup ----------------------------------------------------------------------------------
def retention_days(ttl: timedelta | None, class_default: int | None) -> int | None:
    """Days ECS keeps a backup's snapshot: the TTL rounded up to whole days (never before the backup
    expires), within ECS's 1..65536; the class's ``retentionDays`` when the backup has no TTL."""
    if ttl is not None and ttl > timedelta(0):
        return max(1, min(_MAX_RETENTION, math.ceil(ttl / timedelta(days=1))))
    return class_default


def class_retention_days(kube: Kube, snapshot_class: str) -> int | None:
    """The ``retentionDays`` parameter of a VolumeSnapshotClass (None when absent or not a number)."""
    if not snapshot_class:
        return None
    cls = kube.get(f"{SNAPSHOT_API}/volumesnapshotclasses/{snapshot_class}") or {}
    raw = (cls.get("parameters") or {}).get(RETENTION_PARAMETER)
    try:
        days = int(str(raw)) if raw not in (None, "") else None
    except ValueError:
        return None
    return days if days is not None and 1 <= days <= _MAX_RETENTION else None


def is_ecs_snapshot(state: SnapshotState) -> bool:
    return state.driver in DISK_DRIVERS and bool(state.handle)


def record_snapshots(
    ecs: EcsClient, kube: Kube, states: list[SnapshotState], ttl: timedelta | None
) -> list[SnapshotState]:
    """The states with their ECS facts, after setting each snapshot's retention (idempotent)."""
    wanted = [s.handle for s in states if s.ready and is_ecs_snapshot(s)]
    if not wanted:
        return states
    found = ecs.describe_snapshots(wanted)
    defaults: dict[str, int | None] = {}
    out: list[SnapshotState] = []
    for state in states:
        if not (state.ready and is_ecs_snapshot(state)):
            out.append(state)
            continue
        info = found.get(state.handle)
        if info is None:
            raise EcsError(
                "EcsSnapshotNotFound", action="DescribeSnapshots", snapshot=state.handle, region=ecs.region
            )
        if state.snapshot_class not in defaults:
            defaults[state.snapshot_class] = class_retention_days(kube, state.snapshot_class)
        days = retention_days(ttl, defaults[state.snapshot_class])
        if days is not None and info.retention_days != days:
            ecs.set_retention_days(info.snapshot_id, days)
        out.append(
            state.model_copy(
                update={
                    "ecs_id": info.snapshot_id,
                    "ecs_region": info.region,
                    "size_gib": info.size_gib,
                    "retention_days": days if days is not None else info.retention_days,
                }
            )
        )
    return out


# --- delete ----------------------------------------------------------------------------------
ClientFor = Callable[[str], EcsClient]


def delete_backup_snapshots(client_for: ClientFor, records: VolumeRecords) -> EcsDeleteResult:
    """Delete the backup's ECS snapshots, each in its region; Retain contents keep theirs."""
    result = EcsDeleteResult()
    for state in records.snapshots:
        if not state.ecs_id:
            continue
        if state.deletion_policy == "Retain":
            result.left_total += 1
            if len(result.left) < MAX_LISTED:
                result.left.append(state.ecs_id)
            continue
        # Force: disks restored from the snapshot would otherwise keep it (SnapshotCreatedDisk); they
        # stay usable, they only cannot be re-initialised from it.  The backup owns its snapshots.
        if client_for(state.ecs_region).delete_snapshot(state.ecs_id, force=True, missing_ok=True):
            result.deleted += 1
        else:
            result.missing += 1
    return result


# --- cross-region restore -------------------------------------------------------------------
def _listed(keys: list[str]) -> str:
    more = f" and {len(keys) - MAX_LISTED} more" if len(keys) > MAX_LISTED else ""
    return ", ".join(keys[:MAX_LISTED]) + more


def source_region(records: VolumeRecords) -> str:
    """The region of the backed-up cluster ("" for a backup taken without ECS snapshots)."""
    return records.region or next((s.ecs_region for s in records.snapshots if s.ecs_region), "")


def plan_copies(records: VolumeRecords, selected: Iterable[str], target_region: str) -> CopyPlan:
    """The snapshots to copy into ``target_region`` for the selected PVCs ("<ns>/<pvc>" in the backup).

    Raises ``CrossRegionNonDisk`` when the backup is of another region and a selected PVC's data is not
    an ECS disk snapshot (file-level data, or another driver's snapshot).
    """
    chosen = set(selected)
    plan = CopyPlan(source_region=source_region(records), target_region=target_region)
    if not plan.cross_region:
        return plan
    snapshots = {f"{s.namespace}/{s.pvc}": s for s in records.snapshots}
    refused = sorted(
        key
        for key in chosen
        if key in records.files or (key in snapshots and not snapshots[key].ecs_id and snapshots[key].ready)
    )
    if refused:
        raise BackupCenterError("CrossRegionNonDisk", pvc=_listed(refused))
    for key in sorted(chosen & snapshots.keys()):
        state = snapshots[key]
        if state.ready and state.ecs_id and state.ecs_region != target_region:
            plan.items.append(
                CopyItem(
                    key=key,
                    snapshot=state.ecs_id,
                    region=state.ecs_region,
                    size_gib=state.size_gib,
                    retention_days=state.retention_days,
                )
            )
    return plan


def _digest(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def copy_name(restore: str, uid: str, key: str) -> str:
    """The copy's ECS name: stable for one restore run (so is CopySnapshot's client token), unique per PVC;
    ECS names start with a letter and hold at most 128 characters."""
    return f"restore-{restore}-{_digest(uid, key)[:12]}"[:128]


def _copy_record(key: str) -> str:
    """The name of a copy's record in the restore's folder."""
    return f"{COPIES}{_digest(key)[:24]}.json"


def read_copy(folder: RestoreFolder, key: str) -> CopyRecord | None:
    return folder.read(_copy_record(key), CopyRecord)


def write_copy(folder: RestoreFolder, record: CopyRecord) -> None:
    folder.write(_copy_record(record.key), record)


def read_copies(folder: RestoreFolder) -> list[CopyRecord]:
    found = []
    for entry in folder.store.list(folder.key(COPIES)):
        if isinstance(entry, ObjectInfo):
            found.append(CopyRecord.model_validate_json(folder.store.get(entry.key)))
    return found


def with_copies(records: VolumeRecords, folder: RestoreFolder) -> VolumeRecords:
    """The backup's volume records as the restore sees them: a snapshot copied into this region is
    restored from its copy (the copy's id becomes the handle of the restore's snapshot content)."""
    copies = {c.key: c for c in read_copies(folder) if c.copy_id}
    if not copies:
        return records
    states = []
    for state in records.snapshots:
        copy = copies.get(f"{state.namespace}/{state.pvc}")
        if copy is not None and copy.source == state.ecs_id:
            state = state.model_copy(
                update={"handle": copy.copy_id, "ecs_id": copy.copy_id, "ecs_region": copy.target_region}
            )
        states.append(state)
    return records.model_copy(update={"snapshots": states})


def with_copied_conversions(
    converted: dict[tuple[str, str], ConvertedVolume], folder: RestoreFolder
) -> dict[tuple[str, str], ConvertedVolume]:
    """Converted snapshots as the restore sees them: one copied into this region restores from its copy."""
    copies = {c.key: c for c in read_copies(folder) if c.copy_id}
    if not copies:
        return converted
    seen: dict[tuple[str, str], ConvertedVolume] = {}
    for (key, cls), volume in converted.items():
        copy = copies.get(key)
        if copy is not None and copy.source == volume.handle:
            volume = volume.model_copy(update={"handle": copy.copy_id, "ecs_region": copy.target_region})
        seen[(key, cls)] = volume
    return seen


def delete_copies(client_for: ClientFor, folder: RestoreFolder) -> EcsDeleteResult:
    """Delete the restore's copies (found by name when the id was never recorded) and their records."""
    result = EcsDeleteResult()
    for record in read_copies(folder):
        dest = client_for(record.target_region)
        ids = [record.copy_id] if record.copy_id else _ids_named(dest, record.name)
        for copy_id in ids:
            if dest.delete_snapshot(copy_id, force=True, missing_ok=True):
                result.deleted += 1
            else:
                result.missing += 1
        folder.store.delete(folder.key(_copy_record(record.key)))
    return result


def _ids_named(ecs: EcsClient, name: str) -> list[str]:
    return [info.snapshot_id for info in ecs.find_snapshots(name=name)]


def copy_into_region(
    clients: Callable[[str], EcsClient],
    folder: RestoreFolder,
    request: CopyRequest,
    *,
    deadline: datetime,
    progress: Callable[[dict[str, Any]], None],
    pause: Callable[[float], None],
    poll_seconds: float = 1.0,
) -> CopyResult:
    """Copy one snapshot into ``request.target_region`` and wait until the copy is accomplished.

    The copy is recorded in the restore's vault folder before it is requested (by name)
    and once its id is known, so the restore uses it and a cancel or failure deletes it; a retry finds
    the record and waits for the same copy.  ``progress`` gets the percent done on every poll, and
    ``pause`` sleeps between polls (the activity's, which ends early on a cancel)."""
    started = time.monotonic()
    item = request.item
    name = copy_name(request.restore, request.uid, item.key)
    source = clients(item.region)
    record = read_copy(folder, item.key)
    if record is None or record.name != name or not record.copy_id:
        record = CopyRecord(
            key=item.key,
            source=item.snapshot,
            source_region=item.region,
            target_region=request.target_region,
            name=name,
        )
        write_copy(folder, record)
        # The client token comes from (source, destination, name): a retry gets the same copy.
        copy_id = source.copy_snapshot(
            item.snapshot, request.target_region, name, retention_days=item.retention_days
        )
        record = record.model_copy(update={"copy_id": copy_id})
        write_copy(folder, record)
    dest = source.for_region(request.target_region)
    while True:
        info = dest.describe_snapshots([record.copy_id]).get(record.copy_id)
        if info is None or info.failed:
            what = "disappeared from" if info is None else "failed in"
            raise BackupCenterError(
                "CrossRegionFailed",
                snapshot=item.snapshot,
                reason=f"its copy {record.copy_id} {what} region {request.target_region}",
            )
        progress(
            {
                "snapshot": item.snapshot,
                "copy": record.copy_id,
                "region": request.target_region,
                "percent": info.progress,
            }
        )
        if info.ready:
            seconds = round(time.monotonic() - started, 2)
            return CopyResult(key=item.key, copy_id=record.copy_id, seconds=seconds)
        if datetime.now(UTC) >= deadline:
            raise BackupCenterError(
                "EcsCopyTimeout",
                snapshot=item.snapshot,
                region=request.target_region,
                timeout=str(timedelta(seconds=int(request.timeout_seconds))),
                progress=f"copy {record.copy_id} at {info.progress}%",
            )
        pause(poll_seconds)

