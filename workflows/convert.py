"""The storage-class conversion runbook as a durable workflow.

validate (classes, backup, what to convert; the name taken in the vault) → for each volume:
temporary PVC in the target class and a pod mounting it, bound within pvc_bind_timeout → the
node worker of the pod's node writes the backed-up files → snapshot the PVC, wait ready →
remove the temporary PVC and pod → record the converted snapshots with the backup in the vault

A volume's step that still fails after its retries waits for the operator (retry, skip: that
volume counts as failed, cancel).  Cancel and failure remove every temporary and the snapshots
taken so far, and the vault record says the conversion failed: a delete request of type Convert
resets it so it can run again.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities import backup as backup_acts
    from activities import convert as acts
    from activities import node as node_acts
    from schemas.convert import ConvertedVolume, ConvertItem, ConvertJob
    from schemas.errors import ErrorInfo
    from schemas.settings import Settings
    from schemas.specs import ConvertSpec, JobKind
    from schemas.status import ItemIssue, JobPhase, JobStatus, StepState
    from workflows.node_work import write_volume_files
    from workflows.step_controls import OperatorControls
    from workflows.steps import QUICK, TRANSIENT, JobCanceled, JobFailed, JobRunner, act, setting_limit

STEP_VALIDATE = "validate"
STEP_COMMIT = "record in vault"
# Volumes converted at once by one conversion; each holds a temporary volume and a node worker.
PARALLEL_VOLUMES = 4


def volume_step(item: ConvertItem) -> str:
    return f"convert {item.source}"


@workflow.defn
class ConvertWorkflow(OperatorControls):
    def __init__(self) -> None:
        self.runner: JobRunner | None = None
        self._status = JobStatus(kind=JobKind.convert, name="")

    @workflow.run
    async def run(self, spec: ConvertSpec) -> JobStatus:
        now = workflow.now()
        self._status = JobStatus(kind=JobKind.convert, name=spec.name, started_at=now)
        self._status.summary.update(
            {
                "backup": spec.backup,
                "vault": spec.vault,
                "mapping": ", ".join(f"{k} → {v}" for k, v in sorted(spec.storage_class_mapping.items())),
            }
        )
        settings: Settings = await workflow.execute_activity(
            backup_acts.load_settings, start_to_close_timeout=QUICK, retry_policy=TRANSIENT
        )
        runner = JobRunner(self._status, operator_wait_timeout=settings.operator_wait_timeout)
        self.runner = runner
        runner.declare(STEP_VALIDATE, STEP_COMMIT)
        info = workflow.info()
        job = ConvertJob(
            spec=spec,
            uid=f"{info.workflow_id}/{info.run_id}",
            started_at=now,
            stamp=now.strftime("%Y%m%d%H%M"),
        )


        try:
            await runner.acquire_slot("convert", setting_limit("convert_max_workers"))
            await self._body(job, settings, runner)
        except (JobCanceled, asyncio.CancelledError):
            await self._cleanup(job, None)
            await runner.slot.release()
            return runner.finish(JobPhase.canceled)
        except JobFailed as failed:
            await self._cleanup(job, failed.info)
            await runner.slot.release()
            return runner.finish(JobPhase.failed, failed.info)
        await runner.slot.release()
        phase = JobPhase.partially_failed if self._status.item_errors_total else JobPhase.completed
        return runner.finish(phase)

    async def _body(self, job: ConvertJob, settings: Settings, runner: JobRunner) -> None:
        found: acts.ConvertValidation | None = await runner.step(
            STEP_VALIDATE,
            lambda: self._act(acts.validate_convert, job, summary="check classes, plan volumes"),
        )
        if found is None:  # not skippable, so only a bug gets here
            raise JobFailed(ErrorInfo(code="StepFailed", kind="JobError", message="nothing validated"))
        plan = found.plan
        for issue in found.failed:
            runner.status.add_item_error(issue)
        for key, why in plan.skipped.items():
            runner.status.add_warning(ItemIssue(item=f"PVC {key}", message=f"not converted: {why}"))
        runner.status.summary.update(
            {"volumes": len(plan.items), "not_converted": len(plan.skipped), "failed": len(found.failed)}
        )
        runner.status.step(STEP_VALIDATE).message = (
            f"backup {job.spec.backup} of cluster {plan.backup_cluster}: {len(plan.items)} volumes to "
            f"convert, {len(plan.skipped)} need no conversion, {len(found.failed)} cannot be converted"
        )
        for item in plan.items:
            runner.add_step(volume_step(item), skippable=True, before=STEP_COMMIT)
        runner.publish()

        gate = asyncio.Semaphore(PARALLEL_VOLUMES)
        converted: list[ConvertedVolume] = []

        async def one(item: ConvertItem) -> None:
            async with gate:
                volume = await runner.step(
                    volume_step(item), lambda: self._convert(job, settings, item), item=f"PVC {item.source}"
                )
            if volume is not None:
                converted.append(volume)
                runner.status.step(volume_step(item)).message = (
                    f"{item.source_class} → {item.target_class}: snapshot {volume.handle} "
                    f"({volume.restore_size or 'size unknown'})"
                )
                runner.set_progress(volume_step(item), 1, 1, "volumes")

        await asyncio.gather(*(one(item) for item in plan.items))
        converted.sort(key=lambda v: v.source)
        count = await runner.step(
            STEP_COMMIT,
            lambda: self._act(
                acts.commit_convert,
                acts.CommitRequest(job=job, volumes=converted),
                summary=f"record {len(converted)} converted snapshots",
            ),
        )
        runner.status.summary["converted"] = len(converted)
        runner.status.step(STEP_COMMIT).message = (
            f"{count} converted snapshots recorded with backup {job.spec.backup}; a restore mapping "
            f"{', '.join(sorted(job.spec.storage_class_mapping))} uses them"
        )

    async def _convert(self, job: ConvertJob, settings: Settings, item: ConvertItem) -> ConvertedVolume:
        """One volume, from temporary PVC to recorded snapshot (each activity is idempotent, so
        `retry` runs the whole volume again)."""
        bind, ready = settings.pvc_bind_timeout, settings.snapshot_ready_timeout
        target = await self._act(
            acts.prepare_convert_volume,
            acts.VolumeRequest(job=job, item=item, timeout_seconds=bind.total_seconds()),
            summary=f"create tmp pvc {item.temp_ref} ({item.target_class}), wait bound (timeout {bind})",
            timeout=bind + QUICK,
            non_retryable=["ResourceTimeout"],
        )
        await write_volume_files(
            settings,
            target.node,
            node_acts.VolumeRestoreRequest(
                vault=job.spec.vault,
                snapshot_id=item.files_snapshot,
                target_pod_uid=target.pod_uid,
                plugin_dir=target.plugin_dir,
                pv=target.pv,
                volume=item.temp_ref,
            ),
        )
        volume: ConvertedVolume = await self._act(
            acts.snapshot_converted_volume,
            acts.VolumeRequest(job=job, item=item, timeout_seconds=ready.total_seconds()),
            summary=f"snapshot {item.temp_ref}, wait ready (timeout {ready})",
            timeout=ready + QUICK,
            non_retryable=["SnapshotNotReady"],
        )
        await self._act(
            acts.remove_convert_temporaries,
            acts.VolumeRequest(job=job, item=item),
            summary=f"remove tmp pvc and pod {item.temp_ref}",
            timeout=timedelta(minutes=2),
        )
        return volume

    async def _act(self, fn: Any, *args: Any, **options: Any) -> Any:
        return await act(fn, *args, **options)

    async def _cleanup(self, job: ConvertJob, error: ErrorInfo | None) -> None:
        try:
            removed = await workflow.execute_activity(
                acts.cleanup_convert,
                acts.CleanupRequest(job=job, error=error),
                # Releasing snapshots taken over waits for the driver (bounded, heartbeating).
                start_to_close_timeout=QUICK * 3,
                retry_policy=TRANSIENT,
                summary="remove temporary PVCs, pods and the snapshots taken so far",
            )
            self._status.summary["temporaries_removed"] = removed
        except Exception as err:  # cleanup failure must not hide the job's outcome
            self._status.add_warning(ItemIssue(item="cleanup", message=f"cleanup failed: {err}"))
        for step in self._status.steps:
            if step.state is StepState.succeeded and step.name.startswith("convert "):
                step.message = (step.message or "") + " (snapshot removed: the conversion did not complete)"

    @workflow.query
    def status(self) -> JobStatus:
        return self._status
