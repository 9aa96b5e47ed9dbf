"""One-time objects the agent installs: CSI drivers, storage classes, the snapshot API and its class."""

from __future__ import annotations

import time

from kube.rest import Kube, KubeError, Obj
from localdev.kube.agent.crds import API_VERSION as SNAPSHOT_API
from localdev.kube.agent.crds import snapshot_crds
from localdev.kube.agent.faults import FaultSettings
from localdev.kube.agent.model import (
    AGENT_NAMESPACE,
    CSI_DRIVERS,
    DISK_DRIVER,
    DISK_SNAPSHOT_CLASS,
    FAULTS_CONFIGMAP,
    REGION,
    STORAGE_CLASSES,
)


def csi_driver(name: str) -> Obj:
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "CSIDriver",
        "metadata": {"name": name},
        # No attach step: the agent has no attacher, and the attach-detach controller would otherwise
        # create VolumeAttachments nobody fulfils.
        "spec": {"attachRequired": False, "podInfoOnMount": False, "volumeLifecycleModes": ["Persistent"]},
    }


def storage_classes(region: str = REGION) -> list[Obj]:
    out = []
    for spec in STORAGE_CLASSES:
        obj: Obj = {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {"name": spec.name},
            "provisioner": spec.provisioner,
            "parameters": dict(spec.parameters),
            "reclaimPolicy": spec.reclaim_policy,
            "volumeBindingMode": spec.binding_mode,
            "allowVolumeExpansion": spec.expandable,
        }
        if spec.provisioner == DISK_DRIVER and spec.binding_mode == "Immediate":
            obj["parameters"]["regionId"] = region
        out.append(obj)
    return out


def snapshot_class() -> Obj:
    return {
        "apiVersion": SNAPSHOT_API,
        "kind": "VolumeSnapshotClass",
        "metadata": {
            "name": DISK_SNAPSHOT_CLASS,
            "annotations": {"snapshot.storage.kubernetes.io/is-default-class": "true"},
        },
        "driver": DISK_DRIVER,
        "deletionPolicy": "Delete",
        "parameters": {},
    }


def _wait_established(kube: Kube, name: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        crd = kube.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
        conditions = (crd or {}).get("status", {}).get("conditions") or []
        if any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions):
            return
        time.sleep(0.1)
    raise TimeoutError(f"CRD {name} not established after {timeout:.0f}s")


def install(kube: Kube, region: str = REGION) -> None:
    """Create what is missing; leave what exists (a user may have changed it on purpose)."""
    for driver in CSI_DRIVERS:
        kube.create("/apis/storage.k8s.io/v1/csidrivers", csi_driver(driver), exist_ok=True)
    for sc in storage_classes(region):
        kube.create("/apis/storage.k8s.io/v1/storageclasses", sc, exist_ok=True)
    crds = snapshot_crds()
    for crd in crds:
        kube.create("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd, exist_ok=True)
    for crd in crds:
        _wait_established(kube, crd["metadata"]["name"])
    # Discovery of a just-established CRD can lag a moment behind the condition.
    deadline = time.monotonic() + 15
    while True:
        try:
            kube.create(f"/apis/{SNAPSHOT_API}/volumesnapshotclasses", snapshot_class(), exist_ok=True)
            break
        except KubeError as exc:
            if exc.status != 404 or time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    kube.create(
        f"/api/v1/namespaces/{AGENT_NAMESPACE}/configmaps",
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": FAULTS_CONFIGMAP, "namespace": AGENT_NAMESPACE},
            "data": FaultSettings().to_data(),
        },
        exist_ok=True,
    )
