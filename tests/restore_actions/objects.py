"""Builders of backed-up objects and restore contexts for the restore action tests."""

from __future__ import annotations

from typing import Any

from kube.restore.context import DISK_PROVISIONER, NAS_PROVISIONER, RestoreContext

CLASSES = {
    "alicloud-disk-essd": DISK_PROVISIONER,
    "alicloud-disk-topology": DISK_PROVISIONER,
    "alicloud-nas": NAS_PROVISIONER,
    "local-path": "rancher.io/local-path",
}


def ctx(**overrides: Any) -> RestoreContext:
    base: dict[str, Any] = {
        "restore_name": "r1",
        "backup_name": "b1",
        "storage_classes": CLASSES,
        "default_storage_class": "alicloud-disk-topology",
    }
    return RestoreContext(**{**base, **overrides})


def meta(name: str, namespace: str | None = "shop", **extra: Any) -> dict[str, Any]:
    """Metadata as listed from an API server, server-set fields included."""
    m: dict[str, Any] = {
        "name": name,
        "uid": "0b1c2d3e-0000-4000-8000-000000000001",
        "resourceVersion": "12345",
        "creationTimestamp": "2024-05-01T10:00:00Z",
        "generation": 3,
        "selfLink": "/api/v1/whatever",
        **extra,
    }
    if namespace:
        m["namespace"] = namespace
    return m


def pvc(
    name: str = "data",
    *,
    storage_class: str | None = "alicloud-disk-essd",
    size: str = "10Gi",
    modes: tuple[str, ...] = ("ReadWriteOnce",),
    volume: str | None = "d-abc123",
    annotations: dict[str, str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "accessModes": list(modes),
        "resources": {"requests": {"storage": size}},
        "volumeMode": "Filesystem",
        **spec,
    }
    if storage_class is not None:
        body["storageClassName"] = storage_class
    if volume:
        body["volumeName"] = volume
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": meta(
            name,
            annotations={
                "pv.kubernetes.io/bind-completed": "yes",
                "pv.kubernetes.io/bound-by-controller": "yes",
                "volume.kubernetes.io/selected-node": "cn-hangzhou.192.168.0.10",
                "volume.beta.kubernetes.io/storage-provisioner": DISK_PROVISIONER,
                "volume.kubernetes.io/storage-provisioner": DISK_PROVISIONER,
                **(annotations or {}),
            },
        ),
        "spec": body,
        "status": {"phase": "Bound", "capacity": {"storage": size}},
    }


def pv(
    name: str = "d-abc123",
    *,
    storage_class: str = "alicloud-disk-essd",
    size: str = "10Gi",
    driver: str = DISK_PROVISIONER,
    modes: tuple[str, ...] = ("ReadWriteOnce",),
    claim_ns: str = "shop",
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": meta(name, namespace=None, annotations={"pv.kubernetes.io/provisioned-by": driver}),
        "spec": {
            "accessModes": list(modes),
            "capacity": {"storage": size},
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": claim_ns,
                "name": "data",
                "uid": "old-claim-uid",
                "resourceVersion": "999",
            },
            "csi": {"driver": driver, "volumeHandle": name},
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": storage_class,
        },
        "status": {"phase": "Bound"},
    }


def pod_spec(*images: str, init: tuple[str, ...] = ()) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "containers": [{"name": f"c{i}", "image": image} for i, image in enumerate(images)],
    }
    if init:
        spec["initContainers"] = [{"name": f"init{i}", "image": image} for i, image in enumerate(init)]
    return spec


def deployment(*images: str, name: str = "web") -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(name),
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec(*images)},
        },
        "status": {"replicas": 2},
    }
