"""Garbage collection: delete packs no live snapshot needs.

The rule, and why it is safe against a backup running at the same time:

1. gc takes a gc lock and deletes nothing if any backup lock is fresh (locks.py); a backup that
   starts later sees the gc lock and waits.  So no backup loads the chunk index (and decides to
   reuse a chunk instead of uploading it) while gc decides and deletes.
2. Live snapshots are ``live_snapshot_ids`` (those of committed backups) plus every snapshot
   object younger than ``grace_seconds``: a volume snapshot written by a backup job whose
   metadata record is not committed yet must keep its chunks.  Snapshot objects older than the
   grace period and not listed are deleted.  ``grace_seconds`` must therefore exceed the longest
   backup job.
3. A pack is deleted only when no live snapshot references any of its chunks and it is older than
   ``grace_seconds`` — a backup that crashed keeps its uploaded packs for its resume.
4. The index object goes first, then the pack, so a gc killed in between never leaves an index
   that points to a missing pack (a pack without index is re-indexed or collected later).

Packs shared by live and dead chunks are kept whole (no repacking yet).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from vault.store import ObjectStore

from .errors import SnapshotNotFound, store_errors
from .index import list_ids
from .locks import STALE_SECONDS, VaultLock, active_locks
from .manifest import ManifestReader
from .models import GcSummary
from .packs import BlobEntry, decode_index, read_pack_index
from .repo import (
    CONFIG_KEY,
    INDEX_PREFIX,
    PACKS_PREFIX,
    SNAPSHOTS_PREFIX,
    Repo,
    index_key,
    pack_key,
    snapshot_key,
)

DEFAULT_GRACE_SECONDS = 48 * 3600


def gc(
    store: ObjectStore,
    live_snapshot_ids: list[str] | set[str],
    *,
    grace_seconds: float = DEFAULT_GRACE_SECONDS,
    key: bytes | None = None,
    dry_run: bool = False,
    stale_lock_seconds: float = STALE_SECONDS,
    workers: int = 8,
) -> GcSummary:
    """Delete unreferenced packs and dead snapshots of the vault (see the module doc for the rule)."""
    summary = GcSummary(dry_run=dry_run)
    if not store.exists(CONFIG_KEY):
        return summary  # nothing was ever backed up here
    repo = Repo.open(store, key, create=False)
    lock = VaultLock(store, "gc", owner="gc").acquire()
    try:
        now = lock.store_time
        busy = active_locks(store, "backup", now=now, stale_seconds=stale_lock_seconds)
        if busy:
            summary.blocked_by = busy
            return summary

        snapshots = list_ids(store, SNAPSHOTS_PREFIX)
        live = set(live_snapshot_ids)
        for sid in sorted(live):
            if sid not in snapshots:
                # Refuse: computing liveness without a live snapshot's list would delete its data.
                k = snapshot_key(sid)
                raise SnapshotNotFound(f"live snapshot {sid} not found ({k})", key=k)
        keep = live | {sid for sid, info in snapshots.items() if now - info.last_modified < grace_seconds}
        dead_snapshots = sorted(set(snapshots) - keep)
        summary.live_snapshots = len(keep)

        referenced: set[bytes] = set()
        for sid in sorted(keep):
            with ManifestReader(store, repo.crypto, sid) as reader:
                for entry in reader.entries():
                    for chunk in entry.get("c") or ():
                        referenced.add(bytes.fromhex(chunk[0]))

        index_ids = list_ids(store, INDEX_PREFIX)
        packs = list_ids(store, PACKS_PREFIX)

        def entries_of(pack_id: str) -> tuple[str, list[BlobEntry]]:
            if pack_id in index_ids:
                k = index_key(pack_id)
                with store_errors(k):
                    sealed = store.get(k)
                return pack_id, decode_index(repo.crypto, sealed, object_key=k)
            return pack_id, read_pack_index(store, repo.crypto, pack_key(pack_id))[1]

        stored: set[bytes] = set()
        delete: list[str] = []
        with ThreadPoolExecutor(max(1, workers)) as pool:
            for pack_id, entries in pool.map(entries_of, sorted(packs)):
                ids = {e.chunk_id for e in entries}
                stored |= ids
                if ids & referenced:
                    summary.packs_referenced += 1
                elif now - packs[pack_id].last_modified < grace_seconds:
                    summary.packs_in_grace += 1
                else:
                    delete.append(pack_id)
        summary.packs_total = len(packs)
        summary.missing_chunks = len(referenced - stored)
        summary.snapshots_deleted = len(dead_snapshots)
        summary.packs_deleted = len(delete)
        summary.bytes_deleted = sum(packs[p].size for p in delete)
        if dry_run:
            return summary

        for sid in dead_snapshots:
            store.delete(snapshot_key(sid))
        # Index objects whose pack is already gone are leftovers: remove them too.
        stale_indexes = [p for p in index_ids if p not in packs]

        def drop(pack_id: str) -> None:
            store.delete(index_key(pack_id))
            store.delete(pack_key(pack_id))

        with ThreadPoolExecutor(max(1, workers)) as pool:
            list(pool.map(drop, delete))
            list(pool.map(lambda p: store.delete(index_key(p)), stale_indexes))
        return summary
    finally:
        lock.release()
