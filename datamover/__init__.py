"""The volume data mover: deduplicating, compressing, optionally encrypting file-level backup.

Plain Python, no Temporal: node-worker activities call these functions and heartbeat from the
progress callback.  See repo.py for the vault layout, gc.py for the garbage-collection rule.
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
from .restore import restore_tree

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
    "gc",
    "read_footer",
    "restore_tree",
]
