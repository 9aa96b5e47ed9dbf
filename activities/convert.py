"""Activities of the storage-class conversion workflow (thin wrappers over kube.convert and the vault).

All are synchronous (the Kubernetes client and the stores block) and idempotent for one run:
temporary names derive from the run's start minute, and the vault record is claimed by run uid.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, Field
from temporalio import activity

from activities import waiting
from activities.context import WorkerContext, current
from activities.errors import product_errors
from alicloud import snapshots as ecs_snapshots
from kube import convert as kconvert
from kube import snapshots as ksnapshots
from kube.export import read_bundle, read_index
from kube.rest import Kube
from kube.restore.quantity import GIB, quantity_bytes
from kube.restore.target import TargetClasses
from kube.volumes import snapshot_classes_by_driver
from schemas.backup import VolumeRecords
from schemas.convert import (
    ConvertedVolume,
    ConvertFillTarget,
    ConvertItem,
    ConvertJob,
    ConvertPlan,
    ConvertRecord,
)
from schemas.errors import BackupCenterError, ErrorInfo
from schemas.status import ItemIssue
from vault import catalog, conversions
from vault.store import ObjectStore

PVC_RESOURCE = ("", "persistentvolumeclaims")


class ConvertValidation(BaseModel):
    plan: ConvertPlan
    failed: list[ItemIssue] = Field(default_factory=list)


def _backup_pvcs(store: ObjectStore, backup: str) -> list[dict[str, Any]]:
    index = read_index(store, backup)
    bundles = [b for b in index.bundles if (b.group, b.plural) == PVC_RESOURCE]
    chosen = max(bundles, key=lambda b: b.preferred, default=None)
    return list(read_bundle(store, chosen.key)) if chosen is not None else []


def _namespaces_here(ctx: WorkerContext, namespaces: set[str]) -> dict[str, str]:
    """Temporaries go to the volume's namespace when this cluster has it, else the product's."""
    kube = ctx.kube()
    product = ctx.settings.product_namespace
    placed = {ns: ns if kube.get(f"/api/v1/namespaces/{ns}") is not None else product for ns in namespaces}
    if product in placed.values():
        kube.create(
            "/api/v1/namespaces",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": product}},
            exist_ok=True,
        )
    return placed


@activity.defn
@product_errors
def validate_convert(job: ConvertJob) -> ConvertValidation:
    """The backup is committed, the target classes fit this cluster; what to convert; the name is
    taken in the vault for this run."""
    ctx = current()
    spec = job.spec
    ctx.vaults().describe(spec.vault)  # NotFound names the vault
    kube = ctx.kube()
    kconvert.check_targets(spec, TargetClasses.read(kube), kconvert.cluster_zones(kube))
    store = ctx.store(spec.vault)
    backup = catalog.committed_backup(store, spec.backup, spec.vault)
    assert backup.record is not None
    pvcs = _backup_pvcs(store, spec.backup)
    records = catalog.volume_records(store, spec.backup) or VolumeRecords()
    plan, failed = kconvert.plan_conversion(
        spec,
        pvcs,
        records,
        TargetClasses.read(kube),
        snapshot_classes_by_driver(kube),
        namespace_for=_namespaces_here(ctx, {str(p["metadata"]["namespace"]) for p in pvcs}),
        stamp=job.stamp,
        backup_cluster=backup.record.source_cluster,
    )
    conversions.claim_conversion(
        store,
        ConvertRecord(
            name=spec.name,
            backup=spec.backup,
            cluster_id=ctx.settings.cluster_id,
            uid=job.uid,
            storage_class_mapping=dict(spec.storage_class_mapping),
            convert_to_access_modes=list(spec.convert_to_access_modes),
            started_at=job.started_at,
        ),
    )
    issues = [
        ItemIssue(item=f"PVC {key}", message=info.short(), code=info.code) for key, info in failed.items()
    ]
    return ConvertValidation(plan=plan, failed=issues)


class VolumeRequest(BaseModel):
    job: ConvertJob
    item: ConvertItem
    timeout_seconds: float = 0


@activity.defn
@product_errors
def prepare_convert_volume(request: VolumeRequest) -> ConvertFillTarget:
    """Temporary PVC in the target class + the pod mounting it; waits until it is bound and mounted."""
    kube = current().kube()
    item = request.item
    kconvert.create_temporaries(kube, request.job.spec.name, item)
    found: list[ConvertFillTarget] = []

    def placed(candidate: ConvertItem) -> bool:
        target = kconvert.fill_target(kube, candidate)
        if target is not None:
            found.append(target)
        return target is not None

    until = waiting.deadline(timedelta(seconds=request.timeout_seconds))
    if waiting.poll([item], placed, until, f"tmp pvc {item.temp_ref} bound"):
        raise BackupCenterError(
            "ResourceTimeout", what=f"wait for created tmp pvc {item.temp_ref} for convertion bound time out"
        )
    return found[0]


@activity.defn
@product_errors
def snapshot_converted_volume(request: VolumeRequest) -> ConvertedVolume:
    """Snapshot the filled temporary PVC and wait until the snapshot is ready."""
    kube = current().kube()
    item, spec = request.item, request.job.spec
    taken = kconvert.owned_volume(kube, spec.name, item)
    if taken is not None:  # an earlier attempt cut and took it over
        return _with_ecs_facts(kube, taken)
    kconvert.create_snapshot(kube, spec.name, spec.backup, item)
    result: list[ConvertedVolume] = []
    errors: list[str] = [""]

    def ready(candidate: ConvertItem) -> bool:
        volume, error = kconvert.observe_snapshot(kube, candidate)
        errors[0] = error
        if volume is not None:
            result.append(volume)
        return volume is not None

    timeout = timedelta(seconds=request.timeout_seconds)
    if waiting.poll([item], ready, waiting.deadline(timeout), f"snapshot of {item.temp_ref} ready"):
        raise BackupCenterError(
            "SnapshotNotReady",
            snapshot=item.temp_ref,
            pvc=item.temp_ref,
            timeout=str(timeout),
            reason=errors[0] or "not ready yet",
        )
    # Taken over from the namespace at once: deleting it must not lose the converted data.
    def beat() -> None:
        activity.heartbeat({"taking_over": item.temp_ref})

    owned = kconvert.own_snapshot(kube, spec.name, spec.backup, result[0], beat=beat)
    return _with_ecs_facts(kube, owned)


def _with_ecs_facts(kube: Kube, volume: ConvertedVolume) -> ConvertedVolume:
    ctx = current()
    if ctx.settings.enable_ecs_snapshot:
        # The disk driver's handle is an ECS snapshot of this cluster's region.
        size = quantity_bytes(volume.restore_size) if volume.restore_size else 0
        volume = volume.model_copy(update={
            "ecs_region": ecs_snapshots.cluster_region(kube, ctx.settings.region),
            "size_gib": -(-size // GIB) or None,
        })
    return volume


@activity.defn
@product_errors
def remove_convert_temporaries(request: VolumeRequest) -> int:
    """Delete one volume's temporary pod and PVC and wait until they are gone (its snapshot stays)."""
    kube = current().kube()
    item = request.item
    removed = kconvert.delete_item_temporaries(kube, item)
    until = waiting.deadline(timedelta(seconds=request.timeout_seconds or 60))
    waiting.poll(
        [item], lambda i: kconvert.item_temporaries_left(kube, i) == 0, until, f"tmp pvc {item.temp_ref} gone"
    )
    return removed


class CommitRequest(BaseModel):
    job: ConvertJob
    volumes: list[ConvertedVolume]


@activity.defn
@product_errors
def commit_convert(request: CommitRequest) -> int:
    ctx = current()
    spec = request.job.spec
    store = ctx.store(spec.vault)
    record = conversions.commit_conversion(store, spec.name, request.job.uid, request.volumes)
    return len(record.volumes)


class CleanupRequest(BaseModel):
    job: ConvertJob
    error: ErrorInfo | None = None


@activity.defn
@product_errors
def cleanup_convert(request: CleanupRequest) -> int:
    """After cancel or failure: temporaries and snapshots go, the vault record says failed."""
    ctx = current()
    kube = ctx.kube()
    spec = request.job.spec
    removed = kconvert.delete_temporaries(kube, spec.name) + kconvert.delete_snapshots(kube, spec.name)
    released = ksnapshots.release_labelled(
        kube,
        {kconvert.CONVERT_LABEL: spec.name},
        product_namespace=ctx.settings.product_namespace,
        beat=activity.heartbeat,
    )
    removed += released.contents_removed
    conversions.fail_conversion(ctx.store(spec.vault), spec.name, request.job.uid, request.error)
    return removed


ACTIVITIES: list[Callable[..., Any]] = [
    validate_convert,
    prepare_convert_volume,
    snapshot_converted_volume,
    remove_convert_temporaries,
    commit_convert,
    cleanup_convert,
]
