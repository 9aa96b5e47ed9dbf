"""Activities of the restore workflow: thin wrappers over the kube.restore_* modules and the vault.

All are synchronous (the Kubernetes client and the stores block) and idempotent for one restore
run: objects this restore already created carry its label and count as created again, vault
objects are rewritten whole.  Objects and outcomes never pass through here: they stream between
the vault and the cluster, and only counts and bounded samples come back.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel
from temporalio import activity

from activities import waiting
from activities.context import WorkerContext, current
from activities.errors import product_errors
from alicloud import snapshots as ecs_snapshots
from kube import discovery
from kube.export import read_bundle, read_index
from kube.rest import Kube
from kube.restore.apply import ApplyOptions
from kube.restore.context import RESTORE_LABEL, RestoreContext
from kube.restore.explain import ItemStatus
from kube.restore.order import Phase
from kube.restore.records import CONTEXT, SOURCES, RestoreFolder, RunMarker
from kube.restore.run import Plan, explain_restore, restore_group
from kube.restore.run import skip_group as skip_restore_group
from kube.restore.selection import bundle_resource, item_selected, validate_namespace_mapping
from kube.restore.target import TargetClasses, check_class_mapping, plan_groups, target_context
from kube.restore.volumes import (
    SourceKind,
    VolumeSource,
    VolumeSources,
    claim_phase,
    create_fill_pod,
    create_temporaries,
    delete_fill_pods,
    delete_source_temporaries,
    delete_temporaries,
    fill_pods_left,
    fill_target,
    has_consumer,
    plan_sources,
    snapshot_classes,
    snapshot_gone,
    snapshot_ready,
)
from schemas.backup import VolumeRecords
from schemas.errors import BackupCenterError
from schemas.restore import (
    MAX_SAMPLES,
    ApplyRequest,
    ClaimsResult,
    CleanupResult,
    DiscoverResult,
    FileTarget,
    FileVolume,
    FinishResult,
    GroupResult,
    RestoreJob,
    RestorePlan,
    SkipRequest,
    VolumeSourcesResult,
)
from schemas.specs import RestoreSpec
from schemas.status import ItemIssue
from vault import catalog, conversions
from vault.store import ObjectStore

CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
CRD_ESTABLISHED_TIMEOUT = timedelta(minutes=2)
POLL_SECONDS = 1.0
QUICK = timedelta(minutes=1)
# How long finish waits for the pods of restored workloads to appear before it stops waiting
# for the claims they would bind.
CONSUMER_GRACE = timedelta(seconds=15)


def _folder(ctx: WorkerContext, job: RestoreJob) -> RestoreFolder:
    return RestoreFolder.of(ctx.store(job.spec.vault), ctx.settings.cluster_id, job.spec.name)


def _parallelism(ctx: WorkerContext) -> int:
    return ctx.settings.restore_apply_parallelism


_deadline = waiting.deadline
_beat = waiting.beat


# --- validate, vault, discovery -------------------------------------------------------------
@activity.defn
@product_errors
def validate_restore(spec: RestoreSpec) -> RestorePlan:
    """The backup is committed in the vault (any cluster's), the mappings fit it and this cluster."""
    ctx = current()
    ctx.vaults().describe(spec.vault)  # NotFound names the vault
    store = ctx.store(spec.vault)
    backup = catalog.committed_backup(store, spec.backup, spec.vault)
    assert backup.record is not None
    index = read_index(store, spec.backup)
    warnings = validate_namespace_mapping(spec, index)
    check_class_mapping(spec, TargetClasses.read(ctx.kube()))
    return RestorePlan(
        source_cluster=backup.record.source_cluster,
        namespaces=index.namespaces,
        objects=index.total_objects(),
        warnings=warnings[:MAX_SAMPLES],
    )


@activity.defn
@product_errors
def check_restore_vault(job: RestoreJob) -> int:
    """The vault is reachable; the restore's vault folder is this run's (returns stale objects removed)."""
    ctx = current()
    status = ctx.vaults().check(job.spec.vault)
    if status.phase.value != "Available":
        raise BackupCenterError("VaultUnavailable", cause=status.cause or "unknown")
    return _folder(ctx, job).claim(RunMarker(uid=job.uid, backup=job.spec.backup))


@activity.defn
@product_errors
def discover_target(job: RestoreJob) -> DiscoverResult:
    """The target's served resources and storage classes, the cluster's image rules, the phases."""
    ctx = current()
    kube = ctx.kube()
    found = discovery.discover(kube)
    context = target_context(kube, job.spec, ctx.settings.product_namespace)
    folder = _folder(ctx, job)
    store = folder.store
    folder.put_discovery(found)
    folder.write(CONTEXT, context)
    groups = plan_groups(read_index(store, job.spec.backup), job.spec, found)
    return DiscoverResult(served=len(found), groups=groups)


# --- applying phases ------------------------------------------------------------------------
@activity.defn
@product_errors
def apply_group(request: ApplyRequest) -> GroupResult:
    ctx = current()
    job = request.job
    options = ApplyOptions(
        restore_name=job.spec.name,
        policy=job.spec.existing_resource_policy,
        started_at=job.started_at,
        parallelism=_parallelism(ctx),
    )

    def progress(done: int, resource: str) -> None:
        _beat({"objects": done, "resource": resource})

    return restore_group(
        ctx.kube(),
        _folder(ctx, job),
        job.spec,
        request.group,
        options,
        progress=progress,
    )


@activity.defn
@product_errors
def skip_group(request: SkipRequest) -> GroupResult:
    """After the operator skipped a phase: its objects count as failed (kube.restore.run.skip_group)."""
    ctx = current()
    job = request.job
    return skip_restore_group(_folder(ctx, job), job.spec, request.group, request.error)


def _restored_names(folder: RestoreFolder, phase: Phase, kind: str) -> list[tuple[str, str]]:
    """(namespace, name) of the objects of a kind this restore created or updated in a phase."""
    return [
        (o.namespace, o.name)
        for o in folder.read_outcomes(phase)
        if o.kind == kind and o.status in (ItemStatus.created, ItemStatus.updated)
    ]


_poll = waiting.poll


@activity.defn
@product_errors
def wait_crds_established(job: RestoreJob) -> int:
    """Wait until the restored CRDs are established, then discover again: their resources are
    served now, and versions are chosen from that discovery."""
    ctx = current()
    kube = ctx.kube()
    folder = _folder(ctx, job)
    names = [name for _, name in _restored_names(folder, Phase.crds, "CustomResourceDefinition")]

    def established(name: str) -> bool:
        crd = kube.get(f"{CRD_PATH}/{name}") or {}
        return any(
            c.get("type") == "Established" and c.get("status") == "True"
            for c in (crd.get("status") or {}).get("conditions") or []
        )

    late = _poll(names, established, _deadline(CRD_ESTABLISHED_TIMEOUT), "CRDs established")
    if late:
        what = f"wait for restored CustomResourceDefinition {late[0]} established time out"
        raise BackupCenterError("ResourceTimeout", what=f"{what} ({CRD_ESTABLISHED_TIMEOUT})")
    found = discovery.discover(kube)
    folder.put_discovery(found)
    return len(names)


# --- volumes --------------------------------------------------------------------------------
def _volume_records(store: ObjectStore, backup: str) -> VolumeRecords:
    return catalog.volume_records(store, backup) or VolumeRecords()


def _retained_volumes(
    plan: Plan, store: ObjectStore, spec: RestoreSpec, kube: Kube, sources: VolumeSources
) -> dict[str, str]:
    """PVs restored from their YAML: reclaim policy Retain, claim restored without data, and not
    in the target already (requirements.md §8).  Others give their claim a new volume."""
    bundle = plan.source_bundle("persistentvolumes")
    if bundle is None:
        return {}
    source = bundle_resource(bundle, plan.target)
    renames: dict[str, str] = {}
    for pv in read_bundle(store, bundle.key):
        spec_ = pv.get("spec") or {}
        claim = spec_.get("claimRef") or {}
        planned = sources.sources.get(f"{claim.get('namespace')}/{claim.get('name')}")
        name = pv["metadata"]["name"]
        if (
            spec_.get("persistentVolumeReclaimPolicy") == "Retain"
            and planned is not None
            and planned.kind is SourceKind.empty
            and item_selected(pv, source, spec)
            and kube.get(f"/api/v1/persistentvolumes/{name}") is None
        ):
            renames[name] = name
    return renames


@activity.defn
@product_errors
def prepare_volume_sources(job: RestoreJob) -> VolumeSourcesResult:
    """Plan each selected PVC's data, create the temporary snapshot objects of snapshot-backed ones."""
    ctx = current()
    kube = ctx.kube()
    spec = job.spec
    folder = _folder(ctx, job)
    store = folder.store
    plan = Plan(folder, spec)
    context = folder.require(CONTEXT, RestoreContext)
    bundle = plan.source_bundle("persistentvolumeclaims")
    pvcs: list[dict[str, Any]] = []
    if bundle is not None:
        source = bundle_resource(bundle, plan.target)
        pvcs = [o for o in read_bundle(store, bundle.key) if item_selected(o, source, spec)]
    existing = set()
    for pvc in pvcs:
        ns, name = context.map_namespace(pvc["metadata"]["namespace"]), pvc["metadata"]["name"]
        found = kube.get(f"/api/v1/namespaces/{ns}/persistentvolumeclaims/{name}")
        # A claim an earlier attempt of this restore created still needs its data source.
        if found is not None and (found["metadata"].get("labels") or {}).get(RESTORE_LABEL) != spec.name:
            existing.add(f"{ns}/{name}")
    # Snapshots copied into this region for this restore (cross-region) restore from their copies.
    records = ecs_snapshots.with_copies(_volume_records(store, spec.backup), folder)
    converted = ecs_snapshots.with_copied_conversions(
        conversions.converted_volumes(store, spec.backup), folder)
    sources = plan_sources(
        pvcs,
        context,
        snapshots={f"{s.namespace}/{s.pvc}": s for s in records.snapshots},
        files=dict(records.files),
        skipped=dict(records.skipped),
        volume_data=spec.volume_data,
        existing=existing,
        converted=converted,
    )
    renames = _retained_volumes(plan, store, spec, kube, sources)
    # Claims restored from a converted snapshot take the access modes it was converted to.
    modes = {s.target: tuple(converted[(key, s.converted_to)].access_modes)
             for key, s in sources.sources.items() if s.converted_to}
    if renames or modes:
        updated = context.model_copy(update={"pv_renames": renames, "converted_access_modes": modes})
        folder.write(CONTEXT, updated)
    folder.write(SOURCES, sources)
    classes = snapshot_classes(kube)
    for done, item in enumerate(sources.with_snapshots()):
        create_temporaries(kube, item, spec.name, classes)
        _beat({"created": done + 1})
    result = VolumeSourcesResult()
    for item in sources.sources.values():
        if item.kind is SourceKind.snapshot and item.error is None:
            result.from_snapshot += 1
            result.from_conversion += bool(item.converted_to)
        elif item.kind is SourceKind.files:
            result.file_level += 1
        elif item.kind is SourceKind.empty:
            result.without_data += 1
    return result


def _sources(folder: RestoreFolder) -> VolumeSources:
    return folder.read(SOURCES, VolumeSources) or VolumeSources()


class WaitRequest(BaseModel):
    job: RestoreJob
    timeout_seconds: float


@activity.defn
@product_errors
def wait_volume_sources_ready(request: WaitRequest) -> int:
    """Wait for the snapshot data sources; one whose snapshot is gone for good (the driver says not
    found) fails its PVC at once, with the cause, and the others go on.  Returns how many failed."""
    ctx = current()
    kube = ctx.kube()
    spec = request.job.spec
    folder = _folder(ctx, request.job)
    plan = _sources(folder)
    sources = plan.with_snapshots()
    errors: dict[str, str] = {}
    gone: list[VolumeSource] = []

    def ready(item: VolumeSource) -> bool:
        ok, error = snapshot_ready(kube, item)
        errors[item.source] = error
        if not ok and snapshot_gone(error):
            gone.append(item)
            return True  # done waiting: it fails below
        return ok

    timeout = timedelta(seconds=request.timeout_seconds)
    late = _poll(sources, ready, _deadline(timeout), "snapshots ready")
    if gone:
        for item in gone:
            plan.sources[item.source].error = BackupCenterError(
                "RestoreSnapshotGone",
                backup=spec.backup,
                pvc=item.target,
                handle=item.handle,
                reason=f"the driver reports: {errors.get(item.source)}",
            ).info()
            delete_source_temporaries(kube, item)
        # The PVCs of these sources fail when they are applied, with this error (data_source_preparer).
        folder.write(SOURCES, plan)
    if late:
        first: VolumeSource = late[0]
        raise BackupCenterError(
            "RestoreSnapshotNotReady",
            snapshot=f"{first.namespace}/{first.snapshot}",
            pvc=first.target,
            handle=first.handle,
            timeout=f"{int(request.timeout_seconds)}s",
            reason=errors.get(first.source) or f"{len(sources) - len(late)} of {len(sources)} ready",
        )
    return len(gone)


@activity.defn
@product_errors
def wait_claims_bound(request: WaitRequest) -> ClaimsResult:
    """Restored PVCs bind within the timeout; those of WaitForFirstConsumer classes bind when
    their workload's pod arrives, later in the restore: they are listed, not waited for."""
    ctx = current()
    kube = ctx.kube()
    folder = _folder(ctx, request.job)
    claims = _restored_names(folder, Phase.storage, "PersistentVolumeClaim")
    modes = TargetClasses.read(kube).binding_modes
    result = ClaimsResult()
    pending: list[tuple[str, str]] = []
    for ns, name in claims:
        phase, cls = claim_phase(kube, ns, name)
        if phase == "Bound":
            result.bound += 1
        elif modes.get(cls or "") == "WaitForFirstConsumer":
            result.waiting_total += 1
            if len(result.waiting_for_consumer) < MAX_SAMPLES:
                result.waiting_for_consumer.append(f"{ns}/{name}")
        else:
            pending.append((ns, name))
    timeout = timedelta(seconds=request.timeout_seconds)
    late = _poll(pending, lambda c: claim_phase(kube, *c)[0] == "Bound", _deadline(timeout), "PVCs bound")
    if late:
        ns, name = late[0]
        raise BackupCenterError(
            "ResourceTimeout",
            what=f"wait for restored pvc {ns}/{name} bound time out "
            f"({timeout}; {len(late)} of {len(pending)} not bound)",
        )
    result.bound += len(pending)
    return result


# --- file-level data ------------------------------------------------------------------------
@activity.defn
@product_errors
def start_file_restores(job: RestoreJob) -> list[FileVolume]:
    """A fill pod for each file-backed PVC this restore created (the node worker writes through it)."""
    ctx = current()
    kube = ctx.kube()
    folder = _folder(ctx, job)
    sources = _sources(folder).with_files()
    created = set(_restored_names(folder, Phase.storage, "PersistentVolumeClaim"))
    return [create_fill_pod(kube, s, job.spec.name) for s in sources if (s.namespace, s.pvc) in created]


class FillRequest(BaseModel):
    volumes: list[FileVolume]
    timeout_seconds: float


@activity.defn
@product_errors
def wait_file_pods(request: FillRequest) -> list[FileTarget]:
    """Fill pods running with their claims bound, within the timeout; their nodes and mounts."""
    kube = current().kube()
    targets: dict[str, FileTarget] = {}

    def placed(volume: FileVolume) -> bool:
        target = fill_target(kube, volume)
        if target is not None:
            targets[volume.source] = target
        return target is not None

    timeout = timedelta(seconds=request.timeout_seconds)
    late = _poll(list(request.volumes), placed, _deadline(timeout), "fill pods running")
    if late:
        first: FileVolume = late[0]
        what = (
            f"wait for restored pvc {first.namespace}/{first.pvc} bound and mounted by temporary pod "
            f"{first.pod} time out ({timeout})"
        )
        raise BackupCenterError("ResourceTimeout", what=what)
    return [targets[v.source] for v in request.volumes]


@activity.defn
@product_errors
def remove_file_pods(job: RestoreJob) -> int:
    """Delete the fill pods and wait until they are gone: a disk volume attaches to one node only,
    and the workload's pod must be able to take it."""
    kube = current().kube()
    removed = delete_fill_pods(kube, job.spec.name)
    _poll([job.spec.name], lambda name: fill_pods_left(kube, name) == 0, _deadline(QUICK), "fill pods gone")
    return removed


# --- finish and cleanup ---------------------------------------------------------------------
def _await_consumers(kube: Kube, sources: list[VolumeSource], deadline: datetime) -> list[VolumeSource]:
    """Wait for unbound claims while a pod uses them (until the deadline); the restored workloads'
    pods may take a moment to appear, so claims without one get a short grace first.  Returns the
    claims still unbound."""
    grace = datetime.now(UTC) + CONSUMER_GRACE
    pending = list(sources)
    while pending:
        pending = [s for s in pending if claim_phase(kube, s.namespace, s.pvc)[0] != "Bound"]
        used = [s for s in pending if has_consumer(kube, s.namespace, s.pvc)]
        _beat({"unbound": len(pending), "with_pods": len(used)})
        now = datetime.now(UTC)
        if now >= deadline or (now >= grace and not used):
            break
        time.sleep(POLL_SECONDS)
    return pending


@activity.defn
@product_errors
def finish_restore(request: WaitRequest) -> FinishResult:
    """Remove temporaries once their PVCs are bound (waiting for claims whose consumer pod was
    restored), keep the others with a warning; explain what is missing."""
    ctx = current()
    kube = ctx.kube()
    spec = request.job.spec
    folder = _folder(ctx, request.job)
    restored = set(_restored_names(folder, Phase.storage, "PersistentVolumeClaim"))
    # A claim this restore did not create (failed, or its phase was skipped) will never bind:
    # its temporaries go, and its outcome (not a "not bound yet") says why.
    sources = [s for s in _sources(folder).with_snapshots() if (s.namespace, s.pvc) in restored]
    kept = _await_consumers(kube, sources, _deadline(timedelta(seconds=request.timeout_seconds)))
    result = FinishResult()
    keep = {f"{s.namespace}/{s.snapshot}" for s in kept}
    result.temporaries_removed = delete_temporaries(kube, spec.name, keep)
    for item in kept:
        result.samples.warning(
            ItemIssue(
                item=f"persistentvolumeclaims/{item.target}",
                message="not bound yet (no pod uses it): "
                f"VolumeSnapshot {item.namespace}/{item.snapshot} and "
                f"VolumeSnapshotContent {item.content} are kept as its data source; "
                f"`backupctl delete restore {spec.name}` removes them once it is bound",
            )
        )
    counts, samples = explain_restore(kube, folder, spec)
    result.missing = counts
    for issue in samples.warnings:
        result.samples.warning(issue)
    result.samples.warnings_total += samples.warnings_total - len(samples.warnings)
    return result


@activity.defn
@product_errors
def cleanup_restore(job: RestoreJob) -> CleanupResult:
    """On cancel or failure: remove the temporary snapshot objects and fill pods (restored objects stay)."""
    return CleanupResult(temporaries_removed=delete_temporaries(current().kube(), job.spec.name))


ACTIVITIES: list[Callable[..., Any]] = [
    validate_restore,
    check_restore_vault,
    discover_target,
    apply_group,
    skip_group,
    wait_crds_established,
    prepare_volume_sources,
    wait_volume_sources_ready,
    wait_claims_bound,
    start_file_restores,
    wait_file_pods,
    remove_file_pods,
    finish_restore,
    cleanup_restore,
]
