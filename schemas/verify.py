"""What a backup verification found (``backupctl backup verify``), kept with the backup in the vault."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class VerifyFinding(BaseModel):
    object: str = Field(description="the vault object (or cluster object) at fault")
    problem: str
    affects: list[str] = Field(default_factory=list, description="volumes, namespaces or resources it breaks")


# Findings one step passes back (and a report keeps): a vault that lost thousands of objects must
# still give a report that fits a workflow payload; beyond this, findings are counted.
MAX_FINDINGS = 100


class VerifyPart(BaseModel):
    """One step's result: what it checked (counts by what) and what it found."""

    checked: dict[str, int] = Field(default_factory=dict)
    findings: list[VerifyFinding] = Field(default_factory=list)
    omitted: int = Field(default=0, description="findings beyond MAX_FINDINGS, counted only")
    restorable: list[str] = Field(default_factory=list, description="what this part found intact")

    def add(self, object: str, problem: str, affects: list[str]) -> None:
        if len(self.findings) < MAX_FINDINGS:
            self.findings.append(VerifyFinding(object=object, problem=problem, affects=affects))
        else:
            self.omitted += 1

    @property
    def found(self) -> int:
        return len(self.findings) + self.omitted


class VerifyReport(BaseModel):
    job: str
    backup: str
    vault: str
    read_data: bool
    passed: bool
    started_at: datetime
    finished_at: datetime
    checked: dict[str, int] = Field(default_factory=dict)
    findings: list[VerifyFinding] = Field(default_factory=list)
    omitted: int = Field(default=0, description="findings beyond those listed, counted only")
    restorable: list[str] = Field(default_factory=list)

    def line(self) -> str:
        """One line for listings: the verdict, when, and how deep."""
        depth = "data read" if self.read_data else "metadata"
        verdict = "passed" if self.passed else f"FAILED ({len(self.findings) + self.omitted} finding(s))"
        return f"{verdict} {self.finished_at:%Y-%m-%d %H:%M}Z ({depth}, job {self.job})"
