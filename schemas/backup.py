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


class VolumeRecords(BaseModel):
    """Written to the vault: how each volume was protected, for restore and delete."""

    snapshots: list[SnapshotState] = []
    files: dict[str, str] = {}  # "<ns>/<pvc>" -> data-mover snapshot id
    skipped: dict[str, str] = {}  # "<ns>/<pvc>" -> why
