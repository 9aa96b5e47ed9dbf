"""The backup runbook as a durable workflow.

validate → check vault → resolve namespaces → discover API resources → export resources →
snapshot volumes → wait snapshots ready → file-level volumes → commit

Each step is retried for transient faults; a step that still fails waits for the operator
(``retry``, ``skip`` for per-volume steps, ``cancel``).  Cancel and failure clean up what the
run created: its VolumeSnapshots and uncommitted vault objects.  Only counts and names pass
through the workflow; manifests and data go from the activities straight to the vault.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import ClassVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, TimeoutError, TimeoutType

with workflow.unsafe.imports_passed_through():
    from activities import backup as acts
    from activities import ecs as ecs_acts
    from activities import node as node_acts
    from activities.errors import to_application_error
    from datamover.models import SnapshotSummary
    from schemas.backup import ExportSummary, SnapshotState, VolumeRecords
    from schemas.ecs import MAX_LISTED, RecordSnapshotsRequest
    from schemas.errors import BackupCenterError, ErrorInfo
    from schemas.placement import Placement, explain, place
    from schemas.settings import Settings
    from schemas.specs import BackupSpec, JobKind
    from schemas.status import ItemIssue, JobStatus, StepState
    from schemas.task_queues import node_queue as node_queue_name
    from schemas.volumes import VolumeMethod, VolumePlan
    from workflows.job import JobWorkflow
    from workflows.steps import QUICK, JobRunner, act, produced


STEP_VALIDATE = "validate"
STEP_VAULT = "check vault"
STEP_NAMESPACES = "resolve namespaces"
STEP_DISCOVER = "discover API resources"
STEP_EXPORT = "export resources"
STEP_SNAPSHOT = "snapshot volumes"
STEP_WAIT = "wait snapshots ready"
STEP_FILES = "file-level volumes"
STEP_COMMIT = "commit"
# Runs started before backups owned their snapshots replay without the ownership step.
OWNERSHIP_PATCH = "snapshot-ownership"


@workflow.defn
class BackupWorkflow(JobWorkflow[BackupSpec]):
    kind: ClassVar[JobKind] = JobKind.backup
    slot_setting: ClassVar[str] = "backup_max_workers"

    @workflow.run
    async def run(self, spec: BackupSpec) -> JobStatus:
        return await self.run_job(spec)

    def prepare(self, spec: BackupSpec, settings: Settings) -> list[str]:
        self._spec = spec
        self._uid = workflow.info().workflow_id + "/" + workflow.info().run_id
        self._namespaces: list[str] = []
        return [
            STEP_VALIDATE,
            STEP_VAULT,
            STEP_NAMESPACES,
            STEP_DISCOVER,
            STEP_EXPORT,
            STEP_SNAPSHOT,
            STEP_WAIT,
            STEP_FILES,
            STEP_COMMIT,
        ]

    async def runbook(self, spec: BackupSpec, settings: Settings, runner: JobRunner) -> None:
        uid, namespaces = self._uid, self._namespaces
        await runner.step(STEP_VALIDATE, lambda: act(acts.validate_backup, spec))
        await runner.step(
            STEP_VAULT, lambda: act(acts.check_vault, spec, uid, summary=f"vault {spec.vault}")
        )
        found = await runner.step(STEP_NAMESPACES, lambda: act(acts.resolve_namespaces, spec))
        namespaces.extend(found or [])
        runner.status.step(STEP_NAMESPACES).message = ", ".join(namespaces)

        types = await runner.step(STEP_DISCOVER, lambda: act(acts.discover_resources, spec))
        runner.status.step(STEP_DISCOVER).message = f"{types} resource versions served"

        export_timeout = timedelta(minutes=settings.export_timeout_minutes)
        summary: ExportSummary | None = await runner.step(
            STEP_EXPORT,
            lambda: workflow.execute_activity(
                acts.export_resources,
                args=[spec, namespaces],
                start_to_close_timeout=export_timeout,
                heartbeat_timeout=settings.heartbeat_timeout,
                retry_policy=RetryPolicy(maximum_attempts=3, initial_interval=timedelta(seconds=2)),
                summary=f"export {len(namespaces)} namespaces to vault {spec.vault} "
                f"(timeout {settings.export_timeout_minutes}m)",
            ),
            on_timeout=BackupCenterError(
                "BackupProcessTimeout", minutes=settings.export_timeout_minutes
            ).info(),
        )
        summary = produced(summary, STEP_EXPORT)
        runner.status.step(STEP_EXPORT).message = (
            f"{summary.objects} objects ({summary.versions_captured} with every served version), "
            f"{summary.bytes} bytes"
        )
        runner.status.summary.update({"objects": summary.objects, "export_bytes": summary.bytes})

        volume_records = VolumeRecords()
        if spec.volume_data:
            await self._volumes(spec, settings, runner, namespaces, volume_records, uid)
        else:
            for step in (STEP_SNAPSHOT, STEP_WAIT, STEP_FILES):
                runner.skip_step(step, "volume data not requested")

        commit = acts.CommitInput(
            spec=spec,
            uid=uid,
            started_at=self._status.started_at or workflow.now(),
            namespaces=namespaces,
            export=summary,
            volumes=volume_records,
            item_errors=self._status.item_errors_total,
            partially_failed=self._status.item_errors_total > 0,
        )
        await runner.step(
            STEP_COMMIT, lambda: act(acts.commit_backup, commit, summary="write backup.json")
        )

    async def _volumes(
        self,
        spec: BackupSpec,
        settings: Settings,
        runner: JobRunner,
        namespaces: list[str],
        records: VolumeRecords,
        uid: str,
    ) -> None:
        inventory = await runner.step(STEP_SNAPSHOT, lambda: act(acts.plan_volumes, spec, namespaces))
        if inventory is None:
            return
        for use in inventory.host_paths:
            runner.status.add_warning(
                _issue(
                    f"pods/{use.namespace}/{use.pod}",
                    f"volume {use.volume} is a HostPath volume: "
                    "HostPath volumes are not under the kubelet root and are not backed up",
                )
            )
        to_snapshot = [v for v in inventory.volumes if v.method is VolumeMethod.snapshot]
        file_level = [v for v in inventory.volumes if v.method is VolumeMethod.files]
        for v in inventory.volumes:
            if v.method is VolumeMethod.skipped:
                records.skipped[v.ref] = v.reason
                runner.status.add_warning(_issue(f"persistentvolumeclaims/{v.ref}", v.reason))

        if settings.enable_ecs_snapshot and inventory.volumes:
            # Recorded with the volumes: a restore in another region copies the disk snapshots there
            # (and refuses file-level volumes, which cannot cross regions).
            region = await runner.step(
                STEP_SNAPSHOT, lambda: act(ecs_acts.ecs_cluster_region, summary="this cluster's region")
            )
            records.region = region or ""

        # Snapshots are created in batches (setting snapshot_batch_size) and waited for.
        states: list[SnapshotState] = []
        batch_size = settings.snapshot_batch_size
        step = runner.status.step(STEP_SNAPSHOT)
        step.state = step.state.running
        for start in range(0, len(to_snapshot), batch_size):
            batch = to_snapshot[start : start + batch_size]
            created = await runner.step(
                STEP_SNAPSHOT,
                lambda b=batch: act(
                    acts.create_snapshots,
                    spec.name,
                    b,  # type: ignore[misc]
                    uid,
                    summary=f"create {len(b)} VolumeSnapshots",
                ),
            )
            runner.set_progress(STEP_SNAPSHOT, start + len(batch), len(to_snapshot), "volumes")
            timeout = settings.snapshot_ready_timeout
            request = acts.WaitSnapshots(states=created or [], timeout_seconds=timeout.total_seconds())
            names = ", ".join(f"{s.namespace}/{s.snapshot}" for s in request.states[:3])
            ready = await runner.step(
                STEP_WAIT, lambda r=request, n=names, t=timeout: self._wait_and_own(  # type: ignore[misc]
                    spec.name, uid, r, n, t, settings
                ),
            )
            if settings.enable_ecs_snapshot and ready:
                # Disk snapshots are ECS snapshots: record id, region and size, and give them the
                # backup's retention (blocking SDK: a sync activity).
                record = RecordSnapshotsRequest(
                    backup=spec.name, ttl_seconds=spec.ttl.total_seconds(), states=ready
                )
                ready = await runner.step(
                    STEP_WAIT,
                    lambda r=record: act(  # type: ignore[misc]
                        ecs_acts.record_ecs_snapshots,
                        r,
                        summary=f"look up {len(r.states)} ECS snapshots, set their retention days",
                    ),
                ) or ready
            states += ready or []
            runner.set_progress(STEP_WAIT, len(states), len(to_snapshot), "snapshots")
        # Done with snapshots: the steps say so (they stay Running or Pending otherwise, and a
        # finished job must show every step Succeeded, Skipped or Failed).
        snapshot_step = runner.status.step(STEP_SNAPSHOT)
        snapshot_step.state = StepState.succeeded
        snapshot_step.finished_at = workflow.now()
        snapshot_step.message = f"{len(to_snapshot)} snapshotted, {len(file_level)} file-level"
        if not to_snapshot:
            runner.skip_step(STEP_WAIT, "no disk volumes to snapshot")
        runner.publish()
        records.snapshots = states
        ecs_ids = [s.ecs_id for s in states if s.ecs_id]
        if ecs_ids:
            more = f" and {len(ecs_ids) - MAX_LISTED} more" if len(ecs_ids) > MAX_LISTED else ""
            days = sorted({s.retention_days for s in states if s.ecs_id and s.retention_days})
            runner.status.summary["ecs_snapshots"] = (
                f"{len(ecs_ids)} in {records.region}: {', '.join(ecs_ids[:MAX_LISTED])}{more}"
            )
            runner.status.summary["ecs_retention_days"] = ", ".join(str(d) for d in days) or "none"
        if states:
            handles = ", ".join(f"{s.pvc}={s.handle}" for s in states[:5])
            more = f" and {len(states) - 5} more" if len(states) > 5 else ""
            runner.status.step(STEP_WAIT).message = f"snapshot handles: {handles}{more}"

        if file_level:
            await self._file_volumes(spec, settings, runner, file_level, records)
        else:
            runner.skip_step(STEP_FILES, "no file-level volumes")

    async def _file_volumes(
        self,
        spec: BackupSpec,
        settings: Settings,
        runner: JobRunner,
        volumes: list[VolumePlan],
        records: VolumeRecords,
    ) -> None:
        """Copy each volume through a node worker where it is mounted: nodes in parallel, one
        volume of this backup per node at a time."""
        step = runner.status.step(STEP_FILES)
        step.state = step.state.running
        step.started_at = workflow.now()
        runner.publish()
        labels = await act(acts.list_nodes)
        parents = await act(acts.previous_file_snapshots, spec.vault, [v.ref for v in volumes])
        for v in volumes:
            runner.add_step(f"volume {v.ref}", skippable=True, before=STEP_COMMIT)
        # Unmounted volumes (data protection) get a temporary pod on a node the policy allows.
        reachable: list[VolumePlan] = []
        for v in volumes:
            if not v.mounts:
                mount = await runner.step(
                    f"volume {v.ref}",
                    lambda v=v: act(  # type: ignore[misc]
                        acts.mount_unmounted_volume, spec.name, v, summary=f"temporary pod mounting {v.ref}"
                    ),
                    item=f"persistentvolumeclaims/{v.ref}",
                )
                if mount is None:
                    continue  # skipped by the operator: counted as a failed item
                v = v.model_copy(update={"mounts": [mount]})
            reachable.append(v)
        temporary = any(m.pod.startswith("bc-mount-") for v in reachable for m in v.mounts)
        volumes = reachable
        placements = {v.ref: place(v, labels, settings) for v in volumes}
        by_node: dict[str, list[VolumePlan]] = {}
        for v in volumes:
            first = placements[v.ref].nodes[0] if placements[v.ref].nodes else ""
            by_node.setdefault(first, []).append(v)
        uid = workflow.info().workflow_id + "/" + workflow.info().run_id
        done = 0

        async def copy(v: VolumePlan) -> None:
            nonlocal done
            copied = await runner.step(
                f"volume {v.ref}",
                lambda: self._copy_on_nodes(spec, settings, v, placements[v.ref], parents.get(v.ref), uid),
                item=f"persistentvolumeclaims/{v.ref}",
            )
            if copied is not None:
                summary, node = copied
                records.files[v.ref] = summary.snapshot_id
                runner.status.step(
                    f"volume {v.ref}"
                ).message = (
                    f"on node {node}: {summary.files} files, {summary.bytes} bytes, {summary.new_bytes} new"
                )
                if summary.partial:
                    paths = ", ".join(p.path for p in summary.errors.paths[:5])
                    runner.status.add_item_error(
                        ItemIssue(
                            item=f"persistentvolumeclaims/{v.ref}",
                            code="VolumePartiallyBackedUp",
                            message=f"{summary.errors.count} files changed, vanished or were unreadable "
                            f"during backup: {paths}",
                        )
                    )
            done += 1
            runner.set_progress(STEP_FILES, done, len(volumes), "volumes")

        async def node_queue(items: list[VolumePlan]) -> None:
            for v in items:  # one volume job of this backup per node at a time
                await copy(v)

        try:
            await asyncio.gather(*(node_queue(items) for items in by_node.values()))
        finally:
            if temporary:
                await act(acts.remove_temporary_pods, spec.name, sorted({v.namespace for v in volumes}))
        step.state = step.state.succeeded
        step.finished_at = workflow.now()
        step.message = f"{len(records.files)} of {len(volumes)} volumes copied"
        runner.publish()

    async def _copy_on_nodes(
        self,
        spec: BackupSpec,
        settings: Settings,
        v: VolumePlan,
        placement: Placement,
        parent: str | None,
        uid: str,
    ) -> tuple[SnapshotSummary, str]:
        if not placement.nodes:
            raise to_application_error(
                BackupCenterError("NoEligibleNode", volume=v.ref, reason=explain(v, placement))
            )
        last_error: BaseException | None = None
        for node in placement.nodes:
            mount = next(m for m in v.mounts if m.node == node)
            request = node_acts.VolumeFilesRequest(
                backup=spec.name, vault=spec.vault, plan=v, mount=mount, parent_snapshot=parent, run_uid=uid
            )
            try:
                summary: SnapshotSummary = await workflow.execute_activity(
                    node_acts.backup_volume_files,
                    request,
                    task_queue=node_queue_name(settings, node),
                    # A node whose worker is missing or broken does not take the task: try the next.
                    schedule_to_start_timeout=settings.node_pickup_timeout,
                    start_to_close_timeout=timedelta(hours=12),
                    heartbeat_timeout=settings.heartbeat_timeout,
                    retry_policy=RetryPolicy(maximum_attempts=3, initial_interval=timedelta(seconds=2)),
                    summary=f"copy files of {v.ref} on node {node}",
                )
                return summary, node
            except ActivityError as err:
                if isinstance(err.cause, TimeoutError) and err.cause.type is TimeoutType.SCHEDULE_TO_START:
                    last_error = err
                    continue
                raise
        assert last_error is not None
        raise to_application_error(
            BackupCenterError(
                "NodeAgentMissing",
                volume=v.ref,
                node=placement.nodes[-1],
                timeout=str(settings.node_pickup_timeout),
            )
        )

    async def _wait_and_own(
        self,
        backup: str,
        uid: str,
        request: acts.WaitSnapshots,
        names: str,
        timeout: timedelta,
        settings: Settings,
    ) -> list[SnapshotState]:
        """Wait for the batch's snapshots, then take them over (one step: `retry` runs both, each
        idempotent)."""
        ready: list[SnapshotState] = await workflow.execute_activity(
            acts.wait_snapshots_ready,
            request,
            start_to_close_timeout=timeout + timedelta(minutes=1),
            heartbeat_timeout=settings.heartbeat_timeout,
            # The activity owns its deadline; retries only cover a lost worker.
            retry_policy=RetryPolicy(
                maximum_attempts=3, non_retryable_error_types=["SnapshotNotReady", "SnapshotFailed"]
            ),
            summary=f"wait VolumeSnapshot {names} ready (timeout {timeout})",
        )
        if not ready or not workflow.patched(OWNERSHIP_PATCH):
            return ready
        # The backup takes the data over: deleting the application namespace (or its
        # VolumeSnapshots) must never delete a backup's snapshots.
        own = acts.OwnSnapshots(backup=backup, uid=uid, states=ready)
        owned: list[SnapshotState] = await act(
            acts.own_snapshots,
            own,
            summary=f"take over {len(ready)} snapshots (contents Retain, VolumeSnapshots go)",
        )
        return owned

    async def cleanup(self, *, canceled: bool, error: ErrorInfo | None) -> None:
        request = acts.CleanupInput(
            spec=self._spec,
            uid=self._uid,
            namespaces=self._namespaces,
            canceled=canceled,
            error_code=error.code if error else None,
            error_message=error.message if error else None,
        )
        try:
            removed = await act(
                acts.cleanup_backup,
                request,
                # Releasing snapshots the run took over waits for the driver (bounded, heartbeating).
                timeout=QUICK * 3,
                summary="remove this run's snapshots and uncommitted vault objects",
            )
            self._status.summary["snapshots_removed"] = removed
        except Exception as err:
            self._status.add_warning(_issue("cleanup", f"cleanup failed: {err}"))


def _issue(item: str, message: str) -> ItemIssue:
    return ItemIssue(item=item, message=message)
