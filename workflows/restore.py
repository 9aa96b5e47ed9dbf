"""The restore runbook as a durable workflow.

validate → check vault → discover target API → restore CRDs (wait established) → restore
namespaces → [copy snapshots across regions] → restore volumes (snapshot data sources, PVs, PVCs,
bind, file-level data written by the node workers) → config and RBAC → workloads → services and
ingresses → other resources → finish (temporaries, explanations)

With ECS snapshots on and a backup of another region, each disk snapshot the restore needs is copied
into this cluster's region first (in parallel, bounded), and the volumes restore from the copies;
a restore that is canceled or fails deletes the copies it made.

Each step is retried for transient faults; a step that still fails waits for the operator
(``retry``; ``skip`` for the per-phase steps, whose objects then count as failed; ``cancel``).
Objects never pass through here: activities stream them from the vault into the cluster and
write one outcome per object back to the vault.  Cancel and failure remove the temporary
snapshot objects and fill pods; restored objects stay (and the status says so).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from functools import partial
from typing import ClassVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from activities import ecs as ecs_acts
    from activities import node as node_acts
    from activities import restore as acts
    from kube.restore.order import Phase
    from schemas.ecs import MAX_LISTED, CopyPlan, CopyRequest, CopyResult
    from schemas.errors import BackupCenterError, ErrorInfo
    from schemas.restore import (
        ApplyRequest,
        ClaimsResult,
        FileTarget,
        GroupPlan,
        GroupResult,
        RestoreJob,
        Samples,
        SkipRequest,
        VolumeSourcesResult,
    )
    from schemas.settings import Settings
    from schemas.specs import JobKind, RestoreSpec
    from schemas.status import ItemIssue, JobStatus
    from workflows.job import JobWorkflow
    from workflows.node_work import write_volume_files
    from workflows.steps import QUICK, TRANSIENT, JobRunner, act, produced


STEP_VALIDATE = "validate"
STEP_VAULT = "check vault"
STEP_DISCOVER = "discover target API"
STEP_CRDS = "restore CRDs"
STEP_NAMESPACES = "restore namespaces"
STEP_COPY = "copy snapshots across regions"
STEP_VOLUMES = "restore volumes"
STEP_CONFIG = "restore config and RBAC"
STEP_WORKLOADS = "restore workloads"
STEP_NETWORK = "restore services and ingresses"
STEP_REST = "restore other resources"
STEP_FINISH = "finish"
# Runs started before skipped phases counted their objects replay without that activity.
SKIPPED_PHASE_PATCH = "skipped-phase-outcomes"

PHASE_STEPS: dict[Phase, str] = {
    Phase.crds: STEP_CRDS,
    Phase.namespaces: STEP_NAMESPACES,
    Phase.storage: STEP_VOLUMES,
    Phase.config: STEP_CONFIG,
    Phase.workloads: STEP_WORKLOADS,
    Phase.network: STEP_NETWORK,
    Phase.rest: STEP_REST,
}
# Counted in the status summary, by ItemStatus value.
OUTCOMES = ("created", "updated", "exists", "skipped", "failed")
CANCEL_NOTE = (
    "objects already created by this restore stay in the cluster (label "
    "backupcenter.io/restore={name}); its temporary VolumeSnapshots, contents and fill pods "
    "were removed"
)
# Copies heartbeat every second; a short timeout lets a cancel reach them soon (heartbeats are throttled
# to 80% of it) and a lost worker be noticed.
COPY_HEARTBEAT_TIMEOUT = timedelta(seconds=10)


@workflow.defn
class RestoreWorkflow(JobWorkflow[RestoreSpec]):
    kind: ClassVar[JobKind] = JobKind.restore
    slot_setting: ClassVar[str] = "restore_max_workers"

    def __init__(self) -> None:
        super().__init__()
        self._copying = False  # cross-region copies may exist: cancel and failure delete them

    @workflow.run
    async def run(self, spec: RestoreSpec) -> JobStatus:
        return await self.run_job(spec)

    def prepare(self, spec: RestoreSpec, settings: Settings) -> list[str | tuple[str, bool]]:
        self._status.summary.update({"backup": spec.backup, "vault": spec.vault})
        self._status.summary.update(dict.fromkeys((*OUTCOMES, "items"), 0))
        info = workflow.info()
        self._job = RestoreJob(spec=spec, uid=f"{info.workflow_id}/{info.run_id}", started_at=workflow.now())
        phases = [(step, True) for step in PHASE_STEPS.values()]
        return [STEP_VALIDATE, STEP_VAULT, STEP_DISCOVER, *phases, STEP_FINISH]

    async def runbook(self, spec: RestoreSpec, settings: Settings, runner: JobRunner) -> None:
        job = self._job
        plan = await runner.step(STEP_VALIDATE, lambda: act(acts.validate_restore, spec))
        if plan is not None:
            for warning in plan.warnings:
                runner.status.add_warning(ItemIssue(item="namespace_mapping", message=warning))
            runner.status.step(STEP_VALIDATE).message = (
                f"backup {spec.backup} of cluster {plan.source_cluster}: {plan.objects} objects in "
                f"{len(plan.namespaces)} namespaces"
            )
        await runner.step(
            STEP_VAULT, lambda: act(acts.check_restore_vault, job, summary=f"vault {spec.vault}")
        )
        found = produced(
            await runner.step(STEP_DISCOVER, lambda: act(acts.discover_target, job)), STEP_DISCOVER
        )
        runner.status.step(STEP_DISCOVER).message = (
            f"{found.served} resource versions served; {sum(len(g.resources) for g in found.groups)} "
            "resources to restore"
        )
        groups = {Phase(g.phase): g for g in found.groups}
        for phase, step in PHASE_STEPS.items():
            group = groups.get(phase)
            if group is None:
                runner.skip_step(step, "nothing to restore")
            elif phase is Phase.storage:
                await self._copy_snapshots(job, settings)
                await self._volumes(job, settings, group)
            else:
                result = await runner.step(
                    step,
                    partial(self._apply, job, settings, group),
                    on_timeout=self._timeout_error(settings, group),
                    item=self._item(group),
                )
                if result is not None:
                    self._record(step, result)
                else:  # skipped by the operator: its objects count as failed
                    await self._skipped(job, step, group)
        await self._finish(job, settings)

    # --- phases: each is one step, so `retry` runs all its (idempotent) activities again --------
    async def _apply(self, job: RestoreJob, settings: Settings, group: GroupPlan) -> GroupResult:
        result: GroupResult = await workflow.execute_activity(
            acts.apply_group,
            ApplyRequest(job=job, group=group),
            start_to_close_timeout=timedelta(minutes=settings.export_timeout_minutes),
            heartbeat_timeout=settings.heartbeat_timeout,
            retry_policy=RetryPolicy(maximum_attempts=3, initial_interval=timedelta(seconds=2)),
            summary=f"restore {', '.join(group.resources[:4])}{' …' if len(group.resources) > 4 else ''}",
        )
        if Phase(group.phase) is Phase.crds:
            # Custom resources are served once their CRDs are established; later phases choose
            # their versions from the discovery this takes afterwards.
            await act(
                acts.wait_crds_established,
                job,
                summary="wait CRDs established, discover again",
                timeout=acts.CRD_ESTABLISHED_TIMEOUT + QUICK,
            )
        return result

    async def _volume_work(
        self, job: RestoreJob, settings: Settings, group: GroupPlan
    ) -> tuple[VolumeSourcesResult, GroupResult, ClaimsResult, int]:
        sources: VolumeSourcesResult = await act(
            acts.prepare_volume_sources, job, summary="plan PVC data, create snapshot data sources"
        )
        if sources.from_snapshot:
            ready = settings.snapshot_ready_timeout
            await act(
                acts.wait_volume_sources_ready,
                acts.WaitRequest(job=job, timeout_seconds=ready.total_seconds()),
                summary=f"wait {sources.from_snapshot} VolumeSnapshots ready (timeout {ready})",
                timeout=ready + QUICK,
                non_retryable=["RestoreSnapshotNotReady"],
            )
        result = await self._apply(job, settings, group)
        bind = settings.pvc_bind_timeout
        claims: ClaimsResult = await act(
            acts.wait_claims_bound,
            acts.WaitRequest(job=job, timeout_seconds=bind.total_seconds()),
            summary=f"wait restored PVCs bound (timeout {bind})",
            timeout=bind + QUICK,
            non_retryable=["ResourceTimeout"],
        )
        filled = await self._fill_volumes(job, settings) if sources.file_level else 0
        return sources, result, claims, filled

    async def _fill_volumes(self, job: RestoreJob, settings: Settings) -> int:
        """File-backed PVCs: a fill pod mounts each, the node worker of its node writes the backed-up
        files into the mount, then the fill pods go — before the workloads are restored."""
        volumes = await act(acts.start_file_restores, job, summary="create fill pods")
        if not volumes:
            return 0
        bind = settings.pvc_bind_timeout
        targets: list[FileTarget] = await act(
            acts.wait_file_pods,
            acts.FillRequest(volumes=volumes, timeout_seconds=bind.total_seconds()),
            summary=f"wait {len(volumes)} fill pods running (timeout {bind})",
            timeout=bind + QUICK,
            non_retryable=["ResourceTimeout"],
        )
        by_node: dict[str, list[FileTarget]] = {}
        for target in targets:
            by_node.setdefault(target.node, []).append(target)

        async def fill_node(items: list[FileTarget]) -> None:
            for target in items:  # one volume of this restore per node at a time
                await self._fill(job, settings, target)

        await asyncio.gather(*(fill_node(items) for items in by_node.values()))
        await act(acts.remove_file_pods, job, summary="remove fill pods")
        return len(targets)

    async def _fill(self, job: RestoreJob, settings: Settings, target: FileTarget) -> None:
        volume = f"{target.namespace}/{target.pvc}"
        request = node_acts.VolumeRestoreRequest(
            vault=job.spec.vault,
            snapshot_id=target.snapshot_id,
            target_pod_uid=target.pod_uid,
            plugin_dir=target.plugin_dir,
            pv=target.pv,
            volume=volume,
        )
        await write_volume_files(settings, target.node, request)

    # --- cross-region: ECS disk snapshots copied into this cluster's region ---------------------
    async def _copy_snapshots(self, job: RestoreJob, settings: Settings) -> None:
        """Copy the disk snapshots of a backup of another region into this one, before the volumes
        step creates its snapshot contents (which then name the copies)."""
        runner = self.runner
        assert runner is not None
        if not settings.enable_ecs_snapshot or not job.spec.volume_data:
            return
        runner.add_step(STEP_COPY, before=STEP_VOLUMES)
        done = await runner.step(STEP_COPY, partial(self._plan_and_copy, job, settings))
        if done is None:  # not skippable, so only a bug gets here
            return
        plan, copied = done
        step = runner.status.step(STEP_COPY)
        if not copied:
            if plan.cross_region:
                why = f"no disk snapshot to copy into {plan.target_region}"
            elif plan.source_region:
                why = f"the backup's snapshots are in this cluster's region {plan.target_region}"
            else:
                why = "the backup holds no ECS snapshots"
            runner.skip_step(STEP_COPY, why)
            runner.publish()
            return
        ids = [c.copy_id for c in copied]
        more = f" and {len(ids) - MAX_LISTED} more" if len(ids) > MAX_LISTED else ""
        slowest = max(c.seconds for c in copied)
        step.message = (
            f"{len(copied)} snapshots copied from {plan.source_region} to {plan.target_region} "
            f"(at most {settings.ecs_copy_parallelism} at a time; slowest {slowest:.1f}s); the copies "
            f"stay with the restore: `backupctl delete restore {job.spec.name}` deletes them"
        )
        runner.status.summary["ecs_copies"] = (
            f"{len(ids)} in {plan.target_region}: {', '.join(ids[:MAX_LISTED])}{more}"
        )
        runner.publish()

    async def _plan_and_copy(self, job: RestoreJob, settings: Settings) -> tuple[CopyPlan, list[CopyResult]]:
        """One step, so the operator's retry plans again (a fixed selection) and copies what is missing."""
        plan: CopyPlan = await act(
            ecs_acts.plan_snapshot_copies, job, summary="find disk snapshots of another region"
        )
        if not plan.cross_region or not plan.items:
            return plan, []
        self._copying = True
        return plan, await self._copy_all(job, settings, plan)

    async def _copy_all(self, job: RestoreJob, settings: Settings, plan: CopyPlan) -> list[CopyResult]:
        """Copy every planned snapshot, at most ``ecs_copy_parallelism`` at a time.  A failed copy
        cancels the others (and waits until they stopped) so the operator's retry starts clean."""
        runner = self.runner
        assert runner is not None
        pending = list(plan.items)
        done: list[CopyResult] = []
        timeout = settings.ecs_copy_timeout

        async def worker() -> None:
            while pending:
                item = pending.pop(0)
                request = CopyRequest(
                    restore=job.spec.name,
                    uid=job.uid,
                    vault=job.spec.vault,
                    target_region=plan.target_region,
                    item=item,
                    timeout_seconds=timeout.total_seconds(),
                )
                result: CopyResult = await workflow.execute_activity(
                    ecs_acts.copy_snapshot_to_region,
                    request,
                    start_to_close_timeout=timeout + QUICK,
                    heartbeat_timeout=min(settings.heartbeat_timeout, COPY_HEARTBEAT_TIMEOUT),
                    retry_policy=RetryPolicy(
                        initial_interval=TRANSIENT.initial_interval,
                        backoff_coefficient=2.0,
                        maximum_interval=TRANSIENT.maximum_interval,
                        maximum_attempts=5,
                    ),
                    # Cleanup after a cancel must see every copy a running activity may still request.
                    cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
                    summary=f"copy ECS snapshot {item.snapshot} of {item.key}: "
                    f"{item.region} → {plan.target_region}",
                )
                done.append(result)
                runner.set_progress(STEP_COPY, len(done), len(plan.items), "snapshots")

        workers = [
            asyncio.ensure_future(worker())
            for _ in range(min(settings.ecs_copy_parallelism, len(plan.items)))
        ]
        try:
            await asyncio.gather(*workers)
        except BaseException:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            raise
        return done

    async def _volumes(self, job: RestoreJob, settings: Settings, group: GroupPlan) -> None:
        runner = self.runner
        assert runner is not None
        done = await runner.step(
            STEP_VOLUMES, partial(self._volume_work, job, settings, group), item=self._item(group)
        )
        if done is None:
            await self._skipped(job, STEP_VOLUMES, group)
            return
        sources, result, claims, filled = done
        self._record(STEP_VOLUMES, result)
        step = runner.status.step(STEP_VOLUMES)
        step.message = "; ".join(
            [
                step.message or "",
                f"{sources.from_snapshot} PVCs from snapshots ({sources.from_conversion} converted), "
                f"{filled} filled by node workers, "
                f"{sources.without_data} without data",
                f"{claims.bound} bound, {claims.waiting_total} wait for their first consumer",
            ]
        )

    async def _skipped(self, job: RestoreJob, step: str, group: GroupPlan) -> None:
        """A skipped phase: each of its objects not restored counts as failed, with the step's error
        (summary, `describe --missing`), instead of vanishing from the numbers."""
        if not workflow.patched(SKIPPED_PHASE_PATCH):
            return
        error = self._status.step(step).error
        result: GroupResult = await act(
            acts.skip_group, SkipRequest(job=job, group=group, error=error),
            summary="count the skipped phase's objects as failed",
        )
        self._record(step, result)
        self._status.step(step).message = f"skipped by the operator: {self._status.step(step).message}"

    def _record(self, step: str, result: GroupResult) -> None:
        counts, status = result.counts, self._status
        for name in OUTCOMES:
            status.summary[name] = int(status.summary.get(name, 0)) + counts.get(name, 0)
        self._samples(result.samples)
        total = sum(counts.values())
        if self.runner is not None:
            self.runner.set_progress(step, total, total, "objects")
        # The words of the summary (created, updated, exists, skipped, failed), which add up to
        # "items": one vocabulary in the CLI, describe and the Web UI.
        status.summary["items"] = int(status.summary.get("items", 0)) + total
        parts = [f"{counts[name]} {name}" for name in OUTCOMES if counts.get(name)]
        status.step(step).message = ", ".join(parts) or "nothing selected"

    @staticmethod
    def _item(group: GroupPlan) -> str:
        return f"phase {Phase(group.phase).name}: {', '.join(group.resources)}"

    @staticmethod
    def _timeout_error(settings: Settings, group: GroupPlan) -> ErrorInfo:
        resources, minutes = ", ".join(group.resources), settings.export_timeout_minutes
        return BackupCenterError("RestoreProcessTimeout", resources=resources, minutes=minutes).info()

    async def _finish(self, job: RestoreJob, settings: Settings) -> None:
        runner = self.runner
        assert runner is not None
        bind = settings.pvc_bind_timeout
        result = await runner.step(
            STEP_FINISH,
            lambda: act(
                acts.finish_restore,
                acts.WaitRequest(job=job, timeout_seconds=bind.total_seconds()),
                summary="remove temporaries, explain what is missing",
                timeout=bind + QUICK,
            ),
        )
        if result is None:
            return
        self._samples(result.samples)
        for reason, count in result.missing.items():
            runner.status.summary[f"missing ({reason})"] = count
        runner.status.summary["temporaries_removed"] = result.temporaries_removed
        missing = sum(result.missing.values())
        runner.status.step(STEP_FINISH).message = (
            f"{result.temporaries_removed} temporaries removed; {missing} explanations of missing objects "
            "(`backupctl restore describe --missing`)"
        )

    # --- helpers ------------------------------------------------------------------------------
    def _samples(self, samples: Samples) -> None:
        for issue in samples.errors:
            self._status.add_item_error(issue)
        self._status.item_errors_total += samples.errors_total - len(samples.errors)
        for issue in samples.warnings:
            self._status.add_warning(issue)
        self._status.warnings_total += samples.warnings_total - len(samples.warnings)

    async def cleanup(self, *, canceled: bool, error: ErrorInfo | None) -> None:
        job = self._job
        try:
            result = await act(
                acts.cleanup_restore, job, summary="remove temporary VolumeSnapshots, contents and fill pods"
            )
            self._status.summary["temporaries_removed"] = result.temporaries_removed
            note = CANCEL_NOTE.format(name=job.spec.name)
            self._status.add_warning(ItemIssue(item="restore", message=note))
        except Exception as err:  # cleanup failure must not hide the job's outcome
            self._status.add_warning(ItemIssue(item="cleanup", message=f"cleanup failed: {err}"))
        if self._copying:
            try:
                deleted = await act(
                    ecs_acts.delete_restore_copies,
                    job,
                    summary="delete this restore's cross-region ECS snapshot copies",
                )
                self._status.summary["ecs_copies_deleted"] = deleted.deleted
            except Exception as err:
                self._status.add_warning(
                    ItemIssue(item="cleanup", message=f"ECS snapshot copies not deleted: {err}")
                )
