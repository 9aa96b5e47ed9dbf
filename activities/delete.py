"""Activities of delete requests: find the target, remove its cluster objects and vault data, free its name.

Every activity is idempotent: a delete that failed half way is retried, or run again as a new
delete request, and finishes the job.  The name of a job is its Temporal workflow id, so freeing
it means deleting that workflow execution (a Temporal client call, hence async activities with
the worker's client).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from temporalio import activity
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import DeleteWorkflowExecutionRequest
from temporalio.client import Client, WorkflowExecutionDescription, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

import datamover
from activities import search_attributes as sa
from activities.context import WorkerContext, current
from activities.errors import product_errors
from kube import convert as kconvert
from kube import snapshots
from kube.restore.records import RestoreFolder
from kube.restore.volumes import delete_temporaries
from kube.volumes import SNAPSHOT_API
from schemas.backup import SnapshotState
from schemas.convert import ConvertedVolume, ConvertRecord
from schemas.errors import BackupCenterError
from schemas.ids import job_id
from schemas.resources import OBJECT_NAMESPACE_MEMO
from schemas.restore import DeleteOutcome, DeleteTarget
from schemas.specs import DeleteSpec, JobKind
from schemas.vault import VaultBackup
from vault import catalog, conversions
from vault.store import ObjectStore

# Deleting an execution is asynchronous on the server: it waits for the history queues' ack levels,
# which servers persist every 30 s by default (history.transferProcessorUpdateAckInterval and
# visibilityProcessorUpdateAckInterval).  The name is free once the execution is gone.
NAME_FREE_TIMEOUT = timedelta(minutes=3)


async def _describe(client: Client, workflow_id: str) -> WorkflowExecutionDescription | None:
    try:
        return await client.get_workflow_handle(workflow_id).describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return None
        raise


def _find_backup(ctx: WorkerContext, spec: DeleteSpec) -> tuple[str | None, VaultBackup | None]:
    """(vault, the backup's records): in the named vault, or the first live vault holding it."""
    manager = ctx.vaults()
    names = [spec.vault] if spec.vault else [e.name for e in manager.list()]
    if spec.vault:
        manager.describe(spec.vault)  # NotFound names the vault
    for name in names:
        # Whatever of its records can be read: a damaged backup must still be deletable.
        found, _ = catalog.readable_parts(manager.store(name), spec.target)
        if found is not None:
            return name, found
    return spec.vault, None


def _find_conversion(ctx: WorkerContext, spec: DeleteSpec) -> tuple[str | None, ConvertRecord | None]:
    """(vault, the conversion's record): in the named vault, or the first live vault holding it."""
    manager = ctx.vaults()
    if spec.vault:
        manager.describe(spec.vault)  # NotFound names the vault
    for name in [spec.vault] if spec.vault else [e.name for e in manager.list()]:
        record = conversions.get_conversion(manager.store(name), spec.target)
        if record is not None:
            return name, record
    return spec.vault, None


@activity.defn
@product_errors
async def resolve_delete(spec: DeleteSpec) -> DeleteTarget:
    """What there is to delete, and whether it belongs to this cluster."""
    ctx = current()
    if spec.target_kind not in (JobKind.backup, JobKind.restore, JobKind.convert):
        raise BackupCenterError(
            "InvalidSpec",
            field="target_kind",
            reason=f"delete requests remove backups, restores and conversions, not {spec.target_kind}",
        ).as_final()
    description = await _describe(activity.client(), job_id(spec.target_kind.value, spec.target))
    running = description is not None and description.status == WorkflowExecutionStatus.RUNNING
    target = DeleteTarget(spec=spec, vault=spec.vault, has_execution=description is not None)
    if description is not None:
        target.object_namespace = await description.memo_value(OBJECT_NAMESPACE_MEMO, None, type_hint=str)
    if spec.target_kind is JobKind.restore:
        if description is None:
            raise BackupCenterError("NotFound", kind="restore", name=spec.target)
        target.local = True
        target.vault = spec.vault or description.typed_search_attributes.get(sa.VAULT) or None
    elif spec.target_kind is JobKind.convert:
        vault, record = await asyncio.to_thread(_find_conversion, ctx, spec)
        if record is None and description is None:
            raise BackupCenterError("NotFound", kind="conversion", name=spec.target)
        target.vault = vault or (description.typed_search_attributes.get(sa.VAULT) if description else None)
        target.in_vault = record is not None
        target.source_cluster = record.cluster_id if record is not None else ctx.settings.cluster_id
        target.local = target.source_cluster == ctx.settings.cluster_id
        if not target.local:
            raise BackupCenterError(
                "InvalidSpec",
                field="target",
                reason=f"conversion {spec.target} was made by cluster {target.source_cluster}, where its "
                "snapshots are: delete it from that cluster",
            ).as_final()
    else:
        vault, backup = await asyncio.to_thread(_find_backup, ctx, spec)
        target.vault = vault
        if backup is None and description is None:
            raise BackupCenterError("NotFound", kind="backup", name=spec.target)
        target.in_vault = backup is not None
        # A backup whose claim and record are both unreadable has no known source: this cluster
        # deletes it (what its VaultObjectCorrupt error advises).
        known = backup.source_cluster if backup is not None else None
        target.source_cluster = known or ctx.settings.cluster_id
        target.local = target.source_cluster == ctx.settings.cluster_id
    if running and target.local:
        raise BackupCenterError("JobStillRunning", kind=spec.target_kind.value, name=spec.target)
    return target


def _backup_snapshot_namespaces(ctx: WorkerContext, backup: str) -> list[str]:
    items, _ = ctx.kube().list(
        f"{SNAPSHOT_API}/volumesnapshots", labelSelector=f"{snapshots.BACKUP_LABEL}={backup}"
    )
    return sorted({item["metadata"]["namespace"] for item in items})


def _owned(volumes: list[SnapshotState] | list[ConvertedVolume]) -> list[snapshots.OwnedContent]:
    return [
        snapshots.OwnedContent(
            content=v.content,
            handle=v.handle,
            driver=v.driver,
            deletion_policy=v.deletion_policy or snapshots.DELETE,
            source_volume_mode=v.source_volume_mode,
            snapshot_class=v.snapshot_class,
        )
        for v in volumes
        if v.owned and v.handle
    ]


def _recorded_snapshots(ctx: WorkerContext, target: DeleteTarget) -> list[snapshots.OwnedContent]:
    """The snapshots a backup (with its conversions) or a conversion owns, from its vault records:
    they are released even when this cluster no longer has their contents."""
    if target.vault is None or not target.in_vault:
        return []
    store = ctx.store(target.vault)
    name = target.spec.target
    if target.spec.target_kind is JobKind.convert:
        record = conversions.get_conversion(store, name)
        return _owned(record.volumes) if record is not None else []
    # Damaged records name nothing: the contents labelled with the backup are still released.
    records = catalog.volume_records_if_readable(store, name)
    owned = _owned(records.snapshots) if records is not None else []
    for conversion in conversions.list_conversions(store, backup=name):
        owned += _owned(conversion.volumes)
    return owned


@activity.defn
@product_errors
def delete_cluster_objects(target: DeleteTarget) -> int:
    """A backup's (or conversion's) snapshots, or a restore's leftover temporary snapshot objects.
    Restored objects stay.

    Snapshots the backup owns (kube.snapshots.take_ownership) are released by the product: from the
    vault records and the contents labelled with the backup, honouring a Retain snapshot class.  The
    VolumeSnapshots of backups made before that are deleted, and their data follows by policy."""
    ctx = current()
    kube = ctx.kube()
    name = target.spec.target
    if target.spec.target_kind is JobKind.restore:
        return delete_temporaries(kube, name)
    if target.spec.target_kind is JobKind.convert:
        removed = kconvert.delete_temporaries(kube, name) + kconvert.delete_snapshots(kube, name)
        labels = {kconvert.CONVERT_LABEL: name}
    else:
        # Found by label in every namespace: a failed backup recorded no namespaces.
        removed = snapshots.delete_for_backup(kube, name, _backup_snapshot_namespaces(ctx, name))
        labels = {snapshots.BACKUP_LABEL: name}
    released = snapshots.release_labelled(
        kube,
        labels,
        product_namespace=ctx.settings.product_namespace,
        recorded=_recorded_snapshots(ctx, target),
        beat=activity.heartbeat,
    )
    activity.logger.info(
        "%s %s: %d contents removed, %d snapshots deleted, %d already gone, %d kept (Retain class)",
        target.spec.target_kind.value, name, released.contents_removed, released.deleted,
        released.already_gone, len(released.kept),
    )
    return removed + released.deleted + released.already_gone + len(released.kept)


def _collect_volume_data(ctx: WorkerContext, store: ObjectStore) -> None:
    """Remove the file-level volume data no backup refers to any more (data-mover gc: packs
    younger than pack_gc_grace stay, and a running backup's lock makes it wait for next time)."""
    live = catalog.live_file_snapshots(store)
    if live.unreadable:
        # What a damaged backup refers to is unknown: collect nothing rather than its data.
        activity.logger.warning(
            "volume data not collected: the records of %s are unreadable (delete those backups "
            "to collect their data)", ", ".join(live.unreadable)
        )
        return
    try:
        summary = datamover.gc(
            store,
            live.ids,
            grace_seconds=ctx.settings.pack_gc_grace.total_seconds(),
        )
    except datamover.DataMoverError as err:
        # The backup itself is deleted; leftover packs are collected by the next delete.
        activity.logger.warning("volume data not collected: %s", err)
        return
    activity.logger.info(
        "volume data collected: %d packs (%d bytes) and %d snapshots removed, "
        "%d packs in grace, blocked by %s",
        summary.packs_deleted,
        summary.bytes_deleted,
        summary.snapshots_deleted,
        summary.packs_in_grace,
        summary.blocked_by or "nothing",
    )


@activity.defn
@product_errors
def delete_vault_data(target: DeleteTarget) -> DeleteOutcome:
    """The source cluster removes a backup's records and data; any other cluster only marks it
    deleted.  A restore's working data (outcomes, explanations) is removed."""
    ctx = current()
    if target.vault is None:
        return DeleteOutcome.absent
    store = ctx.store(target.vault)
    if target.spec.target_kind is JobKind.restore:
        removed = RestoreFolder.of(store, ctx.settings.cluster_id, target.spec.target).delete()
        return DeleteOutcome.deleted if removed else DeleteOutcome.absent
    if target.spec.target_kind is JobKind.convert:
        gone = conversions.delete_conversion(store, target.spec.target)
        return DeleteOutcome.deleted if gone else DeleteOutcome.absent
    backup, corrupt = catalog.readable_parts(store, target.spec.target)
    if backup is None:
        return DeleteOutcome.absent
    if corrupt:
        activity.logger.warning("deleting backup %s with unreadable records: %s", backup.name,
                                ", ".join(corrupt))
    if target.local:
        # Its conversions go with it (their snapshots carry the backup's label and went with
        # its VolumeSnapshots in the previous step).
        for record in conversions.list_conversions(store, backup=backup.name):
            conversions.delete_conversion(store, record.name)
        catalog.delete_backup_records(store, backup.name)
        _collect_volume_data(ctx, store)
        return DeleteOutcome.deleted
    catalog.mark_deleted(
        store,
        backup.name,
        by_cluster=ctx.settings.cluster_id,
        reason=f"delete request {target.spec.name}",
    )
    return DeleteOutcome.marked


@activity.defn
@product_errors
async def free_job_name(kind: str, name: str) -> bool:
    """Delete the job's workflow execution and wait until the server forgot it; False if it was gone."""
    client = activity.client()
    workflow_id = job_id(kind, name)
    if await _describe(client, workflow_id) is None:
        return False
    try:
        await client.workflow_service.delete_workflow_execution(
            DeleteWorkflowExecutionRequest(
                namespace=client.namespace, workflow_execution=WorkflowExecution(workflow_id=workflow_id)
            )
        )
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            raise
    loop = asyncio.get_running_loop()
    deadline = loop.time() + NAME_FREE_TIMEOUT.total_seconds()
    while await _describe(client, workflow_id) is not None:
        activity.heartbeat({"waiting_for": workflow_id})
        if loop.time() > deadline:
            raise BackupCenterError(
                "StepFailed",
                step="free the name",
                reason=f"workflow {workflow_id} "
                f"still exists {NAME_FREE_TIMEOUT} after its deletion was requested",
            )
        await asyncio.sleep(0.5)
    return True


ACTIVITIES: list[Callable[..., Any]] = [
    resolve_delete,
    delete_cluster_objects,
    delete_vault_data,
    free_job_name,
]
