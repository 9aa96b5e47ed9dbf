"""Payloads of the ECS snapshot steps (issue 8): recording a backup's ECS snapshots, deleting them, and
copying them into another region for a restore.  Names and ids only, never data."""

from __future__ import annotations

from pydantic import BaseModel, Field

from schemas.backup import SnapshotState

# Ids and PVCs named in a step message or summary; the totals are always given.
MAX_LISTED = 5


class RecordSnapshotsRequest(BaseModel):
    """One batch of a backup's ready snapshots, to be looked up in ECS and given the backup's retention."""

    backup: str
    ttl_seconds: float
    states: list[SnapshotState]


class CopyItem(BaseModel):
    """One disk snapshot a cross-region restore copies into the restore cluster's region."""

    key: str  # "<namespace>/<pvc>" in the backup
    snapshot: str  # the ECS snapshot id recorded by the backup
    region: str  # where it is
    size_gib: int | None = None
    retention_days: int | None = None


class CopyPlan(BaseModel):
    source_region: str = ""
    target_region: str = ""
    items: list[CopyItem] = Field(default_factory=list)

    @property
    def cross_region(self) -> bool:
        return bool(self.source_region and self.target_region and self.source_region != self.target_region)


class CopyRequest(BaseModel):
    restore: str
    uid: str  # the restore run: part of the copy's name, hence of its client token
    vault: str
    target_region: str
    item: CopyItem
    timeout_seconds: float


class CopyResult(BaseModel):
    key: str
    copy_id: str
    seconds: float


class CopyRecord(BaseModel):
    """Kept in the restore's vault folder (``ecs-copies/``) before and after CopySnapshot, so that the
    restore uses the copy and a cancelled or failed restore finds (by id, else by name) what to delete."""

    key: str
    source: str
    source_region: str
    target_region: str
    name: str
    copy_id: str = ""


class EcsDeleteResult(BaseModel):
    """What deleting a backup's ECS snapshots (or a restore's copies) did."""

    deleted: int = 0
    missing: int = 0  # already gone: expired, or released by the CSI driver
    left: list[str] = Field(default_factory=list, description="kept by deletionPolicy Retain (bounded)")
    left_total: int = 0

    def message(self, what: str = "ECS snapshots") -> str:
        parts = [f"{self.deleted} {what} deleted"]
        if self.missing:
            parts.append(f"{self.missing} already gone")
        if self.left_total:
            ids = ", ".join(self.left) + (" …" if self.left_total > len(self.left) else "")
            parts.append(f"{self.left_total} left (snapshot class deletionPolicy Retain): {ids}")
        return "; ".join(parts)
