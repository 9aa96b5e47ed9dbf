"""The volume data mover: deduplicating, compressing, optionally encrypting file-level backup.

Plain Python, no Temporal: node-worker activities call these and heartbeat from the progress
callback (called in the calling thread; raising from it aborts the run cleanly).

    backup_tree(store, root, *, volume_id, parent_snapshot=None, key=None, progress=None,
                workers=4, snapshot_id=None, cache_dir=None, processes=None, ...) -> SnapshotSummary
    restore_tree(store, snapshot_id, target, *, key=None, progress=None, workers=4,
                 verify=True, cache_dir=None, paths=None, overwrite=True) -> RestoreSummary
    check_paths(store, snapshot_id, paths) -> normalised paths (refuses unsafe or missing ones)
    gc(store, live_snapshot_ids, *, grace_seconds=48h, key=None, dry_run=False) -> GcSummary

What a snapshot keeps: regular files (content verified by blake3 digests), directories (empty
ones too), symlinks, hard links, permission bits, owner uid/gid, mtime/atime (ns).  Not kept:
extended attributes and ACLs.  Sockets, FIFOs and devices are reported, not stored.

Vault layout: repo.py.  Pack format: packs.py.  Manifest format: manifest.py.  The rule that
makes gc safe against running backups: gc.py and locks.py.
"""

from .backup import backup_tree
from .errors import (
    DataCorrupt,
    DataMoverError,
    EncryptionKeyMismatch,
    EncryptionKeyRequired,
    EncryptionNotEnabled,
    ObjectMissing,
    SnapshotNotFound,
    UnsafePath,
    VaultBusy,
)
from .gc import gc
from .manifest import read_footer
from .models import GcSummary, PathError, Progress, RestoreSummary, SnapshotSummary
from .restore import check_paths, restore_tree

__all__ = [
    "DataCorrupt",
    "DataMoverError",
    "EncryptionKeyMismatch",
    "EncryptionKeyRequired",
    "EncryptionNotEnabled",
    "GcSummary",
    "ObjectMissing",
    "PathError",
    "Progress",
    "RestoreSummary",
    "SnapshotNotFound",
    "SnapshotSummary",
    "UnsafePath",
    "VaultBusy",
    "backup_tree",
    "check_paths",
    "gc",
    "read_footer",
    "restore_tree",
]
