"""A restore drill's plan and its report (workflows/drill.py).

Through the workflow pass the plan (names only) and counts with at most MAX_DIFFERENCES differences;
the report in the vault is the record an auditor reads: verdict, RPO and RTO, what differed.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

MAX_DIFFERENCES = 100


class DrillPlan(BaseModel):
    backup: str
    backup_taken_at: datetime  # when the backup finished: the drill's RPO is measured from it
    scratch: dict[str, str]  # source namespace -> scratch namespace
    restore: str  # the drill's restore job


class DrillCheck(BaseModel):
    """What the check found, bounded: ``checked`` counts per resource, ``omitted`` counts the
    differences beyond those listed."""

    checked: dict[str, int] = Field(default_factory=dict)
    differences: list[str] = Field(default_factory=list)
    omitted: int = 0

    def differ(self, line: str) -> None:
        if len(self.differences) < MAX_DIFFERENCES:
            self.differences.append(line)
        else:
            self.omitted += 1

    @property
    def total(self) -> int:
        return len(self.differences) + self.omitted


class RemovedScratch(BaseModel):
    namespaces: int = 0
    cluster_objects: int = 0


class DrillReport(BaseModel):
    job: str
    backup: str
    vault: str
    passed: bool
    started_at: datetime
    finished_at: datetime
    backup_taken_at: datetime
    rpo_seconds: float = Field(description="age of the backup when the drill began")
    rto_seconds: float = Field(description="time the restore took, until its volumes were bound and filled")
    scratch: dict[str, str]
    restore_job: str
    restore_phase: str
    checked: dict[str, int] = Field(default_factory=dict)
    differences: list[str] = Field(default_factory=list)
    omitted: int = 0

    def line(self) -> str:
        count = len(self.differences) + self.omitted
        verdict = "passed" if self.passed else f"FAILED ({count} difference(s))"
        return (f"{verdict} {self.finished_at:%Y-%m-%d %H:%M}Z (RTO {self.rto_seconds:.0f} s, "
                f"RPO {self.rpo_seconds / 3600:.1f} h, job {self.job})")
