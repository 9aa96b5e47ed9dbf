"""Backup verification as a durable workflow: ``backupctl backup verify NAME [--read-data]``.

check resources → check volume files → check disk snapshots → record the result

Nothing is restored and nothing in the backup changes.  Each check names the vault object (or the
disk snapshot) at fault and what it breaks; the report goes to the vault beside the backup, and a
backup that is not fully restorable ends the job Failed with one cause per finding.  Through the
workflow pass counts and at most MAX_FINDINGS findings per check (schemas/verify.py; the rest are
counted), so a badly damaged vault still gives a report within Temporal's payload limits.
"""

from __future__ import annotations

from datetime import timedelta
from functools import partial
from typing import Any, ClassVar

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities import verify as acts
    from schemas.errors import BackupCenterError
    from schemas.settings import Settings
    from schemas.specs import JobKind, VerifySpec
    from schemas.status import JobStatus
    from schemas.verify import MAX_FINDINGS, VerifyFinding, VerifyPart, VerifyReport
    from workflows.job import JobWorkflow
    from workflows.steps import JobFailed, JobRunner, act, produced


STEP_RESOURCES = "check resources"
STEP_FILES = "check volume files"
STEP_DISKS = "check disk snapshots"
STEP_RECORD = "record the result"
# Findings named in the job's error (the vault's report has them all).
MAX_CAUSES = 20
READ_TIMEOUT = timedelta(hours=12)


@workflow.defn
class VerifyWorkflow(JobWorkflow[VerifySpec]):
    """Nothing to undo on cancel or failure: a verification only reads."""

    kind: ClassVar[JobKind] = JobKind.verify
    slot_setting: ClassVar[str] = "verify_max_workers"

    @workflow.run
    async def run(self, spec: VerifySpec) -> JobStatus:
        return await self.run_job(spec)

    def prepare(self, spec: VerifySpec, settings: Settings) -> list[str]:
        depth = "data read" if spec.read_data else "metadata"
        self._status.summary.update({"backup": spec.backup, "vault": spec.vault, "depth": depth})
        return [STEP_RESOURCES, STEP_FILES, STEP_DISKS, STEP_RECORD]

    async def runbook(self, spec: VerifySpec, settings: Settings, runner: JobRunner) -> None:
        started = workflow.now()
        parts: list[VerifyPart] = []
        checks: list[tuple[str, Any, timedelta]] = [
            (STEP_RESOURCES, acts.verify_resources, READ_TIMEOUT),
            (STEP_FILES, acts.verify_volume_files, READ_TIMEOUT),
            (STEP_DISKS, acts.verify_disk_snapshots, timedelta(minutes=10)),
        ]
        for step, fn, timeout in checks:
            outcome = await runner.step(step, partial(act, fn, spec, timeout=timeout))
            part: VerifyPart = produced(outcome, step)
            parts.append(part)
            done = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in part.checked.items())
            found = f"; {part.found} finding(s)" if part.found else "; intact"
            runner.status.step(step).message = f"checked {done or 'nothing'}{found}"

        findings: list[VerifyFinding] = [f for p in parts for f in p.findings]
        omitted = sum(p.omitted for p in parts)
        total = len(findings) + omitted
        checked: dict[str, int] = {}
        for part in parts:
            for key, value in part.checked.items():
                checked[key] = checked.get(key, 0) + value
        report = VerifyReport(
            job=spec.name,
            backup=spec.backup,
            vault=spec.vault,
            read_data=spec.read_data,
            passed=not total,
            started_at=started,
            finished_at=workflow.now(),
            checked=checked,
            findings=findings,
            omitted=omitted,
            restorable=[r for p in parts for r in p.restorable],
        )
        key = produced(
            await runner.step(STEP_RECORD, lambda: act(acts.record_verification, report)), STEP_RECORD
        )
        runner.status.step(STEP_RECORD).message = f"report kept as {key}"
        runner.status.summary.update({"findings": total, "report": key})
        runner.status.summary.update({f"checked_{k}": v for k, v in checked.items()})
        if total:
            lines = [f"{f.object}: {f.problem} (affects: {'; '.join(f.affects)})" for f in findings]
            error = BackupCenterError("BackupVerifyFailed", name=spec.backup, count=total, first=lines[0])
            info = error.info()
            rest = total - min(len(lines), MAX_CAUSES)
            more = f"… and {rest} more (the report {key} lists up to {MAX_FINDINGS} per check)"
            info.causes = lines[:MAX_CAUSES] + ([more] if rest else [])
            raise JobFailed(info)
