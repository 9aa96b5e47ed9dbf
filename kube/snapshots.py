"""CSI VolumeSnapshots taken by a backup: create (idempotently), check readiness, take the data over
from the application namespace, and release it when the backup goes."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from kube.rest import Kube, KubeError
from kube.volumes import SNAPSHOT_API
from schemas.backup import SnapshotState
from schemas.errors import BackupCenterError
from schemas.volumes import VolumePlan

BACKUP_LABEL = "backupcenter.io/backup"


def snapshot_name(backup: str, plan: VolumePlan) -> str:
    """Deterministic, so a retried activity finds the snapshot it already created."""
    digest = hashlib.sha256(f"{backup}/{plan.namespace}/{plan.pvc}".encode()).hexdigest()[:8]
    base = f"{backup}-{plan.pvc}"[:54].rstrip("-")
    return f"{base}-{digest}"


def create(kube: Kube, backup: str, plan: VolumePlan, run: str = "") -> SnapshotState:
    name = snapshot_name(backup, plan)
    labels = {BACKUP_LABEL: backup, **({RUN_LABEL: run} if run else {})}
    body = {
        "apiVersion": "snapshot.storage.k8s.io/v1",
        "kind": "VolumeSnapshot",
        "metadata": {"name": name, "namespace": plan.namespace, "labels": labels},
        "spec": {
            "volumeSnapshotClassName": plan.snapshot_class,
            "source": {"persistentVolumeClaimName": plan.pvc},
        },
    }
    kube.create(f"{SNAPSHOT_API}/namespaces/{plan.namespace}/volumesnapshots", body, exist_ok=True)
    return SnapshotState(
        namespace=plan.namespace,
        pvc=plan.pvc,
        snapshot=name,
        driver=plan.driver,
        snapshot_class=plan.snapshot_class,
    )


def observe(kube: Kube, state: SnapshotState) -> SnapshotState:
    """Refresh readiness, handle and restore size from the VolumeSnapshot and its content."""
    snap = kube.get(f"{SNAPSHOT_API}/namespaces/{state.namespace}/volumesnapshots/{state.snapshot}")
    if snap is None:
        return state.model_copy(update={"ready": False, "error": "the VolumeSnapshot was deleted"})
    status: dict[str, Any] = snap.get("status") or {}
    update: dict[str, Any] = {
        "ready": bool(status.get("readyToUse")),
        "error": (status.get("error") or {}).get("message", ""),
        "content": status.get("boundVolumeSnapshotContentName", ""),
        "restore_size": str(status.get("restoreSize") or ""),
    }
    if update["content"]:
        content = kube.get(f"{SNAPSHOT_API}/volumesnapshotcontents/{update['content']}") or {}
        update["handle"] = (content.get("status") or {}).get("snapshotHandle", "")
        # Retain keeps the cloud snapshot when the content goes: deleting the backup must leave it too.
        update["deletion_policy"] = (content.get("spec") or {}).get("deletionPolicy", "")
    return state.model_copy(update=update)


def delete_for_backup(
    kube: Kube, backup: str, namespaces: list[str], *, wait_seconds: float = 30.0
) -> int:
    """Delete every VolumeSnapshot the backup created; returns how many were removed.  Waits (up to
    ``wait_seconds``) until they are gone: the snapshot controller holds a bound one with its finalizer
    until it has dealt with its content, and a job that says its snapshots are removed must not end
    while they are still there."""
    removed = 0
    paths: list[str] = []
    for ns in namespaces:
        items, _ = kube.list(
            f"{SNAPSHOT_API}/namespaces/{ns}/volumesnapshots", labelSelector=f"{BACKUP_LABEL}={backup}"
        )
        for item in items:
            path = f"{SNAPSHOT_API}/namespaces/{ns}/volumesnapshots/{item['metadata']['name']}"
            try:
                if kube.delete(path):
                    removed += 1
                    paths.append(path)
            except KubeError as err:
                if err.status != 404:
                    raise
    deadline = time.monotonic() + wait_seconds
    while paths and time.monotonic() < deadline:
        paths = [p for p in paths if kube.get(p) is not None]
        if paths:
            time.sleep(0.2)
    return removed


# --- ownership: a backup's snapshot data outlives the application namespace -------------------
# The namespaced VolumeSnapshot only serves to cut the snapshot.  Once it is ready the backup takes
# the data over: the content becomes Retain (the class's policy is kept in an annotation, honoured
# when the backup is deleted), is labelled with the backup, and the VolumeSnapshot is removed.  From
# then on deleting the namespace, every VolumeSnapshot, or the cluster cannot delete the data; only
# delete backup, retention and the failure cleanup do (``release``).  Velero's CSI plugin does the same.
POLICY_ANNOTATION = "backupcenter.io/deletion-policy"
RUN_LABEL = "backupcenter.io/backup-run"
RETAIN, DELETE = "Retain", "Delete"
# The VolumeSnapshot named in a content made only to delete a snapshot: it never exists.
RELEASE_PREFIX = "backupcenter-release-"
RELEASE_TIMEOUT_SECONDS = 90.0


def run_label(uid: str) -> str:
    """A label value for one backup run (uids hold '/' and can be longer than a label)."""
    return hashlib.sha256(uid.encode()).hexdigest()[:16]


class OwnedContent(BaseModel):
    """What the product needs to delete (or re-create) a snapshot it owns, cluster or no cluster."""

    content: str = ""  # the retained VolumeSnapshotContent, while this cluster has it
    handle: str
    driver: str
    deletion_policy: str = DELETE  # of the snapshot class: Retain keeps the data when the backup goes
    source_volume_mode: str = ""
    snapshot_class: str = ""


def content_path(name: str) -> str:
    return f"{SNAPSHOT_API}/volumesnapshotcontents/{name}"


# How long a taken-over snapshot's VolumeSnapshot may take to go (the snapshot controller removes its
# finalizer) before its content is checked anyway.
SNAPSHOT_GONE_SECONDS = 30.0
KEPT_PREFIX = "backupcenter-kept-"


def kept_name(handle: str) -> str:
    """The content the product makes from a handle when the snapshot controller deleted the original."""
    return KEPT_PREFIX + hashlib.sha256(handle.encode()).hexdigest()[:24]


def take_ownership(
    kube: Kube,
    namespace: str,
    snapshot: str,
    content: str,
    labels: dict[str, str],
    annotations: dict[str, str] | None = None,
    *,
    handle: str = "",
    beat: Callable[[], None] = lambda: None,
) -> OwnedContent:
    """Make the product the owner of a ready snapshot's data (idempotent: a retry after the
    VolumeSnapshot is gone finds the content by name, or the one made from ``handle``, and its
    original policy in the annotation)."""
    path = content_path(content)
    found = kube.get(path)
    snapshot_path = f"{SNAPSHOT_API}/namespaces/{namespace}/volumesnapshots/{snapshot}"
    going = found is not None and bool((found.get("metadata") or {}).get("deletionTimestamp"))
    if (found is None or going) and handle:
        kept = kube.get(content_path(kept_name(handle)))
        if kept is not None:
            return _owned(kept)  # an earlier attempt took it over and had to re-make it
    if found is not None and going:
        notes = (found.get("metadata") or {}).get("annotations") or {}
        if (found.get("spec") or {}).get("deletionPolicy") == RETAIN and POLICY_ANNOTATION in notes:
            # An earlier attempt made it Retain and lost it to the snapshot controller before it
            # could re-make it: the data stays, and is taken over from the handle now.
            ours = {k: v for k, v in notes.items() if k.startswith("backupcenter.io/")}
            return _content_kept(kube, snapshot_path, found, labels, ours, beat)
    if found is None or going:
        raise BackupCenterError(
            "SnapshotFailed",
            snapshot=f"{namespace}/{snapshot}",
            pvc=f"{namespace}/{snapshot}",
            reason=f"its VolumeSnapshotContent {content} was deleted before the backup took it over",
        )
    meta = found.get("metadata") or {}
    spec = found.get("spec") or {}
    recorded = (meta.get("annotations") or {}).get(POLICY_ANNOTATION)
    policy = str(recorded or spec.get("deletionPolicy") or DELETE)
    notes = {**(annotations or {}), POLICY_ANNOTATION: policy}
    kube.patch(
        path, {"metadata": {"labels": labels, "annotations": notes}, "spec": {"deletionPolicy": RETAIN}}
    )
    # Never remove the VolumeSnapshot before the content is Retain: that would delete the data.
    after = kube.get(path) or {}
    if (after.get("spec") or {}).get("deletionPolicy") != RETAIN:
        raise BackupCenterError(
            "SnapshotFailed",
            snapshot=f"{namespace}/{snapshot}",
            pvc=f"{namespace}/{snapshot}",
            reason=f"VolumeSnapshotContent {content} did not take deletionPolicy Retain",
        )
    try:
        kube.delete(snapshot_path)
    except KubeError as err:
        if err.status != 404:
            raise
    return _content_kept(kube, snapshot_path, after, labels, notes, beat)


def _content_kept(
    kube: Kube,
    snapshot_path: str,
    content: dict[str, Any],
    labels: dict[str, str],
    annotations: dict[str, str],
    beat: Callable[[], None],
) -> OwnedContent:
    """The content once the snapshot controller has handled the VolumeSnapshot's deletion.

    The controller decides whether a deleted snapshot's content goes on its cached view of the
    content: one made Retain a moment before may still look Delete there and be deleted.  Its data
    stays (the driver reads the content as it is when deleting it: Retain), but the cluster would
    lose the backup's hold on it; the content is then made again from the snapshot handle."""
    deadline = time.monotonic() + SNAPSHOT_GONE_SECONDS
    while kube.get(snapshot_path) is not None and time.monotonic() < deadline:
        beat()
        time.sleep(0.2)
    name = str((content.get("metadata") or {}).get("name"))
    now = kube.get(content_path(name))
    if now is not None and not (now.get("metadata") or {}).get("deletionTimestamp"):
        return _owned(now)
    spec = content.get("spec") or {}
    handle = str((content.get("status") or {}).get("snapshotHandle") or "")
    ref = spec.get("volumeSnapshotRef") or {}
    if not handle:
        raise BackupCenterError(
            "SnapshotFailed",
            snapshot=f"{ref.get('namespace')}/{ref.get('name')}",
            pvc=f"{ref.get('namespace')}/{ref.get('name')}",
            reason=f"its VolumeSnapshotContent {name} was deleted by the snapshot controller and had "
            "no snapshot handle to take the data over from",
        )
    kept: dict[str, Any] = {
        "deletionPolicy": RETAIN,
        "driver": spec.get("driver"),
        "source": {"snapshotHandle": handle},
        # A pre-provisioned content names the snapshot it may bind; this one never exists again.
        "volumeSnapshotRef": {"name": ref.get("name"), "namespace": ref.get("namespace")},
    }
    for field in ("sourceVolumeMode", "volumeSnapshotClassName"):
        if spec.get(field):
            kept[field] = spec[field]
    kube.create(
        f"{SNAPSHOT_API}/volumesnapshotcontents",
        {
            "apiVersion": "snapshot.storage.k8s.io/v1",
            "kind": "VolumeSnapshotContent",
            "metadata": {"name": kept_name(handle), "labels": labels, "annotations": annotations},
            "spec": kept,
        },
        exist_ok=True,
    )
    made = kube.get(content_path(kept_name(handle)))
    assert made is not None, f"VolumeSnapshotContent {kept_name(handle)} vanished after its creation"
    return _owned(made)


def _owned(content: dict[str, Any]) -> OwnedContent:
    meta = content.get("metadata") or {}
    spec = content.get("spec") or {}
    handle = (content.get("status") or {}).get("snapshotHandle") or (spec.get("source") or {}).get(
        "snapshotHandle"
    )
    return OwnedContent(
        content=str(meta.get("name") or ""),
        handle=str(handle or ""),
        driver=str(spec.get("driver") or ""),
        deletion_policy=str((meta.get("annotations") or {}).get(POLICY_ANNOTATION) or RETAIN),
        source_volume_mode=str(spec.get("sourceVolumeMode") or ""),
        snapshot_class=str(spec.get("volumeSnapshotClassName") or ""),
    )


def owned_contents(kube: Kube, selector: str) -> list[OwnedContent]:
    """The retained contents in this cluster that carry the label selector (not those going: one the
    snapshot controller deleted on a stale view is replaced by the one made from its handle)."""
    items = kube.list(f"{SNAPSHOT_API}/volumesnapshotcontents", labelSelector=selector)[0]
    return [
        _owned(item)
        for item in items
        if not str((item.get("metadata") or {}).get("name", "")).startswith(RELEASE_PREFIX)
        and not (item.get("metadata") or {}).get("deletionTimestamp")
    ]


def release_name(handle: str) -> str:
    return RELEASE_PREFIX + hashlib.sha256(handle.encode()).hexdigest()[:24]


class ReleaseResult(BaseModel):
    contents_removed: int = 0  # retained contents deleted (their data stays or goes below)
    deleted: int = 0  # snapshots whose data the driver deleted
    kept: list[str] = []  # handles kept by a Retain snapshot class
    already_gone: int = 0


def release(
    kube: Kube,
    owned: list[OwnedContent],
    *,
    labels: dict[str, str],
    product_namespace: str,
    beat: Callable[[dict[str, Any]], None] = lambda _: None,
    timeout_seconds: float = RELEASE_TIMEOUT_SECONDS,
) -> ReleaseResult:
    """Delete the data of snapshots the product owns, the way CSI deletes a snapshot it did not cut:
    a content naming the handle with deletionPolicy Delete and no bound VolumeSnapshot, which the
    driver's snapshotter deletes with its data once it has seen it.  Works whether or not this cluster
    still has the retained content (it is removed too: as Retain, that never touches the data), so a
    backup of a lost cluster is deleted from another one.  A Retain snapshot class keeps the data."""
    result = ReleaseResult()
    by_handle: dict[str, OwnedContent] = {}
    for item in owned:
        if item.content and kube.delete(content_path(item.content)):
            result.contents_removed += 1
        if item.handle and item.driver:
            by_handle.setdefault(item.handle, item)
    pending: dict[str, OwnedContent] = {}
    for handle, item in sorted(by_handle.items()):
        if item.deletion_policy == RETAIN:
            result.kept.append(handle)
            continue
        name = release_name(handle)
        spec: dict[str, Any] = {
            "deletionPolicy": DELETE,
            "driver": item.driver,
            "source": {"snapshotHandle": handle},
            "volumeSnapshotRef": {"name": name, "namespace": product_namespace},
        }
        if item.source_volume_mode:
            spec["sourceVolumeMode"] = item.source_volume_mode
        kube.create(
            f"{SNAPSHOT_API}/volumesnapshotcontents",
            {
                "apiVersion": "snapshot.storage.k8s.io/v1",
                "kind": "VolumeSnapshotContent",
                "metadata": {"name": name, "labels": labels},
                "spec": spec,
            },
            exist_ok=True,
        )
        pending[name] = item
    # The driver must have seen each content (ready, or an error such as "not found") before it
    # goes: a content deleted unseen would leave the snapshot behind.  One look per content a round:
    # seen ones are deleted, and each stays pending until its deletion (the driver's) is complete.
    deadline = time.monotonic() + timeout_seconds
    seen: set[str] = set()
    left = dict(pending)
    while left:
        for name in sorted(left):
            found = kube.get(content_path(name))
            if found is None:
                del left[name]
                continue
            status = found.get("status") or {}
            if name not in seen and (status.get("readyToUse") or status.get("error")):
                seen.add(name)
                result.already_gone += not status.get("readyToUse")
                kube.delete(content_path(name))
        beat({"releasing": len(left), "total": len(pending)})
        if not left:
            break
        if time.monotonic() > deadline:
            name, first = next(iter(sorted(left.items())))
            raise BackupCenterError(
                "SnapshotReleaseTimeout",
                content=name,
                handle=first.handle,
                driver=first.driver,
                timeout=f"{int(timeout_seconds)}s",
            )
        time.sleep(0.5)
    result.deleted = len(pending) - result.already_gone
    return result


def label_selector(labels: dict[str, str]) -> str:
    return ",".join(f"{key}={value}" for key, value in labels.items())


def release_labelled(
    kube: Kube,
    labels: dict[str, str],
    *,
    product_namespace: str,
    recorded: list[OwnedContent] | None = None,
    beat: Callable[[dict[str, Any]], None] = lambda _: None,
) -> ReleaseResult:
    """Release what the product owns under ``labels``: the contents so labelled in this cluster, and
    ``recorded`` ones (from the vault's records, for a cluster that no longer has their contents)."""
    owned = [*(recorded or []), *owned_contents(kube, label_selector(labels))]
    return release(kube, owned, labels=labels, product_namespace=product_namespace, beat=beat)
