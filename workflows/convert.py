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
from typing import ClassVar

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities import convert as acts
    from activities import node as node_acts
    from schemas.convert import ConvertedVolume, ConvertItem, ConvertJob
    from schemas.errors import ErrorInfo
    from schemas.settings import Settings
    from schemas.specs import ConvertSpec, JobKind
    from schemas.status import ItemIssue, JobStatus, StepState
    from workflows.job import JobWorkflow
    from workflows.node_work import write_volume_files
    from workflows.steps import QUICK, JobRunner, act, produced

STEP_VALIDATE = "validate"
STEP_COMMIT = "record in vault"
# Volumes converted at once by one conversion; each holds a temporary volume and a node worker.
PARALLEL_VOLUMES = 4


def volume_step(item: ConvertItem) -> str:
    return f"convert {item.source}"


@workflow.defn
class ConvertWorkflow(JobWorkflow[ConvertSpec]):
    kind: ClassVar[JobKind] = JobKind.convert
    slot_setting: ClassVar[str] = "convert_max_workers"

    @workflow.run
    async def run(self, spec: ConvertSpec) -> JobStatus:
        return await self.run_job(spec)

    def prepare(self, spec: ConvertSpec, settings: Settings) -> list[str]:
        self._status.summary.update(
            {
                "backup": spec.backup,
                "vault": spec.vault,
                "mapping": ", ".join(f"{k} → {v}" for k, v in sorted(spec.storage_class_mapping.items())),
            }
        )
        info = workflow.info()
        started = self._status.started_at or workflow.now()
        self._job = ConvertJob(
            spec=spec, uid=f"{info.workflow_id}/{info.run_id}", started_at=started,
            stamp=started.strftime("%Y%m%d%H%M"),
        )
        return [STEP_VALIDATE, STEP_COMMIT]

    async def runbook(self, spec: ConvertSpec, settings: Settings, runner: JobRunner) -> None:
        job = self._job
        found: acts.ConvertValidation = produced(
            await runner.step(
                STEP_VALIDATE, lambda: act(acts.validate_convert, job, summary="check classes, plan volumes")
            ),
            STEP_VALIDATE,
        )
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
            lambda: act(
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
        target = await act(
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
        volume: ConvertedVolume = await act(
            acts.snapshot_converted_volume,
            acts.VolumeRequest(job=job, item=item, timeout_seconds=ready.total_seconds()),
            summary=f"snapshot {item.temp_ref}, wait ready (timeout {ready})",
            timeout=ready + QUICK,
            non_retryable=["SnapshotNotReady"],
        )
        await act(
            acts.remove_convert_temporaries,
            acts.VolumeRequest(job=job, item=item),
            summary=f"remove tmp pvc and pod {item.temp_ref}",
            timeout=timedelta(minutes=2),
        )
        return volume

    async def cleanup(self, *, canceled: bool, error: ErrorInfo | None) -> None:
        try:
            removed = await act(
                acts.cleanup_convert,
                acts.CleanupRequest(job=self._job, error=error),
                # Releasing snapshots taken over waits for the driver (bounded, heartbeating).
                timeout=QUICK * 3,
                summary="remove temporary PVCs, pods and the snapshots taken so far",
            )
            self._status.summary["temporaries_removed"] = removed
        except Exception as err:  # cleanup failure must not hide the job's outcome
            self._status.add_warning(ItemIssue(item="cleanup", message=f"cleanup failed: {err}"))
        for step in self._status.steps:
            if step.state is StepState.succeeded and step.name.startswith("convert "):
                step.message = (step.message or "") + " (snapshot removed: the conversion did not complete)"
