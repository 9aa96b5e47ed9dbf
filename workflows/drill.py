"""A restore drill as a durable workflow: ``backupctl backup drill NAME``.

plan the drill → restore into scratch namespaces → check restored objects → remove scratch
namespaces → record the drill

The backup is restored, as in a disaster, by an ordinary restore job (a child, listed and steerable
like any restore) whose namespace mapping sends every namespace of the backup to a new scratch
namespace; the restore waits for the claims to bind and writes file-level data through the node
workers, checking every chunk against its digest.  Then every object the restore made is looked up
and every claim must be Bound.  The scratch namespaces and their volumes go whatever the outcome,
and the report (verdict, RTO, RPO, differences) is kept with the backup.  A drill with differences
ends Failed, one cause per difference; the source namespaces are never touched.
"""

from __future__ import annotations

from datetime import timedelta
from typing import ClassVar

from temporalio import workflow
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities import drill as acts
    from activities import search_attributes as sa
    from schemas.drill import MAX_DIFFERENCES, DrillCheck, DrillPlan, DrillReport
    from schemas.errors import BackupCenterError, ErrorInfo
    from schemas.ids import job_id
    from schemas.settings import Settings
    from schemas.specs import DrillSpec, JobKind, RestoreSpec
    from schemas.status import ItemIssue, JobPhase, JobStatus
    from workflows.job import JobWorkflow
    from workflows.restore import RestoreWorkflow
    from workflows.steps import JobFailed, JobRunner, act, produced


STEP_PLAN = "plan the drill"
STEP_RESTORE = "restore into scratch namespaces"
STEP_CHECK = "check restored objects"
STEP_REMOVE = "remove scratch namespaces"
STEP_RECORD = "record the drill"
MAX_CAUSES = 20
CHECK_TIMEOUT = timedelta(hours=1)
REMOVE_TIMEOUT = timedelta(seconds=acts.SCRATCH_GONE_SECONDS + 120)


@workflow.defn
class DrillWorkflow(JobWorkflow[DrillSpec]):
    kind: ClassVar[JobKind] = JobKind.drill
    slot_setting: ClassVar[str] = "drill_max_workers"
    unattended: ClassVar[bool] = True

    def __init__(self) -> None:
        super().__init__()
        self._plan: DrillPlan | None = None
        self._vault = ""

    @workflow.run
    async def run(self, spec: DrillSpec) -> JobStatus:
        return await self.run_job(spec)

    def prepare(self, spec: DrillSpec, settings: Settings) -> list[str]:
        self._vault = spec.vault
        self._status.summary.update({"backup": spec.backup, "vault": spec.vault})
        return [STEP_PLAN, STEP_RESTORE, STEP_CHECK, STEP_REMOVE, STEP_RECORD]

    async def runbook(self, spec: DrillSpec, settings: Settings, runner: JobRunner) -> None:
        started = workflow.now()
        plan: DrillPlan = produced(
            await runner.step(STEP_PLAN, lambda: act(acts.plan_drill, spec)), STEP_PLAN
        )
        self._plan = plan
        request = acts.DrillRequest(vault=spec.vault, plan=plan)
        mapping = ", ".join(f"{a} → {b}" for a, b in plan.scratch.items())
        runner.status.step(STEP_PLAN).message = f"backup {plan.backup}: {mapping}"
        runner.status.summary.update({"scratch": mapping, "restore": plan.restore})

        restored: JobStatus = produced(
            await runner.step(STEP_RESTORE, lambda: self._restore(spec, plan)), STEP_RESTORE
        )
        rto = ((restored.completed_at or workflow.now()) - (restored.started_at or started)).total_seconds()
        outcome = f"restore {plan.restore} {restored.phase.value} in {rto:.0f} s"
        runner.status.step(STEP_RESTORE).message = outcome

        check = DrillCheck()
        if restored.phase is not JobPhase.completed:
            why = restored.error.short() if restored.error else f"ended {restored.phase.value}"
            check.differ(f"restore {plan.restore}: {why}")
        for issue in restored.item_errors:
            check.differ(f"{issue.item}: {issue.message}")
        check.omitted += max(0, restored.item_errors_total - len(restored.item_errors))
        found: DrillCheck = produced(
            await runner.step(STEP_CHECK, lambda: act(acts.check_drill, request, timeout=CHECK_TIMEOUT)),
            STEP_CHECK,
        )
        for line in found.differences:
            check.differ(line)
        check.omitted += found.omitted
        check.checked = found.checked
        runner.status.step(STEP_CHECK).message = (
            f"{sum(found.checked.values())} objects checked; {found.total} difference(s)"
        )

        removed = produced(await runner.step(STEP_REMOVE, lambda: self._remove(request)), STEP_REMOVE)
        runner.status.step(STEP_REMOVE).message = (
            f"{removed.namespaces} namespaces, {removed.cluster_objects} volumes and cluster objects removed"
        )

        report = DrillReport(
            job=spec.name,
            backup=spec.backup,
            vault=spec.vault,
            passed=not check.total,
            started_at=started,
            finished_at=workflow.now(),
            backup_taken_at=plan.backup_taken_at,
            rpo_seconds=(started - plan.backup_taken_at).total_seconds(),
            rto_seconds=rto,
            scratch=plan.scratch,
            restore_job=plan.restore,
            restore_phase=restored.phase.value,
            checked=check.checked,
            differences=check.differences,
            omitted=check.omitted,
        )
        key = produced(await runner.step(STEP_RECORD, lambda: act(acts.record_drill, report)), STEP_RECORD)
        runner.status.step(STEP_RECORD).message = f"report kept as {key}"
        runner.status.summary.update(
            {"rto_seconds": round(rto), "rpo_seconds": round(report.rpo_seconds),
             "differences": check.total, "report": key}
        )
        if check.total:
            error = BackupCenterError(
                "RestoreDrillFailed", name=spec.backup, count=check.total, first=check.differences[0]
            )
            info = error.info()
            rest = check.total - min(len(check.differences), MAX_CAUSES)
            more = f"… and {rest} more (the report {key} lists up to {MAX_DIFFERENCES})"
            info.causes = check.differences[:MAX_CAUSES] + ([more] if rest else [])
            raise JobFailed(info)

    async def _restore(self, spec: DrillSpec, plan: DrillPlan) -> JobStatus:
        restore = RestoreSpec(
            name=plan.restore,
            backup=plan.backup,
            vault=spec.vault,
            include_namespaces=list(plan.scratch),
            namespace_mapping=plan.scratch,
            unattended=True,
            # Beside the running source: none of its traffic (ports, load balancers, hosts) is taken.
            isolated=True,
        )
        cluster = workflow.info().typed_search_attributes.get(sa.CLUSTER) or ""
        result: JobStatus = await workflow.execute_child_workflow(
            RestoreWorkflow.run,
            restore,
            id=job_id("restore", plan.restore),
            search_attributes=sa.initial("restore", vault=spec.vault, cluster=cluster),
            static_summary=f"restore {plan.restore}: drill {spec.name} of backup {plan.backup}",
            # Canceling the drill cancels its restore, which removes its temporaries.
            parent_close_policy=ParentClosePolicy.REQUEST_CANCEL,
        )
        return result

    async def _remove(self, request: acts.DrillRequest) -> acts.RemovedScratch:
        removed: acts.RemovedScratch = await act(
            acts.remove_scratch, request, timeout=REMOVE_TIMEOUT,
            summary=f"delete {', '.join(request.plan.scratch.values())}",
        )
        return removed

    async def cleanup(self, *, canceled: bool, error: ErrorInfo | None) -> None:
        """A failed or canceled drill leaves nothing behind either (a failed check already removed
        its scratch namespaces; this finds none then)."""
        if self._plan is None:
            return
        try:
            await self._remove(acts.DrillRequest(vault=self._vault, plan=self._plan))
        except Exception as err:
            left = ", ".join(self._plan.scratch.values())
            self._status.add_warning(ItemIssue(item=f"namespaces/{left}", message=f"not removed: {err}"))
