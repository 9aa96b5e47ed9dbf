"""Storage-class conversion: what passes between its workflow and activities, and its vault record.

A conversion turns the file-level volume data of a backup into CSI snapshots of another storage
class (NAS → disk, say), so a restore mapping the volume's class to that one restores it from a
snapshot.  Only names, sizes and snapshot handles travel here; the data goes node worker →
temporary volume → snapshot, never through the workflow.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from schemas.errors import ErrorInfo
from schemas.specs import ConvertSpec


class ConvertJob(BaseModel):
    """Identifies one conversion run to its activities."""

    spec: ConvertSpec
    uid: str = Field(description="workflow id / run id: retries of the same run reuse it")
    started_at: datetime
    stamp: str = Field(description="UTC minute of the start (YYYYmmddHHMM), in temporary names")


class ConvertItem(BaseModel):
    """One backed-up volume to convert, and the temporaries that carry it."""

    source: str  # "<namespace>/<pvc>" in the backup
    namespace: str  # where the temporaries live in this cluster
    temp_pvc: str  # "<pvc>-for-convert<stamp>"; the temporary pod has the same name
    source_class: str
    target_class: str
    driver: str  # the target class's provisioner
    snapshot_class: str
    size: str
    access_modes: list[str]
    files_snapshot: str  # the data-mover snapshot holding the volume's files

    @property
    def temp_ref(self) -> str:
        return f"{self.namespace}/{self.temp_pvc}"


class ConvertPlan(BaseModel):
    backup_cluster: str
    items: list[ConvertItem] = Field(default_factory=list)
    # "<ns>/<pvc>" -> why the volume is not converted (already restorable, no data, …)
    skipped: dict[str, str] = Field(default_factory=dict)


class ConvertedVolume(BaseModel):
    """A converted volume: the snapshot a restore into ``target_class`` uses."""

    source: str  # "<namespace>/<pvc>" in the backup
    source_class: str
    target_class: str
    driver: str
    snapshot_class: str
    snapshot: str = ""  # "<ns>/<VolumeSnapshot>" kept in the converting cluster
    handle: str = ""
    restore_size: str = ""
    access_modes: list[str] = Field(default_factory=list)
    # As for a backup's snapshots: the retained content the conversion owns (the VolumeSnapshot is
    # removed once ready), the class's deletion policy, and what re-creates a content from the handle.
    content: str = ""
    deletion_policy: str = ""
    owned: bool = False
    source_volume_mode: str = ""
    # With ECS snapshots on, the handle is an ECS snapshot of this region: a restore in another
    # region copies it there like the backup's own disk snapshots.
    ecs_region: str = ""
    size_gib: int | None = None


class ConvertState(StrEnum):
    in_progress = "InProgress"
    committed = "Completed"
    failed = "Failed"


class ConvertRecord(BaseModel):
    """``conversions/<name>.json`` in the vault: written at the start (the name is taken), rewritten
    at the end.  A restore uses the volumes of committed records of its backup."""

    name: str
    backup: str
    cluster_id: str
    uid: str
    state: ConvertState = ConvertState.in_progress
    storage_class_mapping: dict[str, str] = Field(default_factory=dict)
    convert_to_access_modes: list[str] = Field(default_factory=list)
    volumes: list[ConvertedVolume] = Field(default_factory=list)
    started_at: datetime
    finished_at: datetime | None = None
    error: ErrorInfo | None = None


class ConvertFillTarget(BaseModel):
    """Where the node worker writes a volume's files: the temporary pod's node and mount."""

    item: ConvertItem
    node: str
    pod_uid: str
    pv: str
    plugin_dir: str
