"""Helpers for tests against a live cluster: object builders, and waiting with a deadline (never a bare
sleep). Objects are plain dicts over kube.rest.Kube, which keeps the tests short and typed."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from kube.rest import Kube, KubeError, Obj

T = TypeVar("T")

SNAPSHOT_GROUP, SNAPSHOT_VERSION = "snapshot.storage.k8s.io", "v1"
SNAPSHOTS = f"/apis/{SNAPSHOT_GROUP}/{SNAPSHOT_VERSION}"


def wait_for(probe: Callable[[], T | None], what: str, timeout: float = 30.0, interval: float = 0.1) -> T:
    """Call probe until it returns something truthy; fail naming `what` and the last value seen."""
    deadline = time.monotonic() + timeout
    while True:
        last = probe()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")
        time.sleep(interval)


def stays(probe: Callable[[], bool], what: str, seconds: float, interval: float = 0.1) -> None:
    """Assert probe holds for the whole window (for "never happens" checks, the window is the point)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert probe(), f"expected {what} to hold for {seconds:.1f}s"
        time.sleep(interval)


def pvc(
    name: str,
    storage_class: str,
    size: str = "20Gi",
    modes: tuple[str, ...] = ("ReadWriteOnce",),
    data_source: dict[str, str] | None = None,
) -> Obj:
    spec: dict[str, Any] = {
        "accessModes": list(modes),
        "storageClassName": storage_class,
        "resources": {"requests": {"storage": size}},
    }
    if data_source:
        spec["dataSource"] = data_source
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name}, "spec": spec}


def pod(name: str, claims: dict[str, str]) -> Obj:
    """A pod mounting each claim (volume name -> claim name) under /data/<volume>."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "containers": [
                {
                    "name": "main",
                    "image": "busybox:1.36",
                    "command": ["sleep", "infinity"],
                    "volumeMounts": [{"name": v, "mountPath": f"/data/{v}"} for v in claims],
                }
            ],
            "volumes": [{"name": v, "persistentVolumeClaim": {"claimName": c}} for v, c in claims.items()],
        },
    }


def snapshot(name: str, claim: str, snapshot_class: str | None = "alicloud-disk-snapshot") -> Obj:
    spec: dict[str, Any] = {"source": {"persistentVolumeClaimName": claim}}
    if snapshot_class:
        spec["volumeSnapshotClassName"] = snapshot_class
    return {
        "apiVersion": f"{SNAPSHOT_GROUP}/{SNAPSHOT_VERSION}",
        "kind": "VolumeSnapshot",
        "metadata": {"name": name},
        "spec": spec,
    }


def create(kube: Kube, namespace: str, obj: Obj) -> Obj:
    """Create a namespaced object of one of the kinds these tests use."""
    plural = {
        "PersistentVolumeClaim": "persistentvolumeclaims",
        "Pod": "pods",
        "ConfigMap": "configmaps",
        "VolumeSnapshot": "volumesnapshots",
    }[obj["kind"]]
    prefix = SNAPSHOTS if obj["kind"] == "VolumeSnapshot" else "/api/v1"
    created = kube.create(f"{prefix}/namespaces/{namespace}/{plural}", obj)
    assert created is not None
    return created


def get(kube: Kube, path: str) -> Obj:
    found = kube.get(path)
    assert found is not None, f"{path} not found"
    return found


def status(kube: Kube, path: str) -> dict[str, Any]:
    return dict(get(kube, path).get("status") or {})


def pvc_path(namespace: str, name: str) -> str:
    return f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/{name}"


def snapshot_path(namespace: str, name: str) -> str:
    return f"{SNAPSHOTS}/namespaces/{namespace}/volumesnapshots/{name}"


def pvc_phase(kube: Kube, namespace: str, name: str) -> str:
    return str(status(kube, pvc_path(namespace, name)).get("phase"))


def running_pod(kube: Kube, namespace: str, name: str) -> Obj | None:
    found = get(kube, f"/api/v1/namespaces/{namespace}/pods/{name}")
    return found if (found.get("status") or {}).get("phase") == "Running" else None


def gone(kube: Kube, path: str) -> bool:
    return kube.get(path) is None


def http_status(call: Callable[[], Any]) -> int:
    """200 when the call succeeds, else the API's error status."""
    try:
        call()
    except KubeError as exc:
        return exc.status
    return 200


def owned_contents(kube: Kube, selector: str) -> list[Obj]:
    """VolumeSnapshotContents the product owns (taken over by a backup or conversion) with the label
    selector; the short-lived contents it makes to release snapshots, and contents already going,
    are not counted."""
    items, _ = kube.list(f"{SNAPSHOTS}/volumesnapshotcontents", labelSelector=selector)
    return [i for i in items if not i["metadata"]["name"].startswith("backupcenter-release-")
            and not i["metadata"].get("deletionTimestamp")]
