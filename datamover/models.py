"""Summaries returned by the data mover.

They travel through Temporal payloads, so they stay small: counts, a few keys, and at most
``MAX_ERROR_PATHS`` paths with errors (the total count is always exact).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, Field

MAX_ERROR_PATHS = 100

PathErrorReason = Literal["changed", "vanished", "unreadable", "special", "error"]


class PathError(BaseModel):
    """One path the backup could not capture faithfully, and why."""

    path: str
    reason: PathErrorReason
    detail: str = ""


class ErrorList(BaseModel):
    """Counts every error by reason but keeps only the first ``limit`` paths."""

    count: int = 0
    by_reason: dict[str, int] = Field(default_factory=dict)
    paths: list[PathError] = Field(default_factory=list)
    limit: int = MAX_ERROR_PATHS

    def add(self, path: str, reason: PathErrorReason, detail: str = "") -> None:
        self.count += 1
        self.by_reason[reason] = self.by_reason.get(reason, 0) + 1
        if len(self.paths) < self.limit:
            self.paths.append(PathError(path=path, reason=reason, detail=detail[:200]))


class SnapshotSummary(BaseModel):
    snapshot_id: str
    volume_id: str
    manifest_key: str
    parent_snapshot: str | None = None
    encrypted: bool = False
    files: int = 0
    dirs: int = 0
    symlinks: int = 0
    hardlinks: int = 0
    bytes: int = Field(0, description="Total size of the regular files in the snapshot")
    files_new: int = 0
    files_changed: int = 0
    files_unmodified: int = Field(0, description="Skipped by size+mtime+ctime+inode against the parent")
    bytes_read: int = 0
    new_bytes: int = Field(0, description="Plain bytes of chunks not yet in the vault")
    uploaded_bytes: int = Field(0, description="Bytes of packs and pack indexes written")
    chunks: int = Field(0, description="Chunk references in the snapshot")
    new_chunks: int = 0
    packs_uploaded: int = 0
    errors: ErrorList = Field(default_factory=ErrorList)
    duration_seconds: float = 0.0

    @property
    def partial(self) -> bool:
        """True when some paths are missing or possibly inconsistent: the volume is PartiallyFailed."""
        return self.errors.count > 0


class RestoreSummary(BaseModel):
    snapshot_id: str
    target: str
    files: int = 0
    dirs: int = 0
    symlinks: int = 0
    hardlinks: int = 0
    bytes: int = 0
    bytes_downloaded: int = 0
    files_verified: int = 0
    metadata_warnings: int = Field(0, description="Owner/mode/time changes the OS refused (e.g. not root)")
    warning_paths: list[str] = Field(default_factory=list)
    kept_existing: int = Field(0, description="Chosen paths already in the target, kept (no overwrite)")
    duration_seconds: float = 0.0


class GcSummary(BaseModel):
    blocked_by: list[str] = Field(
        default_factory=list, description="Active backup locks that made gc delete nothing"
    )
    live_snapshots: int = 0
    snapshots_deleted: int = 0
    packs_total: int = 0
    packs_referenced: int = 0
    packs_deleted: int = 0
    bytes_deleted: int = 0
    packs_in_grace: int = Field(0, description="Unreferenced packs kept because they are younger than grace")
    missing_chunks: int = Field(0, description="Chunks live snapshots need that no pack index holds")
    dry_run: bool = False


@dataclass(frozen=True)
class Progress:
    """Passed to the progress callback (from the calling thread only, at most a few times a second).

    During a backup the totals grow while the tree is walked (``scanning`` is True); the
    ``estimated_*`` fields come from the parent snapshot and are 0 without one.
    """

    files_done: int
    bytes_done: int
    files_total: int
    bytes_total: int
    scanning: bool = False
    estimated_files: int = 0
    estimated_bytes: int = 0


ProgressCallback = Callable[[Progress], None]
