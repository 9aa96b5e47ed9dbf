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

from typing import ClassVar

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities import delete as acts
    from activities import ecs as ecs_acts
    from activities import objects as object_acts
    from schemas.restore import DeleteTarget
    from schemas.settings import Settings
    from schemas.specs import DeleteSpec, JobKind
    from schemas.status import JobStatus
    from workflows.job import JobWorkflow
    from workflows.steps import QUICK, JobRunner, act, produced


STEP_VALIDATE = "validate"
STEP_ECS = "delete ECS snapshots"
STEP_OBJECTS = "delete cluster objects"
STEP_VAULT = "delete vault data"
STEP_NAME = "free the name"


@workflow.defn
class DeleteWorkflow(JobWorkflow[DeleteSpec]):
    """Nothing to undo on cancel or failure: what is deleted stays deleted, and a new request
    finishes the job."""

    kind: ClassVar[JobKind] = JobKind.delete
    slot_setting: ClassVar[str] = "delete_max_workers"

    @workflow.run
    async def run(self, spec: DeleteSpec) -> JobStatus:
        return await self.run_job(spec)

    def prepare(self, spec: DeleteSpec, settings: Settings) -> list[str]:
        self._status.summary.update({"target": f"{spec.target_kind.value} {spec.target}"})
        # With ECS snapshots on, a backup's ECS snapshots (a restore's cross-region copies) are deleted
        # first, by the ids its vault records hold, before those records go.
        self._ecs = settings.enable_ecs_snapshot and spec.target_kind in (JobKind.backup, JobKind.restore)
        return [STEP_VALIDATE, *([STEP_ECS] if self._ecs else []), STEP_OBJECTS, STEP_VAULT, STEP_NAME]

    async def runbook(self, spec: DeleteSpec, settings: Settings, runner: JobRunner) -> None:
        ecs = self._ecs
        target: DeleteTarget = produced(
            await runner.step(STEP_VALIDATE, lambda: act(acts.resolve_delete, spec)), STEP_VALIDATE
        )
        where = f"source cluster {target.source_cluster}" if target.source_cluster else "this cluster"
        in_vault = f" in vault {target.vault}" if target.vault else ""
        what = f"{spec.target_kind.value} {spec.target}"
        runner.status.step(STEP_VALIDATE).message = f"{what} of {where}{in_vault}"

        if ecs and target.local:
            done = await runner.step(
                STEP_ECS,
                lambda: act(
                    ecs_acts.delete_ecs_snapshots, target, summary=f"delete ECS snapshots of {what}"
                ),
            )
            if done is not None:
                noun = "ECS snapshots" if spec.target_kind is JobKind.backup else "ECS snapshot copies"
                message = done.message(noun)
                runner.status.step(STEP_ECS).message = message
                runner.status.summary["ecs_snapshots"] = message
        elif ecs:
            runner.skip_step(STEP_ECS, f"its ECS snapshots belong to cluster {target.source_cluster}")

        if target.local:
            # Releasing owned snapshots waits for the driver to see each release (bounded, heartbeating).
            removed = await runner.step(
                STEP_OBJECTS,
                lambda: act(
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
            runner.skip_step(STEP_OBJECTS, f"its snapshots belong to cluster {target.source_cluster}")

        outcome = await runner.step(STEP_VAULT, lambda: act(acts.delete_vault_data, target))
        runner.status.step(STEP_VAULT).message = {
            "deleted": "records and data removed",
            "marked": "marked deleted in the vault (only its source cluster removes it)",
            "absent": "nothing left in the vault",
        }.get(str(outcome), str(outcome))
        runner.status.summary["vault"] = str(outcome)

        if target.local and target.has_execution:

            async def free_name() -> None:
                await act(
                    acts.free_job_name,
                    spec.target_kind.value,
                    spec.target,
                    summary=f"delete workflow {spec.target_kind.value}-{spec.target}",
                    timeout=acts.NAME_FREE_TIMEOUT + QUICK,
                )
                # Its custom resource goes with it (kubectl get no longer lists a deleted job).
                await act(
                    object_acts.remove_job_object, spec.target_kind, spec.target, target.object_namespace
                )

            await runner.step(STEP_NAME, free_name)
            runner.status.step(STEP_NAME).message = f"{spec.target_kind.value} name {spec.target} is free"
        else:
            runner.skip_step(STEP_NAME, "no job of that name on this cluster")
