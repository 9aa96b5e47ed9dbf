"""Activities of the backup workflow: thin wrappers over kube/ and vault/ domain code.

All are synchronous (the Kubernetes client and oss2 block) and run on the worker's thread
pool.  Each is idempotent for the same backup run, so Temporal may retry any of them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel
from temporalio import activity

from activities.context import current
from activities.errors import product_errors
from kube import discovery, export, snapshots, temp_pods, volumes
from schemas.backup import ExportSummary, SnapshotState, VolumeRecords
from schemas.errors import BackupCenterError, ErrorInfo
from schemas.specs import DEFAULT_EXCLUDED_NAMESPACES, BackupSpec
from schemas.vault import BackupOutcome, BackupRecord
from schemas.volumes import Mount, VolumeInventory, VolumePlan
from vault import catalog

DISCOVERY_OBJECT = "discovery.json"


class CommitInput(BaseModel):
    spec: BackupSpec
    uid: str
    started_at: datetime
    namespaces: list[str]
    export: ExportSummary
    volumes: VolumeRecords
    item_errors: int
    partially_failed: bool


@activity.defn
@product_errors
def validate_backup(spec: BackupSpec) -> None:
    """What the spec alone cannot tell: the vault is registered here, the selector parses."""
    ctx = current()
    entry = ctx.vaults().describe(spec.vault)  # NotFound names the vault
    if entry.deleted_at is not None:
        raise BackupCenterError("NotFound", kind="vault", name=spec.vault)
    if spec.label_selector:
        from kube.rest import KubeError

        try:
            ctx.kube().request(
                "GET", "/api/v1/namespaces", query={"limit": 1, "labelSelector": spec.label_selector}
            )
        except KubeError as err:
            if err.status == 400:
                raise BackupCenterError(
                    "InvalidSpec", field="label_selector", reason=err.message
                ).as_final() from None
            raise


@activity.defn
@product_errors
def check_vault(spec: BackupSpec, uid: str) -> None:
    """The vault is reachable, and the backup's name is free in it (then taken by this run)."""
    ctx = current()
    manager = ctx.vaults()
    status = manager.check(spec.vault)
    if status.phase.value != "Available":
        raise BackupCenterError("VaultUnavailable", cause=status.cause or "unknown")
    catalog.claim_backup(manager.store(spec.vault), spec.name, cluster_id=ctx.settings.cluster_id, uid=uid)


@activity.defn
@product_errors
def resolve_namespaces(spec: BackupSpec) -> list[str]:
    ctx = current()
    existing = {ns["metadata"]["name"] for ns in ctx.kube().list("/api/v1/namespaces")[0]}
    if spec.include_namespaces:
        chosen = sorted(existing & set(spec.include_namespaces))
        if not chosen:
            raise BackupCenterError(
                "NoTargetNamespace",
                reason=f"none of the included namespaces exists: {', '.join(spec.include_namespaces)}",
            )
        return chosen
    never = set(DEFAULT_EXCLUDED_NAMESPACES) | {ctx.settings.product_namespace} | set(spec.exclude_namespaces)
    chosen = sorted(existing - never)
    if not chosen:
        raise BackupCenterError("NoTargetNamespace", reason="every namespace is excluded")
    return chosen


@activity.defn
@product_errors
def discover_resources(spec: BackupSpec) -> int:
    """Discover every served resource version; the list goes to the vault, the count back."""
    ctx = current()
    found = discovery.discover(ctx.kube())
    store = ctx.store(spec.vault)
    payload = "[" + ",".join(r.model_dump_json() for r in found) + "]"
    store.put(export.resources_prefix(spec.name) + DISCOVERY_OBJECT, payload.encode())
    return len(found)


@activity.defn
@product_errors
def export_resources(spec: BackupSpec, namespaces: list[str]) -> ExportSummary:
    ctx = current()
    store = ctx.store(spec.vault)
    raw = store.get(export.resources_prefix(spec.name) + DISCOVERY_OBJECT)
    from pydantic import TypeAdapter

    resources = TypeAdapter(list[discovery.ApiResource]).validate_json(raw)
    selection = export.ExportSelection(
        backup=spec.name,
        namespaces=namespaces,
        mode=spec.mode,
        label_selector=spec.label_selector,
        include_resources=list(spec.include_resources),
        exclude_resources=list(spec.exclude_resources),
        cluster_resources=spec.cluster_resources,
        page_size=ctx.settings.export_page_size,
    )

    def progress(done: int, total: int, current_type: str) -> None:
        activity.heartbeat({"types_done": done, "types_total": total, "current": current_type})

    return export.export(ctx.kube(), store, resources, selection, progress=progress)


@activity.defn
@product_errors
def plan_volumes(spec: BackupSpec, namespaces: list[str]) -> VolumeInventory:
    return volumes.inventory(current().kube(), namespaces, spec.mode, spec.label_selector or "")


@activity.defn
@product_errors
def list_nodes() -> dict[str, dict[str, str]]:
    """Node name → labels, for placing file-level volume jobs."""
    nodes, _ = current().kube().list("/api/v1/nodes")
    return {n["metadata"]["name"]: dict(n["metadata"].get("labels") or {}) for n in nodes}


@activity.defn
@product_errors
def previous_file_snapshots(vault: str, refs: list[str]) -> dict[str, str]:
    """For each volume, its file-level snapshot in the newest committed backup that has one:
    the parent that makes the next copy incremental."""
    store = current().store(vault)
    wanted = set(refs)
    found: dict[str, str] = {}
    backups = sorted(
        catalog.list_backups(store),
        key=lambda b: b.record.completed_at if b.record else datetime.min.replace(tzinfo=UTC),
        reverse=True,
    )
    for backup in backups:
        if not wanted - found.keys():
            break
        records = catalog.volume_records_if_readable(store, backup.name)  # a damaged one is no parent
        if records is None:
            continue
        for ref, snapshot in records.files.items():
            if ref in wanted and ref not in found:
                found[ref] = snapshot
    return found


@activity.defn
@product_errors
def mount_unmounted_volume(backup: str, plan: VolumePlan) -> Mount:
    """Start a temporary pod mounting ``plan``'s PVC and return where it runs."""
    ctx = current()
    settings = ctx.settings
    return temp_pods.mount_temporarily(
        ctx.kube(), backup, plan, settings, settings.pvc_bind_timeout.total_seconds()
    )


@activity.defn
@product_errors
def remove_temporary_pods(backup: str, namespaces: list[str]) -> int:
    return temp_pods.remove(current().kube(), backup, namespaces)


@activity.defn
@product_errors
def create_snapshots(backup: str, plans: list[VolumePlan], uid: str = "") -> list[SnapshotState]:
    kube = current().kube()
    run = snapshots.run_label(uid) if uid else ""
    return [snapshots.create(kube, backup, plan, run) for plan in plans]


class OwnSnapshots(BaseModel):
    backup: str
    uid: str
    states: list[SnapshotState]


def owner_labels(backup: str, uid: str) -> dict[str, str]:
    return {snapshots.BACKUP_LABEL: backup, snapshots.RUN_LABEL: snapshots.run_label(uid)}


@activity.defn
@product_errors
def own_snapshots(request: OwnSnapshots) -> list[SnapshotState]:
    """The backup takes its ready snapshots over from the application namespaces: each content becomes
    Retain and labelled with the backup, each VolumeSnapshot goes (kube.snapshots.take_ownership)."""
    kube = current().kube()
    labels = owner_labels(request.backup, request.uid)
    out: list[SnapshotState] = []
    total = len(request.states)

    def beat(done: int) -> Callable[[], None]:
        return lambda: activity.heartbeat({"owned": done, "total": total})

    for done, state in enumerate(request.states):
        if state.owned or not state.ready or not state.content:
            out.append(state)
            continue
        owned = snapshots.take_ownership(
            kube,
            state.namespace,
            state.snapshot,
            state.content,
            labels,
            handle=state.handle,
            beat=beat(done),
        )
        out.append(
            state.model_copy(
                update={
                    "owned": True,
                    "content": owned.content,
                    "deletion_policy": owned.deletion_policy,
                    "source_volume_mode": owned.source_volume_mode,
                    "handle": state.handle or owned.handle,
                    "driver": state.driver or owned.driver,
                }
            )
        )
        activity.heartbeat({"owned": done + 1, "total": len(request.states)})
    return out


class WaitSnapshots(BaseModel):
    states: list[SnapshotState]
    timeout_seconds: float


@activity.defn
@product_errors
def wait_snapshots_ready(request: WaitSnapshots) -> list[SnapshotState]:
    """Poll until every snapshot is ready; heartbeats carry the ready count."""
    kube = current().kube()
    # The deadline survives activity retries: it starts with the first attempt.
    info = activity.info()
    started = info.started_time if info.attempt == 1 else (info.scheduled_time or info.started_time)
    deadline = started + timedelta(seconds=request.timeout_seconds)
    states = list(request.states)
    while True:
        states = [s if s.ready else snapshots.observe(kube, s) for s in states]
        for s in states:
            if s.error:
                raise BackupCenterError(
                    "SnapshotFailed",
                    snapshot=f"{s.namespace}/{s.snapshot}",
                    pvc=f"{s.namespace}/{s.pvc}",
                    reason=s.error,
                )
        ready = sum(s.ready for s in states)
        activity.heartbeat({"ready": ready, "total": len(states)})
        if ready == len(states):
            return states
        if datetime.now(UTC) >= deadline:
            late = next(s for s in states if not s.ready)
            raise BackupCenterError(
                "SnapshotNotReady",
                snapshot=f"{late.namespace}/{late.snapshot}",
                pvc=f"{late.namespace}/{late.pvc}",
                timeout=f"{int(request.timeout_seconds)}s",
                reason=f"{ready} of {len(states)} snapshots ready",
            )
        time.sleep(1.0)


@activity.defn
@product_errors
def commit_backup(request: CommitInput) -> BackupRecord:
    """Write volume records, then the commit record last: the backup exists from now on."""
    ctx = current()
    store = ctx.store(request.spec.vault)
    store.put(
        catalog.backup_prefix(request.spec.name) + catalog.VOLUMES, request.volumes.model_dump_json().encode()
    )
    now = datetime.now(UTC)
    record = BackupRecord(
        name=request.spec.name,
        uid=request.uid,
        source_cluster=ctx.settings.cluster_id,
        phase=BackupOutcome.partially_failed if request.partially_failed else BackupOutcome.completed,
        started_at=request.started_at,
        completed_at=now,
        mode=request.spec.mode.value,
        namespaces=request.namespaces,
        resource_count=request.export.objects,
        volume_count=len(request.volumes.snapshots) + len(request.volumes.files),
        item_errors=request.item_errors,
        object_count=request.export.versions_captured,
        expires_at=now + request.spec.ttl,
        labels={"plan": request.spec.plan} if request.spec.plan else {},
        details={"export_bytes": request.export.bytes, "bundles": request.export.bundles},
    )
    return catalog.commit_backup(store, record)


class CleanupInput(BaseModel):
    spec: BackupSpec
    uid: str
    namespaces: list[str]
    canceled: bool
    error_code: str | None = None
    error_message: str | None = None


@activity.defn
@product_errors
def cleanup_backup(request: CleanupInput) -> int:
    """Undo an unfinished backup: its VolumeSnapshots and uncommitted vault objects.

    A canceled run leaves nothing (the name is free again); a failed run leaves only its
    failure record, so the name stays taken until the operator deletes the backup.
    """
    ctx = current()
    kube = ctx.kube()
    removed = snapshots.delete_for_backup(kube, request.spec.name, request.namespaces)
    temp_pods.remove(kube, request.spec.name, request.namespaces)
    try:
        store = ctx.store(request.spec.vault)
    except BackupCenterError:
        # The vault is gone or unreachable: whether the run committed is unknown, so the snapshots
        # it took over stay (a leak is better than deleting a committed backup's data).
        return removed
    if not catalog.owns_uncommitted(store, request.spec.name, request.uid):
        return removed
    # The snapshots this run already took over (labelled with the run, not only the name).
    released = snapshots.release_labelled(
        kube,
        owner_labels(request.spec.name, request.uid),
        product_namespace=ctx.settings.product_namespace,
        beat=activity.heartbeat,
    )
    removed += released.contents_removed
    error = None
    if request.error_code:
        error = ErrorInfo(code=request.error_code, kind="BackupError", message=request.error_message or "")
    catalog.discard_uncommitted(
        store,
        request.spec.name,
        request.uid,
        free_name=request.canceled,
        cluster_id=ctx.settings.cluster_id,
        error=error,
    )
    return removed


ACTIVITIES = [
    validate_backup,
    check_vault,
    resolve_namespaces,
    discover_resources,
    export_resources,
    plan_volumes,
    list_nodes,
    previous_file_snapshots,
    mount_unmounted_volume,
    remove_temporary_pods,
    create_snapshots,
    wait_snapshots_ready,
    own_snapshots,
    commit_backup,
    cleanup_backup,
]
