"""Delete requests as durable workflows: ``backupctl delete backup|restore|convert NAME``.

validate → [delete ECS snapshots] → delete cluster objects → delete vault data → free the name

A backup deleted on its source cluster loses its VolumeSnapshots (and with them the snapshot
data), its vault records and data, and its workflow execution, so the name can be used again.
Deleted from any other cluster, it is only marked deleted in the vault (hidden from every
cluster; the source keeps its snapshots).  A restore's execution and vault working data are
removed; the objects it restored stay.  A conversion's snapshots, temporaries and vault record
are removed, which resets it: the same name can run again.  Every step is idempotent: a delete
that failed is retried, or requested again, and finishes the job.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities import backup as backup_acts
    from activities import delete as acts
    from activities import ecs as ecs_acts
    from schemas.errors import ErrorInfo
    from schemas.restore import DeleteTarget
    from schemas.settings import Settings
    from schemas.specs import DeleteSpec, JobKind
    from schemas.status import JobPhase, JobStatus, StepState
    from workflows.step_controls import OperatorControls
    from workflows.steps import QUICK, TRANSIENT, JobCanceled, JobFailed, JobRunner, setting_limit


STEP_VALIDATE = "validate"
STEP_ECS = "delete ECS snapshots"
STEP_OBJECTS = "delete cluster objects"
STEP_VAULT = "delete vault data"
STEP_NAME = "free the name"


@workflow.defn
class DeleteWorkflow(OperatorControls):
    def __init__(self) -> None:
        self.runner: JobRunner | None = None
        self._status = JobStatus(kind=JobKind.delete, name="")

    @workflow.run
    async def run(self, spec: DeleteSpec) -> JobStatus:
        self._status = JobStatus(kind=JobKind.delete, name=spec.name, started_at=workflow.now())
        self._status.summary.update({"target": f"{spec.target_kind.value} {spec.target}"})
        settings: Settings = await workflow.execute_activity(
            backup_acts.load_settings, start_to_close_timeout=QUICK, retry_policy=TRANSIENT
        )
        runner = JobRunner(self._status, operator_wait_timeout=settings.operator_wait_timeout)
        self.runner = runner
        # With ECS snapshots on, a backup's ECS snapshots (a restore's cross-region copies) are deleted
        # first, by the ids its vault records hold, before those records go.
        ecs = settings.enable_ecs_snapshot and spec.target_kind in (JobKind.backup, JobKind.restore)
        runner.declare(STEP_VALIDATE, *([STEP_ECS] if ecs else []), STEP_OBJECTS, STEP_VAULT, STEP_NAME)


        try:
            await runner.acquire_slot("delete", setting_limit("delete_max_workers"))
            await self._body(spec, runner, ecs=ecs)
        except (JobCanceled, asyncio.CancelledError):
            # Nothing to undo: what is deleted stays deleted, and a new request finishes the job.
            await runner.slot.release()
            return runner.finish(JobPhase.canceled)
        except JobFailed as failed:
            await runner.slot.release()
            return runner.finish(JobPhase.failed, failed.info)
        await runner.slot.release()
        return runner.finish(JobPhase.completed)

    async def _body(self, spec: DeleteSpec, runner: JobRunner, *, ecs: bool = False) -> None:
        target: DeleteTarget | None = await runner.step(
            STEP_VALIDATE, lambda: self._act(acts.resolve_delete, spec)
        )
        if target is None:  # not skippable, so only a bug gets here
            raise JobFailed(ErrorInfo(code="StepFailed", kind="JobError", message="nothing resolved"))
        where = f"source cluster {target.source_cluster}" if target.source_cluster else "this cluster"
        in_vault = f" in vault {target.vault}" if target.vault else ""
        what = f"{spec.target_kind.value} {spec.target}"
        runner.status.step(STEP_VALIDATE).message = f"{what} of {where}{in_vault}"

        if ecs and target.local:
            done = await runner.step(
                STEP_ECS,
                lambda: self._act(
                    ecs_acts.delete_ecs_snapshots, target, summary=f"delete ECS snapshots of {what}"
                ),
            )
            if done is not None:
                noun = "ECS snapshots" if spec.target_kind is JobKind.backup else "ECS snapshot copies"
                message = done.message(noun)
                runner.status.step(STEP_ECS).message = message
                runner.status.summary["ecs_snapshots"] = message
        elif ecs:
            self._skip(STEP_ECS, f"its ECS snapshots belong to cluster {target.source_cluster}")

        if target.local:
            # Releasing owned snapshots waits for the driver to see each release (bounded, heartbeating).
            removed = await runner.step(
                STEP_OBJECTS,
                lambda: self._act(
                    acts.delete_cluster_objects, target, summary=f"delete the snapshots of {what}",
                    timeout=QUICK * 3,
                ),
            )
            what = {
                JobKind.backup: "snapshots",
                JobKind.convert: "converted snapshots and temporary PVCs/pods",
            }.get(spec.target_kind, "temporary snapshot objects")
            runner.status.step(STEP_OBJECTS).message = f"{removed or 0} {what} deleted"
        else:
            self._skip(STEP_OBJECTS, f"its snapshots belong to cluster {target.source_cluster}")

        outcome = await runner.step(STEP_VAULT, lambda: self._act(acts.delete_vault_data, target))
        runner.status.step(STEP_VAULT).message = {
            "deleted": "records and data removed",
            "marked": "marked deleted in the vault (only its source cluster removes it)",
            "absent": "nothing left in the vault",
        }.get(str(outcome), str(outcome))
        runner.status.summary["vault"] = str(outcome)

        if target.local and target.has_execution:
            await runner.step(
                STEP_NAME,
                lambda: self._act(
                    acts.free_job_name,
                    spec.target_kind.value,
                    spec.target,
                    summary=f"delete workflow {spec.target_kind.value}-{spec.target}",
                    timeout=acts.NAME_FREE_TIMEOUT + QUICK,
                ),
            )
            runner.status.step(STEP_NAME).message = f"{spec.target_kind.value} name {spec.target} is free"
        else:
            self._skip(STEP_NAME, "no job of that name on this cluster")

    def _skip(self, step: str, why: str) -> None:
        self._status.step(step).state = StepState.skipped
        self._status.step(step).message = why

    async def _act(self, fn: Any, *args: Any, summary: str | None = None, timeout: timedelta = QUICK) -> Any:
        return await workflow.execute_activity(
            fn,
            args=list(args),
            start_to_close_timeout=timeout,
            retry_policy=TRANSIENT,
            summary=summary,
        )

    @workflow.query
    def status(self) -> JobStatus:
        return self._status
