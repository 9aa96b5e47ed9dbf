"""The snapshot controller's and the disk driver's part: VolumeSnapshots of disk volumes become copies of
their data in a snapshot store (<store>/<handle>/data, with meta.json), the way a cloud keeps disk
snapshots apart from the disks. The store may be shared by several local clusters (one "region").

Dynamic snapshots (source.persistentVolumeClaimName) get a content named snapcontent-<snapshot uid>;
pre-provisioned ones (source.volumeSnapshotContentName, content with source.snapshotHandle) become ready
when the store knows the handle. Contents carry a finalizer so that deleting one with deletionPolicy
Delete also deletes the data; a content whose snapshot is gone is deleted under that policy.

With a local ECS endpoint (agent/ecs.py), handles are ECS snapshot ids of the cluster's region: a cut
snapshot is registered there and ready once ECS has accomplished it; a pre-provisioned handle must be an
ECS snapshot of this region (a cross-region copy is materialised from its source's data).
"""

from __future__ import annotations

import json
import math
import shutil
import time
from datetime import UTC, datetime
from typing import Any

from kubernetes.utils import parse_quantity

from kube.rest import Kube, KubeError, Obj
from localdev.kube.agent.blockcopy import copy_volume
from localdev.kube.agent.crds import API_VERSION
from localdev.kube.agent.ecs import EcsLinkError, LocalEcsLink
from localdev.kube.agent.model import (
    CONTENT_FINALIZER,
    CSI_DRIVERS,
    DISK_DRIVER,
    REGION,
    SNAPSHOT_FINALIZER,
    Layout,
)
from localdev.kube.agent.provisioner import volume_data_dir
from localdev.kube.agent.util import (
    Events,
    annotations_of,
    deleting,
    log,
    meta,
    name_of,
    ns_of,
    quantity,
    random_id,
    rfc3339,
    uid_of,
)
from localdev.kube.agent.world import World

DEFAULT_CLASS_ANNOTATION = "snapshot.storage.kubernetes.io/is-default-class"
BEING_DELETED_ANNOTATION = "snapshot.storage.kubernetes.io/volumesnapshot-being-deleted"
_BASE = f"/apis/{API_VERSION}"
# How often a content waits for ECS to finish a snapshot or copy it registered.
ECS_POLL_SECONDS = 0.5
# Copies of copies are followed this deep to the snapshot whose data the store holds.
_MAX_COPY_CHAIN = 8
_GIB = 1 << 30


def _status(obj: Obj) -> dict[str, Any]:
    return obj.get("status") or {}


class Snapshotter:
    def __init__(
        self,
        kube: Kube,
        layout: Layout,
        events: Events,
        *,
        ecs: LocalEcsLink | None = None,
        region: str = REGION,
    ) -> None:
        self._kube = kube
        self._layout = layout
        self._events = events
        self._ecs = ecs
        self._region = region
        self._first_seen: dict[str, float] = {}
        # Each content's deletion policy when first seen: what a lagging informer would still show.
        self._first_policy: dict[str, str] = {}

    def reconcile(self, world: World) -> float | None:
        """Returns the seconds until a delayed snapshot is due, if one is waiting."""
        due: float | None = None
        live = {uid_of(c) for c in world.contents.values()}
        self._first_seen = {uid: seen for uid, seen in self._first_seen.items() if uid in live}
        for content in world.contents.values():
            policy = str((content.get("spec") or {}).get("deletionPolicy"))
            self._first_policy.setdefault(name_of(content), policy)
        self._first_policy = {n: p for n, p in self._first_policy.items() if n in world.contents}
        for content in list(world.contents.values()):
            try:
                wait = self._reconcile_content(world, content)
            except (KubeError, OSError, EcsLinkError) as exc:
                log.warning("snapshot content %s: %s", name_of(content), exc)
                continue
            if wait is not None:
                due = wait if due is None else min(due, wait)
        for snapshot in world.snapshots:
            try:
                self._reconcile_snapshot(world, snapshot)
            except (KubeError, OSError) as exc:
                log.warning("snapshot %s/%s: %s", ns_of(snapshot), name_of(snapshot), exc)
        return due

    # --- VolumeSnapshots -----------------------------------------------------------------------------

    def _fail(self, snapshot: Obj, message: str) -> None:
        error = _status(snapshot).get("error") or {}
        if error.get("message") == message:
            return
        self._patch_snapshot_status(
            snapshot, {"readyToUse": False, "error": {"message": message, "time": rfc3339()}}
        )
        self._events.emit(
            snapshot, "VolumeSnapshot", API_VERSION, "SnapshotCreationFailed", message, warning=True
        )

    def _patch_snapshot_status(self, snapshot: Obj, status: dict[str, Any]) -> None:
        self._kube.patch(
            f"{_BASE}/namespaces/{ns_of(snapshot)}/volumesnapshots/{name_of(snapshot)}/status",
            {"status": status},
        )

    def _snapshot_class(self, world: World, snapshot: Obj, driver: str) -> Obj | None:
        wanted = (snapshot.get("spec") or {}).get("volumeSnapshotClassName")
        if wanted:
            found = world.snapshot_classes.get(str(wanted))
            if found is None:
                self._fail(
                    snapshot,
                    f"Failed to get snapshot class with error volumesnapshotclass."
                    f'{API_VERSION.split("/")[0]} "{wanted}" not found',
                )
            return found
        defaults = [
            c
            for c in world.snapshot_classes.values()
            if c.get("driver") == driver and annotations_of(c).get(DEFAULT_CLASS_ANNOTATION) == "true"
        ]
        if len(defaults) != 1:
            self._fail(
                snapshot,
                "Failed to set default snapshot class with error cannot find default snapshot "
                f"class for snapshot {ns_of(snapshot)}/{name_of(snapshot)}",
            )
            return None
        return defaults[0]

    def _reconcile_snapshot(self, world: World, snapshot: Obj) -> None:
        if deleting(snapshot):
            self._finish_deleted_snapshot(world, snapshot)
            return
        source = (snapshot.get("spec") or {}).get("source") or {}
        status = _status(snapshot)
        if source.get("volumeSnapshotContentName"):
            content = world.contents.get(str(source["volumeSnapshotContentName"]))
            if content is None:
                self._fail(snapshot, f"VolumeSnapshotContent {source['volumeSnapshotContentName']} not found")
                return
            ref = (content.get("spec") or {}).get("volumeSnapshotRef") or {}
            if ref.get("name") != name_of(snapshot) or ref.get("namespace") != ns_of(snapshot):
                self._fail(snapshot, f"VolumeSnapshotContent {name_of(content)} is bound to another snapshot")
                return
            if ref.get("uid") != uid_of(snapshot):
                self._kube.patch(
                    f"{_BASE}/volumesnapshotcontents/{name_of(content)}",
                    {"spec": {"volumeSnapshotRef": {"uid": uid_of(snapshot)}}},
                )
            self._protect(snapshot)
            self._mirror(snapshot, content)
            return
        claim = source.get("persistentVolumeClaimName")
        if not claim:
            return
        content_name = status.get("boundVolumeSnapshotContentName") or f"snapcontent-{uid_of(snapshot)}"
        content = world.contents.get(str(content_name))
        if content is not None:
            self._protect(snapshot)
            self._mirror(snapshot, content)
            return
        pvc = world.pvcs.get((ns_of(snapshot), str(claim)))
        if pvc is None:
            self._fail(
                snapshot,
                f"Failed to create snapshot content with error failed to get input parameters to "
                f'create snapshot: persistentvolumeclaim "{claim}" not found',
            )
            return
        pv = world.pvs.get(str((pvc.get("spec") or {}).get("volumeName") or ""))
        if pv is None or (pvc.get("status") or {}).get("phase") != "Bound":
            return  # the real controller waits for the claim to bind, too
        csi = (pv.get("spec") or {}).get("csi") or {}
        driver = str(csi.get("driver") or "")
        if not driver:
            self._fail(
                snapshot,
                "Failed to create snapshot content with error cannot find CSI PersistentVolumeSource "
                f"for volume {name_of(pv)}",
            )
            return
        if driver not in CSI_DRIVERS:
            return  # another driver's snapshotter would handle it
        cls = self._snapshot_class(world, snapshot, driver)
        if cls is None:
            return
        if driver != DISK_DRIVER:
            self._fail(
                snapshot,
                f"Failed to check and update snapshot content: failed to take snapshot of the "
                f'volume {csi.get("volumeHandle")}: "rpc error: code = Unimplemented desc = '
                f'{driver} does not support CreateSnapshot: only disk volumes can be snapshotted"',
            )
            return
        if cls.get("driver") != driver:
            self._fail(
                snapshot,
                f"Failed to create snapshot content with error snapshot class {name_of(cls)} is "
                f"for driver {cls.get('driver')}, the volume's driver is {driver}",
            )
            return
        self._kube.create(
            f"{_BASE}/volumesnapshotcontents",
            {
                "apiVersion": API_VERSION,
                "kind": "VolumeSnapshotContent",
                "metadata": {"name": content_name, "finalizers": [CONTENT_FINALIZER]},
                "spec": {
                    "deletionPolicy": cls.get("deletionPolicy", "Delete"),
                    "driver": driver,
                    "source": {"volumeHandle": csi.get("volumeHandle")},
                    "sourceVolumeMode": (pv.get("spec") or {}).get("volumeMode", "Filesystem"),
                    "volumeSnapshotClassName": name_of(cls),
                    "volumeSnapshotRef": {
                        "apiVersion": API_VERSION,
                        "kind": "VolumeSnapshot",
                        "name": name_of(snapshot),
                        "namespace": ns_of(snapshot),
                        "uid": uid_of(snapshot),
                        "resourceVersion": meta(snapshot).get("resourceVersion"),
                    },
                },
            },
            exist_ok=True,
        )
        self._patch_snapshot_status(
            snapshot, {"boundVolumeSnapshotContentName": content_name, "readyToUse": False}
        )

    def _protect(self, snapshot: Obj) -> None:
        """A bound VolumeSnapshot carries the common controller's finalizer: its deletion waits for
        the controller, which deletes a Delete-policy content first."""
        finalizers = list(meta(snapshot).get("finalizers") or [])
        if SNAPSHOT_FINALIZER in finalizers:
            return
        self._kube.patch(
            f"{_BASE}/namespaces/{ns_of(snapshot)}/volumesnapshots/{name_of(snapshot)}",
            {
                "metadata": {
                    "finalizers": [*finalizers, SNAPSHOT_FINALIZER],
                    "resourceVersion": meta(snapshot)["resourceVersion"],
                }
            },
        )

    def _finish_deleted_snapshot(self, world: World, snapshot: Obj) -> None:
        """What the common controller does for a deleted bound VolumeSnapshot: delete its content when
        the content's policy is Delete, then let the snapshot go.  The policy is judged on this pass's
        view of the content, as the real controller judges it on its informer's: a content changed a
        moment before the snapshot was deleted may be seen as it was (and be deleted; its data then
        goes only if the content, when the driver deletes it, still says Delete)."""
        finalizers = list(meta(snapshot).get("finalizers") or [])
        if SNAPSHOT_FINALIZER not in finalizers:
            return
        content = world.contents.get(str(_status(snapshot).get("boundVolumeSnapshotContentName") or ""))
        if content is not None and not deleting(content):
            spec = content.get("spec") or {}
            ref = spec.get("volumeSnapshotRef") or {}
            policy = spec.get("deletionPolicy")
            if world.faults.stale_snapshot_cache:
                policy = self._first_policy.get(name_of(content), policy)
            if policy == "Delete" and ref.get("uid") == uid_of(snapshot):
                path = f"{_BASE}/volumesnapshotcontents/{name_of(content)}"
                self._kube.patch(path, {"metadata": {"annotations": {BEING_DELETED_ANNOTATION: "yes"}}})
                self._kube.delete(path)
        finalizers.remove(SNAPSHOT_FINALIZER)
        self._kube.patch(
            f"{_BASE}/namespaces/{ns_of(snapshot)}/volumesnapshots/{name_of(snapshot)}",
            {"metadata": {"finalizers": finalizers, "resourceVersion": meta(snapshot)["resourceVersion"]}},
        )

    def _mirror(self, snapshot: Obj, content: Obj) -> None:
        """Copy the content's state into the snapshot's status (only when something changed)."""
        cstatus = _status(content)
        wanted: dict[str, Any] = {
            "boundVolumeSnapshotContentName": name_of(content),
            "readyToUse": bool(cstatus.get("readyToUse")),
        }
        if cstatus.get("creationTime"):
            seconds = int(cstatus["creationTime"]) / 1e9
            wanted["creationTime"] = rfc3339(datetime.fromtimestamp(seconds, UTC))
        if cstatus.get("restoreSize") is not None:
            wanted["restoreSize"] = quantity(int(cstatus["restoreSize"]))
        if cstatus.get("error"):
            wanted["error"] = cstatus["error"]
        current = _status(snapshot)
        if all(current.get(k) == v for k, v in wanted.items()) and not (
            current.get("error") and wanted["readyToUse"]
        ):
            return
        if wanted["readyToUse"]:
            wanted["error"] = None
        self._patch_snapshot_status(snapshot, wanted)

    # --- VolumeSnapshotContents ----------------------------------------------------------------------

    def _reconcile_content(self, world: World, content: Obj) -> float | None:
        spec = content.get("spec") or {}
        if spec.get("driver") not in CSI_DRIVERS:
            return None
        path = f"{_BASE}/volumesnapshotcontents/{name_of(content)}"
        finalizers = list(meta(content).get("finalizers") or [])
        handle = _status(content).get("snapshotHandle") or (spec.get("source") or {}).get("snapshotHandle")
        if deleting(content):
            if CONTENT_FINALIZER in finalizers:
                if spec.get("deletionPolicy") == "Delete" and handle and _should_delete_data(content):
                    if self._ecs is not None:
                        self._ecs.delete(str(handle))  # already gone is fine: the product may delete first
                    shutil.rmtree(self._layout.snapshot_dir(str(handle)), ignore_errors=True)
                finalizers.remove(CONTENT_FINALIZER)
                self._kube.patch(
                    path,
                    {
                        "metadata": {
                            "finalizers": finalizers,
                            "resourceVersion": meta(content)["resourceVersion"],
                        }
                    },
                )
            return None
        if CONTENT_FINALIZER not in finalizers:
            self._kube.patch(
                path,
                {
                    "metadata": {
                        "finalizers": [*finalizers, CONTENT_FINALIZER],
                        "resourceVersion": meta(content)["resourceVersion"],
                    }
                },
            )
        ref = spec.get("volumeSnapshotRef") or {}
        if (
            ref.get("uid")
            and spec.get("deletionPolicy") == "Delete"
            and not any(uid_of(s) == ref["uid"] for s in world.snapshots)
        ):
            # The common controller marks the content before deleting it: that mark is what lets the
            # driver's sidecar delete the data of a content that was bound to a snapshot.
            self._kube.patch(path, {"metadata": {"annotations": {BEING_DELETED_ANNOTATION: "yes"}}})
            self._kube.delete(path)
            return None
        if _status(content).get("readyToUse"):
            return None
        if world.faults.snapshots_never_ready:
            return None
        # Counted from when this agent first saw the content: creationTimestamp has whole seconds only.
        first_seen = self._first_seen.setdefault(uid_of(content), time.monotonic())
        if world.faults.snapshot_delay_seconds:
            remaining = first_seen + world.faults.snapshot_delay_seconds - time.monotonic()
            if remaining > 0:
                return remaining
        source = spec.get("source") or {}
        if source.get("volumeHandle"):
            taken = _status(content).get("snapshotHandle")
            if taken and self._ecs is not None:
                return self._await_ecs(content, str(taken))  # cut already: ECS is still working on it
            return self._take(world, content, str(source["volumeHandle"]))
        elif source.get("snapshotHandle"):
            return self._adopt(content, str(source["snapshotHandle"]))
        return None

    def _take(self, world: World, content: Obj, volume_handle: str) -> float | None:
        """Cut the snapshot: copy the volume's data into the store under a new handle (an ECS snapshot id
        when an endpoint is configured; the content is then ready when ECS has accomplished it)."""
        pv = next(
            (
                p
                for p in world.pvs.values()
                if ((p.get("spec") or {}).get("csi") or {}).get("volumeHandle") == volume_handle
            ),
            None,
        )
        data = volume_data_dir(self._layout, pv) if pv else self._layout.volume_dir(volume_handle)
        if data is None or not data.is_dir():
            self._content_error(
                content, f"failed to take snapshot of the volume {volume_handle}: disk not found"
            )
            return None
        size = int(
            parse_quantity(str(((pv or {}).get("spec") or {}).get("capacity", {}).get("storage", "0")))
        )
        if self._ecs is not None:
            try:
                handle = self._ecs.register_snapshot(
                    self._region,
                    max(1, math.ceil(size / _GIB)),
                    disk_id=volume_handle,
                    name=name_of(content),
                    retention_days=_retention_days(world, content),
                )
            except EcsLinkError as exc:
                self._content_error(content, f"failed to take snapshot of the volume {volume_handle}: {exc}")
                return None
        else:
            handle = f"s-{random_id(20)}"
        target = self._layout.snapshot_dir(handle)
        target.mkdir(parents=True)
        copy_volume(data, target / "data")
        taken = time.time_ns()
        (target / "meta.json").write_text(
            json.dumps(
                {
                    "handle": handle,
                    "sourceVolumeHandle": volume_handle,
                    "driver": DISK_DRIVER,
                    "restoreSize": size,
                    "creationTime": taken,
                    "region": self._region if self._ecs is not None else "",
                }
            )
        )
        if self._ecs is None:
            self._ready(content, handle, size, taken)
            return None
        # Like the cloud driver: the handle is known at once, readiness follows the ECS snapshot's status.
        self._kube.patch(
            f"{_BASE}/volumesnapshotcontents/{name_of(content)}/status",
            {
                "status": {
                    "snapshotHandle": handle,
                    "readyToUse": False,
                    "restoreSize": size,
                    "creationTime": taken,
                }
            },
        )
        return ECS_POLL_SECONDS

    def _ecs_state(self, content: Obj, handle: str) -> dict[str, Any] | None:
        """The ECS snapshot if it exists in this region and is accomplished; None otherwise (an error is
        recorded on the content when it is missing or failed)."""
        assert self._ecs is not None
        info = self._ecs.describe(handle)
        if info is None or info.get("RegionId") != self._region:
            # DescribeSnapshots in this region does not see other regions' snapshots.
            self._content_error(
                content, f"failed to list snapshot {handle}: snapshot not found in region {self._region}"
            )
            return None
        if info.get("Status") == "failed":
            self._content_error(content, f"snapshot {handle} failed in ECS")
            return None
        return info

    def _await_ecs(self, content: Obj, handle: str) -> float | None:
        info = self._ecs_state(content, handle)
        if info is None:
            return None
        if info.get("Status") != "accomplished":
            return ECS_POLL_SECONDS
        status = _status(content)
        size, taken = int(status.get("restoreSize") or 0), int(status.get("creationTime") or 0)
        self._ready(content, handle, size, taken)
        return None

    def _adopt(self, content: Obj, handle: str) -> float | None:
        if self._ecs is not None:
            ecs = self._ecs_state(content, handle)
            if ecs is None:
                return None
            if ecs.get("Status") != "accomplished":
                return ECS_POLL_SECONDS
            if not (self._layout.snapshot_dir(handle) / "meta.json").exists():
                self._materialise_copy(handle, ecs)
        try:
            info = json.loads((self._layout.snapshot_dir(handle) / "meta.json").read_text())
        except (OSError, ValueError):
            self._content_error(content, f"failed to list snapshot {handle}: snapshot not found")
            return None
        self._ready(
            content, handle, int(info.get("restoreSize", 0)), int(info.get("creationTime", time.time_ns()))
        )
        return None

    def _materialise_copy(self, handle: str, ecs: dict[str, Any]) -> None:
        """Give an accomplished ECS copy its own data in the store: that of the snapshot it was copied from
        (following copies of copies).  Nothing happens when no source with data is found."""
        assert self._ecs is not None
        source_id = str(ecs.get("SourceSnapshotId") or "")
        for _ in range(_MAX_COPY_CHAIN):
            if not source_id:
                return
            source_dir = self._layout.snapshot_dir(source_id)
            if (source_dir / "meta.json").exists():
                break
            upstream = self._ecs.describe(source_id)
            source_id = str((upstream or {}).get("SourceSnapshotId") or "")
        else:
            return
        meta_data = json.loads((source_dir / "meta.json").read_text())
        # Build it aside and rename: a half-copied snapshot must never look complete to another agent.
        staging = self._layout.snapshot_store / f".{handle}.{random_id(6)}"
        staging.mkdir(parents=True)
        copy_volume(source_dir / "data", staging / "data")
        meta_data.update(handle=handle, region=str(ecs.get("RegionId") or ""), copiedFrom=source_id)
        (staging / "meta.json").write_text(json.dumps(meta_data))
        try:
            staging.rename(self._layout.snapshot_dir(handle))
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)  # another cluster's agent was quicker: same data

    def _ready(self, content: Obj, handle: str, size: int, taken_ns: int) -> None:
        self._kube.patch(
            f"{_BASE}/volumesnapshotcontents/{name_of(content)}/status",
            {
                "status": {
                    "snapshotHandle": handle,
                    "readyToUse": True,
                    "restoreSize": size,
                    "creationTime": taken_ns,
                    "error": None,
                }
            },
        )

    def _content_error(self, content: Obj, message: str) -> None:
        if (_status(content).get("error") or {}).get("message") == message:
            return
        self._kube.patch(
            f"{_BASE}/volumesnapshotcontents/{name_of(content)}/status",
            {
                "status": {
                    "readyToUse": False,
                    "error": {"message": message, "time": rfc3339()},
                }
            },
        )


def _should_delete_data(content: Obj) -> bool:
    """The csi-snapshotter sidecar's rule (shouldDelete): it deletes the snapshot of a content being
    deleted only when the content is pre-provisioned and not bound to a snapshot, or when the common
    controller marked it while deleting its snapshot.  Deleting a dynamically provisioned content by
    hand, after its snapshot went with deletionPolicy Retain, leaves the snapshot at the provider."""
    spec = content.get("spec") or {}
    ref = spec.get("volumeSnapshotRef") or {}
    if (spec.get("source") or {}).get("snapshotHandle") and not ref.get("uid"):
        return True
    return BEING_DELETED_ANNOTATION in annotations_of(content)


def _retention_days(world: World, content: Obj) -> int | None:
    """The snapshot class's ``retentionDays`` parameter, which the cloud driver passes to CreateSnapshot."""
    cls = world.snapshot_classes.get(str((content.get("spec") or {}).get("volumeSnapshotClassName") or ""))
    raw = ((cls or {}).get("parameters") or {}).get("retentionDays")
    try:
        days = int(str(raw)) if raw not in (None, "") else None
    except ValueError:
        return None
    return days if days is not None and 1 <= days <= 65536 else None
