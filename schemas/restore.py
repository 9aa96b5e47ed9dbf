"""Restore and delete job payloads: what passes between their workflows and activities.

Only names, counts and bounded samples travel here.  Objects, outcomes and explanations go from
the activities straight to the vault (``restores/<cluster>/<name>/``, see
:mod:`kube.restore.records`), so a restore of 10,000 objects keeps a small workflow history.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from schemas.errors import ErrorInfo
from schemas.specs import DeleteSpec, RestoreSpec
from schemas.status import ItemIssue

# Samples of per-item errors and warnings an activity returns; the vault keeps them all.
MAX_SAMPLES = 20


class RestoreJob(BaseModel):
    """Identifies one restore run to its activities."""

    spec: RestoreSpec
    uid: str = Field(description="workflow id / run id: retries of the same run reuse it")
    started_at: datetime


class RestorePlan(BaseModel):
    """What validation learnt about the backup (small)."""

    source_cluster: str
    namespaces: list[str]
    objects: int
    warnings: list[str] = Field(default_factory=list)


class GroupPlan(BaseModel):
    """One restore phase: canonical group_resources in the order they are created."""

    phase: int  # kube.restore.order.Phase
    resources: list[str]


class DiscoverResult(BaseModel):
    served: int
    groups: list[GroupPlan]


class ApplyRequest(BaseModel):
    job: RestoreJob
    group: GroupPlan


class SkipRequest(BaseModel):
    """A phase the operator skipped, with the error of its step."""

    job: RestoreJob
    group: GroupPlan
    error: ErrorInfo | None = None


class Samples(BaseModel):
    """Bounded per-item errors and warnings, with the true totals."""

    errors: list[ItemIssue] = Field(default_factory=list)
    warnings: list[ItemIssue] = Field(default_factory=list)
    errors_total: int = 0
    warnings_total: int = 0

    def error(self, issue: ItemIssue) -> None:
        self.errors_total += 1
        if len(self.errors) < MAX_SAMPLES:
            self.errors.append(issue)

    def warning(self, issue: ItemIssue) -> None:
        self.warnings_total += 1
        if len(self.warnings) < MAX_SAMPLES:
            self.warnings.append(issue)


class GroupResult(BaseModel):
    phase: int
    counts: dict[str, int] = Field(default_factory=dict, description="ItemStatus value -> objects")
    samples: Samples = Field(default_factory=Samples)


class VolumeSourcesResult(BaseModel):
    from_snapshot: int = 0
    from_conversion: int = 0  # of from_snapshot: snapshots a storage-class conversion made
    file_level: int = 0
    without_data: int = 0
    samples: Samples = Field(default_factory=Samples)


class ClaimsResult(BaseModel):
    bound: int = 0
    waiting_for_consumer: list[str] = Field(default_factory=list, description="<ns>/<pvc>, bounded")
    waiting_total: int = 0


class FileVolume(BaseModel):
    """A restored PVC to fill from a file-level backup, and the temporary pod that mounts it."""

    source: str  # "<namespace>/<pvc>" in the backup
    namespace: str
    pvc: str
    pod: str
    snapshot_id: str  # the data mover snapshot


class FileTarget(FileVolume):
    """Where the node worker writes: the mount of the temporary pod on its node."""

    node: str
    pod_uid: str
    pv: str
    plugin_dir: str


class FileRestorePlan(BaseModel):
    """What a file restore found: the snapshot holding the chosen paths, and the pod mounting the
    target PVC (a running one of its own, or a temporary one the job made and removes)."""

    snapshot_id: str
    paths: list[str]  # normalised, each held by the snapshot
    mount: FileVolume
    temporary_pod: bool


class FilesRestored(BaseModel):
    """What a file restore wrote into the target PVC."""

    files: int = 0
    dirs: int = 0
    bytes: int = 0
    kept_existing: int = 0
    warnings: list[str] = Field(default_factory=list)


class FinishResult(BaseModel):
    missing: dict[str, int] = Field(default_factory=dict, description="explanation reason -> entries")
    samples: Samples = Field(default_factory=Samples)
    temporaries_removed: int = 0


class CleanupResult(BaseModel):
    temporaries_removed: int = 0


# --- delete requests ----------------------------------------------------------------------------
class DeleteOutcome(StrEnum):
    deleted = "deleted"  # records and data removed (the source cluster's delete)
    marked = "marked"  # hidden in the vault (another cluster's delete)
    absent = "absent"  # nothing left in the vault (e.g. a retried delete)


class DeleteTarget(BaseModel):
    """What a delete request found to delete, resolved once by its first step."""

    spec: DeleteSpec
    vault: str | None = None
    in_vault: bool = False
    source_cluster: str | None = None
    local: bool = Field(default=False, description="the target belongs to this cluster")
    has_execution: bool = False
    object_namespace: str | None = Field(default=None, description="where the target's custom resource is")
