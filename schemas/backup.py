"""Payloads of the backup workflow's steps: small summaries, never the data itself."""

from __future__ import annotations

from pydantic import BaseModel


class ExportSummary(BaseModel):
    """Small enough for a workflow payload: counts only."""

    objects: int  # objects at their preferred version
    versions_captured: int  # objects counted once per served version
    bundles: int
    bytes: int
    index_key: str
    persistent_volume_claims: int


class SnapshotState(BaseModel):
    namespace: str
    pvc: str
    snapshot: str
    ready: bool = False
    error: str = ""
    content: str = ""
    handle: str = ""
    restore_size: str = ""
    driver: str = ""
    snapshot_class: str = ""
    deletion_policy: str = ""  # of the snapshot class: Retain keeps the cloud snapshot when the backup goes
    # True once the backup owns the data (content Retain and labelled, VolumeSnapshot removed): nothing
    # done to the application namespace can delete it.  False in records of backups made before.
    owned: bool = False
    source_volume_mode: str = ""  # Filesystem or Block, for re-creating a content from the handle
    # ECS facts of a disk snapshot, recorded when enable_ecs_snapshot is on (the handle is the ECS id).
    ecs_id: str = ""
    ecs_region: str = ""
    size_gib: int | None = None
    retention_days: int | None = None


class VolumeRecords(BaseModel):
    """Written to the vault: how each volume was protected, for restore and delete."""

    region: str = ""  # of the backed-up cluster, when ECS snapshots are on: a restore elsewhere copies
    snapshots: list[SnapshotState] = []
    files: dict[str, str] = {}  # "<ns>/<pvc>" -> data-mover snapshot id
    skipped: dict[str, str] = {}  # "<ns>/<pvc>" -> why
