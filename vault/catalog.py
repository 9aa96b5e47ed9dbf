"""Backup records in a vault: claim, commit, fail, mark deleted, delete, list (layout: schemas.vault).

Object stores have no locks and no rename, so every state change is one object written
put-if-absent, and the order of writes carries the meaning:

* ``claim_backup`` writes ``lock.json`` first: from then on the name is taken in the vault, by
  every cluster sharing it, whatever happens to the run.
* ``commit_backup`` writes ``backup.json`` last: a backup without it is in progress or failed
  and no other cluster offers it.
* ``delete_backup_records`` removes ``backup.json`` first (the backup vanishes from listings) and
  ``lock.json`` last (the name stays taken until everything is gone, so a retried delete finishes
  the job and only then frees the name).

Every function raises :class:`BackupCenterError` (store failures are translated).  Functions are
idempotent for the same run ``uid``, so Temporal activity retries are safe.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TypeVar

from pydantic import BaseModel

from schemas.backup import VolumeRecords
from schemas.common import check_dns_label
from schemas.errors import BackupCenterError, ErrorInfo
from schemas.vault import (
    BACKUPS_PREFIX,
    VAULT_MARKER_KEY,
    BackupClaim,
    BackupFailure,
    BackupRecord,
    BackupState,
    DeletionMarker,
    VaultBackup,
    VaultMarker,
)
from vault.store import (
    ObjectExists,
    ObjectInfo,
    ObjectStore,
    get_model,
    product_errors_of_store,
    put_model,
)

M = TypeVar("M", bound=BaseModel)
log = logging.getLogger(__name__)

LOCK = "lock.json"
RECORD = "backup.json"
FAILED = "failed.json"
DELETED = "deleted.json"
VOLUMES = "volumes.json"  # how each volume was protected (schemas.backup.VolumeRecords)


def _now() -> datetime:
    return datetime.now(UTC)


def backup_prefix(name: str) -> str:
    return f"{BACKUPS_PREFIX}{name}/"


def check_record_name(name: str, field: str = "backup name") -> str:
    """A record name must be a DNS label (it is a key part and a Kubernetes name)."""
    try:
        return check_dns_label(name)
    except ValueError as err:
        raise BackupCenterError("InvalidSpec", field=field, reason=str(err)).as_final() from None


_check_name = check_record_name


# --- vault identity -------------------------------------------------------------------------
def read_vault_marker(store: ObjectStore) -> VaultMarker | None:
    with product_errors_of_store():
        return get_model(store, VAULT_MARKER_KEY, VaultMarker)


def init_vault_marker(store: ObjectStore, marker: VaultMarker) -> tuple[VaultMarker, bool]:
    """Write ``vault.json`` unless the location already has one; returns (the marker, written now)."""
    with product_errors_of_store():
        try:
            put_model(store, VAULT_MARKER_KEY, marker, if_absent=True)
            return marker, True
        except ObjectExists:
            existing = get_model(store, VAULT_MARKER_KEY, VaultMarker)
            if existing is None:  # deleted between our put and read: try once more
                put_model(store, VAULT_MARKER_KEY, marker, if_absent=True)
                return marker, True
            return existing, False


# --- one backup -----------------------------------------------------------------------------
def claim_backup(store: ObjectStore, name: str, *, cluster_id: str, uid: str,
                 now: datetime | None = None) -> BackupClaim:
    """Take ``name`` in the vault for run ``uid``; BackupExistsInVault if it exists in any state."""
    _check_name(name)
    prefix = backup_prefix(name)
    claim = BackupClaim(name=name, uid=uid, cluster_id=cluster_id, claimed_at=now or _now())
    with product_errors_of_store():
        existing = get_model(store, prefix + LOCK, BackupClaim)
        if existing is not None:
            if existing.uid == uid:
                return existing  # a retry of the same run
            raise BackupCenterError("BackupExistsInVault", name=name)
        # Objects without a claim are the leftovers of something: they hold the name too.
        if next(iter(store.list(prefix, page_size=1)), None) is not None:
            raise BackupCenterError("BackupExistsInVault", name=name)
        try:
            put_model(store, prefix + LOCK, claim, if_absent=True)
        except ObjectExists:
            winner = get_model(store, prefix + LOCK, BackupClaim)
            if winner is not None and winner.uid == uid:
                return winner
            raise BackupCenterError("BackupExistsInVault", name=name) from None
    return claim


def _owned_claim(store: ObjectStore, name: str, uid: str) -> BackupClaim:
    claim = get_model(store, backup_prefix(name) + LOCK, BackupClaim)
    if claim is None:
        raise BackupCenterError("BackupClaimLost", name=name, reason="its lock.json is gone")
    if claim.uid != uid:
        owner = f"run {claim.uid} of cluster {claim.cluster_id}"
        raise BackupCenterError("BackupClaimLost", name=name, reason=f"the name is claimed by {owner}")
    return claim


def commit_backup(store: ObjectStore, record: BackupRecord) -> BackupRecord:
    """Write the commit record (last): from now on every cluster sharing the vault offers it."""
    key = backup_prefix(record.name) + RECORD
    with product_errors_of_store():
        existing = get_model(store, key, BackupRecord)
        if existing is not None:
            if existing.uid == record.uid:
                return existing
            raise BackupCenterError("BackupExistsInVault", name=record.name)
        _owned_claim(store, record.name, record.uid)
        try:
            put_model(store, key, record, if_absent=True)
        except ObjectExists:
            existing = get_model(store, key, BackupRecord)
            if existing is not None and existing.uid == record.uid:
                return existing
            raise BackupCenterError("BackupExistsInVault", name=record.name) from None
    return record


def fail_backup(store: ObjectStore, name: str, *, uid: str, cluster_id: str, error: ErrorInfo | None = None,
                now: datetime | None = None) -> BackupFailure:
    """Record that run ``uid`` ended without a commit (the name stays taken until deleted)."""
    failure = BackupFailure(name=name, uid=uid, cluster_id=cluster_id, failed_at=now or _now(), error=error)
    with product_errors_of_store():
        if get_model(store, backup_prefix(name) + RECORD, BackupRecord) is not None:
            raise BackupCenterError("BackupExistsInVault", name=name)
        _owned_claim(store, name, uid)
        put_model(store, backup_prefix(name) + FAILED, failure)
    return failure


def owns_uncommitted(store: ObjectStore, name: str, uid: str) -> bool:
    """Whether run ``uid`` may remove what it wrote under the backup's name: the name is not another
    run's, and the backup was not committed after all."""
    prefix = backup_prefix(name)
    claim = get_backup(store, name).claim if store.exists(prefix + LOCK) else None
    if claim is not None and claim.uid != uid:
        return False  # the name belongs to another run: never touch its objects
    return not store.exists(prefix + RECORD)


def discard_uncommitted(
    store: ObjectStore, name: str, uid: str, *, free_name: bool, cluster_id: str, error: ErrorInfo | None
) -> None:
    """Remove an unfinished run's objects (call only when :func:`owns_uncommitted`).  A canceled run
    frees the name; a failed one leaves its failure record, so the name stays taken until the operator
    deletes the backup."""
    prefix = backup_prefix(name)
    claimed = store.exists(prefix + LOCK)
    for entry in list(store.list(prefix)):
        key = entry if isinstance(entry, str) else entry.key
        if not key.endswith(LOCK):
            store.delete(key)
    if free_name:
        store.delete(prefix + LOCK)
    elif claimed:
        fail_backup(store, name, uid=uid, cluster_id=cluster_id, error=error)


def get_backup(store: ObjectStore, name: str) -> VaultBackup:
    """Everything the vault knows about ``name``; NotFound if nothing is there."""
    _check_name(name)
    found = _load(store, name)
    if found is None:
        raise BackupCenterError("NotFound", kind="backup", name=name)
    return found


def committed_backup(store: ObjectStore, name: str, vault: str) -> VaultBackup:
    """The backup, committed and not deleted (what restores and conversions start from);
    BackupNotInVault saying why otherwise."""
    backup = get_backup(store, name)
    if backup.state is BackupState.committed and backup.record is not None:
        return backup
    source = backup.source_cluster or "unknown"
    reason = {
        BackupState.in_progress: f"it is still in progress on cluster {source}",
        BackupState.failed: f"it failed on cluster {source}",
        BackupState.deleted: "it was marked deleted"
        + (f" by cluster {backup.deletion.deleted_by_cluster}" if backup.deletion else ""),
    }.get(backup.state, f"it is {backup.state}")
    raise BackupCenterError("BackupNotInVault", name=name, vault=vault, reason=reason)


def _load(store: ObjectStore, name: str) -> VaultBackup | None:
    prefix = backup_prefix(name)
    with product_errors_of_store():
        present = {e.key[len(prefix):] for e in store.list(prefix, delimiter="/")
                   if isinstance(e, ObjectInfo)}
        if not present and next(iter(store.list(prefix, page_size=1)), None) is None:
            return None

        def read(record: str, model: type[M]) -> M | None:
            return get_model(store, prefix + record, model) if record in present else None

        claim = read(LOCK, BackupClaim)
        record = read(RECORD, BackupRecord)
        failure = read(FAILED, BackupFailure)
        deletion = read(DELETED, DeletionMarker)
    if deletion is not None:
        state = BackupState.deleted
    elif record is not None:
        state = BackupState.committed
    elif failure is not None:
        state = BackupState.failed
    else:
        state = BackupState.in_progress
    return VaultBackup(name=name, state=state, claim=claim, record=record, failure=failure, deletion=deletion)


def list_backups(store: ObjectStore, *, include_incomplete: bool = False, include_deleted: bool = False,
                 workers: int = 8) -> list[VaultBackup]:
    """Backups in the vault, by name.  By default what another cluster may restore: committed ones
    that no cluster marked deleted.  ``include_incomplete`` adds in-progress and failed ones."""
    wanted = {BackupState.committed}
    if include_incomplete:
        wanted |= {BackupState.in_progress, BackupState.failed}
    if include_deleted:
        wanted.add(BackupState.deleted)
    with product_errors_of_store():
        names = [e[len(BACKUPS_PREFIX):-1] for e in store.list(BACKUPS_PREFIX, delimiter="/")
                 if isinstance(e, str)]
    def load(name: str) -> VaultBackup | None:
        # One damaged backup must not hide (or block work on) every other one: it is left out
        # here, logged, and reported by name wherever it is used itself.
        try:
            return _load(store, name)
        except BackupCenterError as err:
            if err.code != "VaultObjectCorrupt":
                raise
            log.warning("backup %s left out of the listing: %s", name, err.short())
            return None

    with ThreadPoolExecutor(max(1, min(workers, len(names) or 1))) as pool:
        found = list(pool.map(load, names))
    return [b for b in found if b is not None and b.state in wanted]


def mark_deleted(store: ObjectStore, name: str, *, by_cluster: str, reason: str | None = None,
                 now: datetime | None = None) -> DeletionMarker:
    """Hide a committed backup from every cluster without removing it (deletion by a non-source cluster)."""
    backup = get_backup(store, name)
    if backup.deletion is not None:
        return backup.deletion
    if backup.state != BackupState.committed:
        raise BackupCenterError("BackupNotInVault", name=name, vault=store.url,
                                reason=f"it is {backup.state}")
    marker = DeletionMarker(name=name, uid=backup.record.uid if backup.record else None,
                            deleted_by_cluster=by_cluster, deleted_at=now or _now(), reason=reason)
    with product_errors_of_store():
        try:
            put_model(store, backup_prefix(name) + DELETED, marker, if_absent=True)
        except ObjectExists:
            existing = get_model(store, backup_prefix(name) + DELETED, DeletionMarker)
            return existing or marker
    return marker


def delete_backup_records(store: ObjectStore, name: str) -> int:
    """Remove every object of the backup (the source cluster's delete); returns how many.

    Retrying after a failure finishes the job; the name is free once this returns.
    """
    _check_name(name)
    prefix = backup_prefix(name)
    with product_errors_of_store():
        store.delete(prefix + RECORD)  # first: other clusters stop offering it
        keys = [e.key for e in store.list(prefix) if isinstance(e, ObjectInfo)]
        rest = [k for k in keys if k not in (prefix + RECORD, prefix + LOCK)]
        for key in rest:
            store.delete(key)
        store.delete(prefix + LOCK)  # last: the name is taken until everything else is gone
    return len(rest) + (prefix + LOCK in keys)


def delete_backup(store: ObjectStore, name: str, *, by_cluster: str, reason: str | None = None) -> str:
    """Delete as the requirements say: the source cluster removes it, any other cluster only marks it.

    Returns "deleted" or "marked".
    """
    backup = get_backup(store, name)
    if backup.source_cluster == by_cluster:
        delete_backup_records(store, name)
        return "deleted"
    if backup.state in (BackupState.committed, BackupState.deleted):
        mark_deleted(store, name, by_cluster=by_cluster, reason=reason)
        return "marked"
    raise BackupCenterError("BackupNotInVault", name=name, vault=store.url,
                            reason=f"it is {backup.state} on cluster {backup.source_cluster}")


def volume_records(store: ObjectStore, name: str) -> VolumeRecords | None:
    """The volume records of a committed backup (None when it has none); VaultObjectCorrupt naming
    the object when they are unreadable."""
    with product_errors_of_store():
        return get_model(store, backup_prefix(name) + VOLUMES, VolumeRecords)


def file_copy(store: ObjectStore, backup: str, volume: str) -> str:
    """The data-mover snapshot holding the file-level copy of ``volume`` (<ns>/<pvc>) in a committed
    backup; InvalidSpec (of the field ``volume``) saying what the backup has instead."""
    records = volume_records(store, backup)
    snapshot = records.files.get(volume) if records else None
    if snapshot is not None:
        return snapshot
    disks = {f"{s.namespace}/{s.pvc}" for s in records.snapshots} if records else set()
    if volume in disks:
        reason = (f"{volume} was backed up as a disk snapshot, not file by file; restore it with "
                  "`backupctl restore create` (restoring chosen files from a disk snapshot is not "
                  "available yet)")
    else:
        have = ", ".join(sorted(records.files)) if records and records.files else "none"
        reason = f"backup {backup} has no file-level copy of {volume} (it has: {have})"
    raise BackupCenterError("InvalidSpec", field="volume", reason=reason)


def volume_records_if_readable(store: ObjectStore, name: str) -> VolumeRecords | None:
    """The volume records, or None when there are none or they are damaged (logged): for work that
    must go on past one damaged backup (parents of a new backup, deleting it)."""
    try:
        return volume_records(store, name)
    except BackupCenterError as err:
        if err.code != "VaultObjectCorrupt":
            raise
        log.warning("backup %s: volume records unreadable: %s", name, err.short())
        return None


class LiveSnapshots(BaseModel):
    """What the vault's backups refer to, and the backups whose records could not be read (while
    any is unreadable, nothing may be collected: its references are unknown)."""

    ids: set[str] = set()
    unreadable: list[str] = []


def live_file_snapshots(store: ObjectStore) -> LiveSnapshots:
    """Data-mover snapshots that some backup in the vault still refers to, in any state.  One
    backup's corrupt records never stop the walk: they are reported in ``unreadable``."""
    live = LiveSnapshots()
    with product_errors_of_store():
        names = [e[len(BACKUPS_PREFIX):-1] for e in store.list(BACKUPS_PREFIX, delimiter="/")
                 if isinstance(e, str)]
    for name in names:
        try:
            records = volume_records(store, name)
        except BackupCenterError as err:
            if err.code != "VaultObjectCorrupt":
                raise
            live.unreadable.append(name)
            continue
        if records is not None:
            live.ids.update(records.files.values())
    return live


def readable_parts(store: ObjectStore, name: str) -> tuple[VaultBackup | None, list[str]]:
    """For deleting a damaged backup: what of its records can be read, and the keys that cannot
    (deleting it is what VaultObjectCorrupt advises, so it must not need them)."""
    _check_name(name)
    prefix = backup_prefix(name)
    corrupt: list[str] = []

    def part(record: str, model: type[M]) -> M | None:
        try:
            with product_errors_of_store():
                return get_model(store, prefix + record, model)
        except BackupCenterError as err:
            if err.code != "VaultObjectCorrupt":
                raise
            corrupt.append(prefix + record)
            return None

    with product_errors_of_store():
        if next(iter(store.list(prefix, page_size=1)), None) is None:
            return None, []
    claim, record = part(LOCK, BackupClaim), part(RECORD, BackupRecord)
    failure, deletion = part(FAILED, BackupFailure), part(DELETED, DeletionMarker)
    state = (BackupState.deleted if deletion else BackupState.committed if record
             else BackupState.failed if failure else BackupState.in_progress)
    found = VaultBackup(name=name, state=state, claim=claim, record=record, failure=failure,
                        deletion=deletion)
    return found, corrupt
