"""One run of a backup plan, started by its Temporal Schedule.

The schedule starts this small workflow; it names the run ``<plan>-<UTC timestamp>`` and runs
the backup as a child with the usual job id, so the run is listed, described and steered like
any backup.  The schedule's overlap policy (skip) sees the run as busy until the backup ends.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities import search_attributes as sa
    from activities.settings import load_settings
    from schemas.ids import job_id
    from schemas.settings import Settings
    from schemas.specs import BackupSpec
    from schemas.status import JobStatus
    from workflows.backup import BackupWorkflow
    from workflows.steps import SlotClaim


def run_name(plan: str) -> str:
    return f"{plan}-{workflow.now():%Y%m%d%H%M%S}"


@workflow.defn
class PlanRunWorkflow:
    def __init__(self) -> None:
        self.slot = SlotClaim()

    @workflow.run
    async def run(self, template: BackupSpec) -> JobStatus:
        assert template.plan, "a plan run needs its plan's name"

        async def limit() -> int:
            settings: Settings = await workflow.execute_activity(
                load_settings, start_to_close_timeout=timedelta(minutes=1)
            )
            return settings.schedule_max_workers

        # Scheduled backups share their own limit (schedule_max_workers) on top of the backup limit.
        await self.slot.acquire("schedule", limit, lambda: False)
        try:
            return await self._run(template)
        finally:
            await self.slot.release()

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

    @workflow.signal
    def slot_granted(self) -> None:
        self.slot.grant()
