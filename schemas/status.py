"""Job status: what a job did, is doing, and what went wrong.  Returned by the ``status`` query."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import ClassVar

from pydantic import BaseModel, Field

from schemas.errors import ErrorInfo
from schemas.specs import JobKind


class JobPhase(StrEnum):
    in_progress = "InProgress"
    waiting_for_operator = "WaitingForOperator"
    completed = "Completed"
    partially_failed = "PartiallyFailed"
    failed = "Failed"
    canceled = "Canceled"

    @property
    def finished(self) -> bool:
        return self in {JobPhase.completed, JobPhase.partially_failed, JobPhase.failed, JobPhase.canceled}


class StepState(StrEnum):
    pending = "Pending"
    running = "Running"
    succeeded = "Succeeded"
    failed = "Failed"
    waiting_for_operator = "WaitingForOperator"
    skipped = "Skipped"
    canceled = "Canceled"


class Progress(BaseModel):
    done: int = 0
    total: int | None = None
    unit: str = "items"

    def render(self) -> str:
        if self.total:
            return f"{self.done}/{self.total} {self.unit} ({100 * self.done // max(self.total, 1)}%)"
        return f"{self.done} {self.unit}"


class StepStatus(BaseModel):
    name: str
    state: StepState = StepState.pending
    attempts: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    progress: Progress | None = None
    message: str | None = None
    error: ErrorInfo | None = None
    skippable: bool = False


class ItemIssue(BaseModel):
    """A per-item error or warning: one object or volume, never the whole job."""

    item: str = Field(description="kind/namespace/name, or volume and path")
    message: str
    code: str | None = None


class JobStatus(BaseModel):
    kind: JobKind
    name: str
    phase: JobPhase = JobPhase.in_progress
    current_step: str | None = None
    steps: list[StepStatus] = Field(default_factory=list)
    error: ErrorInfo | None = None
    item_errors: list[ItemIssue] = Field(default_factory=list)
    warnings: list[ItemIssue] = Field(default_factory=list)
    item_errors_total: int = 0
    warnings_total: int = 0
    started_at: datetime | None = None
    completed_at: datetime | None = None
    summary: dict[str, int | str] = Field(default_factory=dict)

    # Status lists are bounded so a job with many failing items cannot bloat history; the
    # totals keep the true counts and the vault keeps the full list.
    MAX_LISTED_ISSUES: ClassVar[int] = 100

    def step(self, name: str) -> StepStatus:
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(name)

    def add_item_error(self, issue: ItemIssue) -> None:
        self.item_errors_total += 1
        if len(self.item_errors) < self.MAX_LISTED_ISSUES:
            self.item_errors.append(issue)

    def add_warning(self, issue: ItemIssue) -> None:
        self.warnings_total += 1
        if len(self.warnings) < self.MAX_LISTED_ISSUES:
            self.warnings.append(issue)

    def render_table(self) -> str:
        """Markdown step table, shown as the workflow's current details in the Web UI."""
        lines = [
            f"**{self.kind.value} {self.name}**: {self.phase.value}",
            "",
            "| step | state | attempts | progress | message |",
            "|---|---|---|---|---|",
        ]
        for step in self.steps:
            message = step.error.short() if step.error else (step.message or "")
            progress = step.progress.render() if step.progress else ""
            lines.append(f"| {step.name} | {step.state.value} | {step.attempts} | {progress} | {message} |")
        if self.error:
            lines += ["", f"**Error** `{self.error.code}`: {self.error.short()}"]
            lines += [f"- cause: {c}" for c in self.error.causes]
            lines += [f"- fix: {f}" for f in self.error.fixes]
        if self.item_errors_total:
            lines += ["", f"**Item errors**: {self.item_errors_total}"]
        return "\n".join(lines)
