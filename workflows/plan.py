"""One run of a backup plan, started by its Temporal Schedule.

The schedule starts this small workflow; it names the run ``<plan>-<UTC timestamp>`` and runs
the backup as a child with the usual job id, so the run is listed, described and steered like
any backup.  The schedule's overlap policy (skip) sees the run as busy until the backup ends.
A plan with ``drill_every`` then restore-drills that backup (a child drill job) when the last drill
of the plan's backups is that old.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities import drill as drill_acts
    from activities import search_attributes as sa
    from activities.settings import load_settings
    from schemas.ids import job_id
    from schemas.settings import Settings
    from schemas.specs import BackupSpec, DrillSpec
    from schemas.status import JobPhase, JobStatus
    from workflows.backup import BackupWorkflow
    from workflows.drill import DrillWorkflow
    from workflows.steps import SlotClaim


def run_name(plan: str) -> str:
    return f"{plan}-{workflow.now():%Y%m%d%H%M%S}"


@workflow.defn
class PlanRunWorkflow:
    def __init__(self) -> None:
        self.slot = SlotClaim()

    @workflow.run
    async def run(self, template: BackupSpec, drill_every_seconds: float = 0) -> JobStatus:
        assert template.plan, "a plan run needs its plan's name"

        async def limit() -> int:
            settings: Settings = await workflow.execute_activity(
                load_settings, start_to_close_timeout=timedelta(minutes=1)
            )
            return settings.schedule_max_workers

        # Scheduled backups share their own limit (schedule_max_workers) on top of the backup limit.
        await self.slot.acquire("schedule", limit, lambda: False)
        try:
            result = await self._run(template)
        finally:
            await self.slot.release()
        if drill_every_seconds and result.phase in (JobPhase.completed, JobPhase.partially_failed):
            await self._drill(template, result.name, drill_every_seconds)
        return result

    async def _run(self, template: BackupSpec) -> JobStatus:
        assert template.plan
        name = run_name(template.plan)
        spec = template.model_copy(update={"name": name})
        cluster = workflow.info().typed_search_attributes.get(sa.CLUSTER) or ""
        result: JobStatus = await workflow.execute_child_workflow(
            BackupWorkflow.run,
            spec,
            id=job_id("backup", name),
            search_attributes=sa.initial("backup", vault=spec.vault, cluster=cluster),
            static_summary=f"backup {name} of plan {template.plan} → vault {spec.vault}",
            # Stopping the schedule's run must not orphan a half-done backup: cancel it cleanly.
            parent_close_policy=ParentClosePolicy.REQUEST_CANCEL,
        )
        return result

    async def _drill(self, template: BackupSpec, backup: str, every: float) -> None:
        """Start a drill of the new backup if the plan is due one.  It runs on its own (abandoned by
        this run): the schedule sees the plan free again at once, and the drill's outcome is the drill
        job's, never the run's (a failure to look is a warning in the log, not a failed backup)."""
        assert template.plan
        due = drill_acts.DrillDue(plan=template.plan, vault=template.vault, every_seconds=every)
        try:
            wanted = await workflow.execute_activity(
                drill_acts.drill_due, due, start_to_close_timeout=timedelta(minutes=5)
            )
        except ActivityError as err:
            workflow.logger.warning("plan %s: no drill, its last drill was not found: %s", template.plan, err)
            return
        if not wanted:
            return
        name = f"{backup[: 63 - len('-drill')]}-drill"
        cluster = workflow.info().typed_search_attributes.get(sa.CLUSTER) or ""
        await workflow.start_child_workflow(
            DrillWorkflow.run,
            DrillSpec(name=name, backup=backup, vault=template.vault),
            id=job_id("drill", name),
            search_attributes=sa.initial("drill", vault=template.vault, cluster=cluster),
            static_summary=f"restore drill {name} of plan {template.plan}: backup {backup}",
            parent_close_policy=ParentClosePolicy.ABANDON,
        )

    @workflow.signal
    def slot_granted(self) -> None:
        self.slot.grant()
