"""Activities of the ECS snapshot steps: record a backup's snapshots, delete them, copy them across regions.

All are synchronous: the aliyun SDK blocks (and backs off from throttling with sleeps), so they run on the
worker's thread pool like the Kubernetes and vault activities.  Each is idempotent: recording sets the
same retention again, deleting treats "already gone" as done, and a copy is requested with a client token
derived from the restore run, so a retried activity finds the copy it started instead of a second one.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from temporalio import activity
from temporalio.exceptions import CancelledError

from activities import waiting
from activities.context import WorkerContext, current
from activities.errors import product_errors
from alicloud import snapshots
from alicloud.ecs import EcsClient
from kube.convert import claim_class
from kube.export import read_bundle
from kube.restore.records import RestoreFolder
from kube.restore.run import Plan
from kube.restore.selection import bundle_resource, item_selected
from schemas.backup import SnapshotState
from schemas.ecs import CopyPlan, CopyRequest, CopyResult, EcsDeleteResult, RecordSnapshotsRequest
from schemas.restore import DeleteTarget, RestoreJob
from schemas.specs import JobKind
from vault import catalog, conversions

POLL_SECONDS = 1.0


def clients_by_region(ctx: WorkerContext) -> Callable[[str], EcsClient]:
    """ECS clients by region, made once per activity (credentials read once)."""
    made: dict[str, EcsClient] = {}
    kube, settings = ctx.kube(), ctx.settings

    def client_for(region: str) -> EcsClient:
        if region not in made:
            base = next(iter(made.values()), None)
            made[region] = base.for_region(region) if base else snapshots.client(kube, settings, region)
        return made[region]

    return client_for


# --- backup ----------------------------------------------------------------------------------
@activity.defn
@product_errors
def ecs_cluster_region() -> str:
    """This cluster's region: the setting, else its nodes' topology.kubernetes.io/region label."""
    ctx = current()
    return snapshots.cluster_region(ctx.kube(), ctx.settings.region)


@activity.defn
@product_errors
def record_ecs_snapshots(request: RecordSnapshotsRequest) -> list[SnapshotState]:
    """Look the batch's disk snapshots up in ECS (id, region, size) and give them the backup's retention."""
    ctx = current()
    kube = ctx.kube()
    region = snapshots.cluster_region(kube, ctx.settings.region)
    ecs = snapshots.client(kube, ctx.settings, region)
    ttl = timedelta(seconds=request.ttl_seconds) if request.ttl_seconds > 0 else None
    return snapshots.record_snapshots(ecs, kube, request.states, ttl)


# --- delete ----------------------------------------------------------------------------------
@activity.defn
@product_errors
def delete_ecs_snapshots(target: DeleteTarget) -> EcsDeleteResult:
    """A backup's ECS snapshots (from its vault records), or the cross-region copies a restore made."""
    ctx = current()
    if target.vault is None or target.spec.target_kind not in (JobKind.backup, JobKind.restore):
        return EcsDeleteResult()
    store = ctx.store(target.vault)
    if target.spec.target_kind is JobKind.restore:
        folder = RestoreFolder.of(store, ctx.settings.cluster_id, target.spec.target)
        return snapshots.delete_copies(clients_by_region(ctx), folder)
    # Damaged records name no ECS snapshot: those of contents labelled with the backup are
    # released with them (delete cluster objects); the rest cannot be known.
    records = catalog.volume_records_if_readable(store, target.spec.target)
    if records is None:
        return EcsDeleteResult()
    return snapshots.delete_backup_snapshots(clients_by_region(ctx), records)


# --- cross-region restore ------------------------------------------------------------------
def _selected_claims(folder: RestoreFolder, job: RestoreJob) -> dict[str, str]:
    """"<ns>/<pvc>" (as backed up) -> its storage class, of the PVCs this restore selects."""
    plan = Plan(folder, job.spec)
    store = folder.store
    bundle = plan.source_bundle("persistentvolumeclaims")
    if bundle is None:
        return {}
    source = bundle_resource(bundle, plan.target)
    return {
        f"{o['metadata']['namespace']}/{o['metadata']['name']}": claim_class(o)
        for o in read_bundle(store, bundle.key)
        if item_selected(o, source, job.spec)
    }


@activity.defn
@product_errors
def plan_snapshot_copies(job: RestoreJob) -> CopyPlan:
    """Which disk snapshots must be copied into this cluster's region (none when the backup is of this
    region); refuses the restore when a selected volume's data cannot cross regions."""
    ctx = current()
    store = ctx.store(job.spec.vault)
    folder = RestoreFolder.of(store, ctx.settings.cluster_id, job.spec.name)
    records = catalog.volume_records(store, job.spec.backup)
    selected = _selected_claims(folder, job) if records is not None else {}
    if records is not None:
        # Volumes converted to the mapped class travel as the conversion's snapshots.
        records = conversions.records_with_conversions(
            records, selected, dict(job.spec.storage_class_mapping),
            conversions.converted_volumes(store, job.spec.backup))
    if records is None or not snapshots.source_region(records):
        return CopyPlan()  # no ECS snapshots, nothing regional: no need to know this cluster's region
    return snapshots.plan_copies(records, selected, snapshots.cluster_region(ctx.kube(), ctx.settings.region))


@activity.defn
@product_errors
def copy_snapshot_to_region(request: CopyRequest) -> CopyResult:
    """Copy one snapshot into the restore's region and wait until the copy is accomplished, heartbeating
    its progress in percent (alicloud.snapshots.copy_into_region)."""
    ctx = current()
    return snapshots.copy_into_region(
        clients_by_region(ctx),
        RestoreFolder.of(ctx.store(request.vault), ctx.settings.cluster_id, request.restore),
        request,
        deadline=waiting.deadline(timedelta(seconds=request.timeout_seconds)),
        progress=waiting.beat,
        pause=_pause,
        poll_seconds=POLL_SECONDS,
    )


def _pause(seconds: float) -> None:
    """Sleeps, but wakes at once when the restore is canceled (a heartbeat answer brings the request)."""
    activity.wait_for_cancelled_sync(seconds)
    if activity.is_cancelled():
        raise CancelledError("restore canceled")


@activity.defn
@product_errors
def delete_restore_copies(job: RestoreJob) -> EcsDeleteResult:
    """After a cancel or failure: delete the copies this restore made (they restore nothing now)."""
    ctx = current()
    store = ctx.store(job.spec.vault)
    return snapshots.delete_copies(
        clients_by_region(ctx), RestoreFolder.of(store, ctx.settings.cluster_id, job.spec.name)
    )


ACTIVITIES: list[Callable[..., Any]] = [
    ecs_cluster_region,
    record_ecs_snapshots,
    delete_ecs_snapshots,
    plan_snapshot_copies,
    copy_snapshot_to_region,
    delete_restore_copies,
]
