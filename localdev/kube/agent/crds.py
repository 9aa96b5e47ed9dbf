"""The snapshot.storage.k8s.io/v1 CRDs (as the external-snapshotter project defines them, in short form).

Schemas are structural but keep spec/status open (x-kubernetes-preserve-unknown-fields) apart from the
fields whose presence the API must enforce; printer columns match upstream's so `kubectl get` reads alike.
"""

from __future__ import annotations

from typing import Any

GROUP = "snapshot.storage.k8s.io"
VERSION = "v1"
API_VERSION = f"{GROUP}/{VERSION}"

_OPEN: dict[str, Any] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}


def _column(name: str, path: str, kind: str = "string", priority: int = 0) -> dict[str, Any]:
    column: dict[str, Any] = {"name": name, "type": kind, "jsonPath": path}
    if priority:
        column["priority"] = priority
    return column


def _crd(
    plural: str,
    kind: str,
    scope: str,
    short: list[str],
    schema: dict[str, Any],
    columns: list[dict[str, Any]],
    status: bool,
) -> dict[str, Any]:
    version: dict[str, Any] = {
        "name": VERSION,
        "served": True,
        "storage": True,
        "schema": {"openAPIV3Schema": schema},
        "additionalPrinterColumns": columns,
    }
    if status:
        version["subresources"] = {"status": {}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{GROUP}",
            # *.k8s.io groups must say whether the API was approved; this copy is not the approved original.
            "annotations": {"api-approved.kubernetes.io": "unapproved, local development copy"},
        },
        "spec": {
            "group": GROUP,
            "names": {
                "plural": plural,
                "singular": plural[:-1],
                "kind": kind,
                "listKind": f"{kind}List",
                "shortNames": short,
            },
            "scope": scope,
            "versions": [version],
        },
    }


def _object(spec_required: list[str], required: list[str]) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
        "properties": {"source": _OPEN},
    }
    if spec_required:
        spec["required"] = spec_required
    return {
        "type": "object",
        "required": required,
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": _OPEN,
        },
    }


def snapshot_crds() -> list[dict[str, Any]]:
    snapshot = _crd(
        "volumesnapshots",
        "VolumeSnapshot",
        "Namespaced",
        ["vs"],
        _object(["source"], ["spec"]),
        [
            _column("ReadyToUse", ".status.readyToUse", "boolean"),
            _column("SourcePVC", ".spec.source.persistentVolumeClaimName"),
            _column("SourceSnapshotContent", ".spec.source.volumeSnapshotContentName"),
            _column("RestoreSize", ".status.restoreSize"),
            _column("SnapshotClass", ".spec.volumeSnapshotClassName"),
            _column("SnapshotContent", ".status.boundVolumeSnapshotContentName"),
            _column("CreationTime", ".status.creationTime", "date"),
            _column("Age", ".metadata.creationTimestamp", "date"),
        ],
        status=True,
    )
    content = _crd(
        "volumesnapshotcontents",
        "VolumeSnapshotContent",
        "Cluster",
        ["vsc", "vscs"],
        _object(["deletionPolicy", "driver", "source", "volumeSnapshotRef"], ["spec"]),
        [
            _column("ReadyToUse", ".status.readyToUse", "boolean"),
            _column("RestoreSize", ".status.restoreSize", "integer"),
            _column("DeletionPolicy", ".spec.deletionPolicy"),
            _column("Driver", ".spec.driver"),
            _column("VolumeSnapshotClass", ".spec.volumeSnapshotClassName"),
            _column("VolumeSnapshot", ".spec.volumeSnapshotRef.name"),
            _column("VolumeSnapshotNamespace", ".spec.volumeSnapshotRef.namespace"),
            _column("Age", ".metadata.creationTimestamp", "date"),
        ],
        status=True,
    )
    snapshot_class = _crd(
        "volumesnapshotclasses",
        "VolumeSnapshotClass",
        "Cluster",
        ["vsclass", "vsclasses"],
        {
            "type": "object",
            "required": ["deletionPolicy", "driver"],
            "properties": {
                "apiVersion": {"type": "string"},
                "kind": {"type": "string"},
                "metadata": {"type": "object"},
                "driver": {"type": "string"},
                "deletionPolicy": {"type": "string", "enum": ["Delete", "Retain"]},
                "parameters": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
        [
            _column("Driver", ".driver"),
            _column("DeletionPolicy", ".deletionPolicy"),
            _column("Age", ".metadata.creationTimestamp", "date"),
        ],
        status=False,
    )
    return [snapshot_class, content, snapshot]
