"""Conversion records in a vault: ``conversions/<name>.json`` (schemas.convert.ConvertRecord).

The record is written put-if-absent when a conversion starts, so the name is taken in the vault
for every cluster sharing it, and rewritten (same run only) when it ends: committed with the
converted snapshots, or failed.  A delete request of type Convert removes it, which frees the
name for a new run (requirements.md §7: a failed conversion is reset, then run again).
"""

from __future__ import annotations

from datetime import UTC, datetime

from schemas.backup import SnapshotState, VolumeRecords
from schemas.convert import ConvertedVolume, ConvertRecord, ConvertState
from schemas.errors import BackupCenterError, ErrorInfo
from vault.catalog import check_record_name
from vault.store import (
    ObjectExists,
    ObjectInfo,
    ObjectStore,
    get_model,
    product_errors_of_store,
    put_model,
)

CONVERSIONS_PREFIX = "conversions/"


def record_key(name: str) -> str:
    return f"{CONVERSIONS_PREFIX}{name}.json"


def _check_name(name: str) -> str:
    return check_record_name(name, "conversion name")


def get_conversion(store: ObjectStore, name: str) -> ConvertRecord | None:
    _check_name(name)
    with product_errors_of_store():
        return get_model(store, record_key(name), ConvertRecord)


def claim_conversion(store: ObjectStore, record: ConvertRecord) -> ConvertRecord:
    """Take the name for run ``record.uid``; NameInUse when another run (any cluster) holds it."""
    _check_name(record.name)
    key = record_key(record.name)
    with product_errors_of_store():
        existing = get_model(store, key, ConvertRecord)
        if existing is None:
            try:
                put_model(store, key, record, if_absent=True)
                return record
            except ObjectExists:
                existing = get_model(store, key, ConvertRecord)
        if existing is not None and existing.uid == record.uid:
            return existing  # a retry of the same run
    raise BackupCenterError("NameInUse", kind="conversion", name=record.name)


def _finish(store: ObjectStore, name: str, uid: str, update: dict[str, object]) -> ConvertRecord:
    key = record_key(name)
    with product_errors_of_store():
        existing = get_model(store, key, ConvertRecord)
        if existing is None or existing.uid != uid:
            owner = "nobody" if existing is None else f"run {existing.uid} of cluster {existing.cluster_id}"
            raise BackupCenterError(
                "StepFailed",
                step="record the conversion",
                reason=f"conversion {name} is no longer claimed by this run (held by {owner})",
            )
        if existing.state is not ConvertState.in_progress:
            return existing  # a retry after the write
        record = existing.model_copy(update={**update, "finished_at": datetime.now(UTC)})
        put_model(store, key, record)
        return record


def commit_conversion(
    store: ObjectStore, name: str, uid: str, volumes: list[ConvertedVolume]
) -> ConvertRecord:
    return _finish(store, name, uid, {"state": ConvertState.committed, "volumes": volumes})


def fail_conversion(store: ObjectStore, name: str, uid: str, error: ErrorInfo | None) -> ConvertRecord | None:
    """Mark the run failed (kept until a delete request resets it); None when it never claimed."""
    with product_errors_of_store():
        existing = get_model(store, record_key(name), ConvertRecord)
    if existing is None or existing.uid != uid:
        return None
    return _finish(store, name, uid, {"state": ConvertState.failed, "error": error})


def list_conversions(store: ObjectStore, *, backup: str | None = None) -> list[ConvertRecord]:
    """Every conversion record (of one backup when given), by name."""
    found: list[ConvertRecord] = []
    with product_errors_of_store():
        for entry in store.list(CONVERSIONS_PREFIX):
            if isinstance(entry, ObjectInfo) and entry.key.endswith(".json"):
                record = get_model(store, entry.key, ConvertRecord)
                if record is not None and (backup is None or record.backup == backup):
                    found.append(record)
    return sorted(found, key=lambda r: r.name)


def converted_volumes(store: ObjectStore, backup: str) -> dict[tuple[str, str], ConvertedVolume]:
    """(source "<ns>/<pvc>", target class) -> the converted snapshot, from committed records;
    the latest conversion wins when several converted the same volume to the same class."""
    volumes: dict[tuple[str, str], ConvertedVolume] = {}
    records = [r for r in list_conversions(store, backup=backup) if r.state is ConvertState.committed]
    for record in sorted(records, key=lambda r: r.finished_at or r.started_at):
        for volume in record.volumes:
            volumes[(volume.source, volume.target_class)] = volume
    return volumes


def delete_conversion(store: ObjectStore, name: str) -> bool:
    """Remove the record (the name is free again); False when there was none."""
    _check_name(name)
    with product_errors_of_store():
        if not store.exists(record_key(name)):
            return False
        store.delete(record_key(name))
        return True


def records_with_conversions(
    records: VolumeRecords,
    claim_classes: dict[str, str],
    mapping: dict[str, str],
    converted: dict[tuple[str, str], ConvertedVolume],
) -> VolumeRecords:
    """The backup's volume records as a restore with ``mapping`` sees them: a claim ("<ns>/<pvc>" ->
    its class in the backup) whose mapped class has a conversion is a ready snapshot of that
    conversion (so a cross-region restore copies it like any disk snapshot)."""
    used = {
        key: volume
        for key, cls in claim_classes.items()
        if (volume := converted.get((key, mapping.get(cls, cls)))) is not None
    }
    if not used:
        return records
    states = [s for s in records.snapshots if f"{s.namespace}/{s.pvc}" not in used]
    for key, volume in sorted(used.items()):
        namespace, pvc = key.split("/", 1)
        states.append(
            SnapshotState(
                namespace=namespace,
                pvc=pvc,
                snapshot=volume.snapshot,
                ready=True,
                handle=volume.handle,
                restore_size=volume.restore_size,
                driver=volume.driver,
                snapshot_class=volume.snapshot_class,
                ecs_id=volume.handle if volume.ecs_region else "",
                ecs_region=volume.ecs_region,
                size_gib=volume.size_gib,
            )
        )
    files = {k: v for k, v in records.files.items() if k not in used}
    return records.model_copy(update={"snapshots": states, "files": files})
