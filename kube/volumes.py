"""Which volumes a backup protects, and how: CSI snapshot, file-level copy, or not at all.

Application mode protects the PVCs that pods of the selection mount; data-protection mode
protects every PVC of the selected namespaces, mounted or not.  A PVC whose CSI driver has a
VolumeSnapshotClass is snapshotted; any other filesystem volume is copied at file level by the
node worker of a node where it is mounted (under the kubelet root).
"""

from __future__ import annotations

from typing import Any

from kube.rest import Kube
from schemas.specs import BackupMode
from schemas.volumes import HostPathUse, Mount, VolumeInventory, VolumeMethod, VolumePlan

SNAPSHOT_API = "/apis/snapshot.storage.k8s.io/v1"


def snapshot_classes_by_driver(kube: Kube) -> dict[str, str]:
    """CSI driver → its VolumeSnapshotClass (the default-annotated one when there are several)."""
    try:
        items, _ = kube.list(f"{SNAPSHOT_API}/volumesnapshotclasses")
    except Exception:
        return {}
    chosen: dict[str, str] = {}
    for cls in items:
        driver = cls.get("driver", "")
        annotations = cls.get("metadata", {}).get("annotations") or {}
        is_default = annotations.get("snapshot.storage.kubernetes.io/is-default-class") == "true"
        if driver not in chosen or is_default:
            chosen[driver] = cls["metadata"]["name"]
    return chosen


def inventory(
    kube: Kube, namespaces: list[str], mode: BackupMode, label_selector: str = ""
) -> VolumeInventory:
    """The volumes a backup protects.  With a label selector only the PVCs it selects (the ones the
    export captures: data of a PVC the backup does not hold could never be restored); where they are
    mounted is looked up among all pods."""
    classes = snapshot_classes_by_driver(kube)
    result = VolumeInventory()
    query = {"labelSelector": label_selector} if label_selector else {}
    for ns in sorted(namespaces):
        pvcs, _ = kube.list(f"/api/v1/namespaces/{ns}/persistentvolumeclaims", **query)
        pods, _ = kube.list(f"/api/v1/namespaces/{ns}/pods")
        mounts: dict[str, list[Mount]] = {}
        for pod in pods:
            meta, spec = pod.get("metadata", {}), pod.get("spec", {})
            if pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
                continue
            for vol in spec.get("volumes") or []:
                if "persistentVolumeClaim" in vol:
                    claim = vol["persistentVolumeClaim"]["claimName"]
                    if spec.get("nodeName"):
                        mounts.setdefault(claim, []).append(
                            Mount(node=spec["nodeName"], pod=meta["name"], pod_uid=meta["uid"])
                        )
                    else:
                        mounts.setdefault(claim, [])
                elif "hostPath" in vol:
                    result.host_paths.append(HostPathUse(namespace=ns, pod=meta["name"], volume=vol["name"]))
        for pvc in sorted(pvcs, key=lambda p: p["metadata"]["name"]):
            name = pvc["metadata"]["name"]
            if mode is BackupMode.application and name not in mounts:
                continue  # application backups protect mounted volumes only
            result.volumes.append(_plan(kube, ns, pvc, mounts.get(name, []), classes))
    return result


def _plan(
    kube: Kube, ns: str, pvc: dict[str, Any], mounts: list[Mount], classes: dict[str, str]
) -> VolumePlan:
    spec = pvc.get("spec", {})
    plan = VolumePlan(
        namespace=ns,
        pvc=pvc["metadata"]["name"],
        pv=spec.get("volumeName") or "",
        storage_class=spec.get("storageClassName") or "",
        size=(pvc.get("status", {}).get("capacity") or spec.get("resources", {}).get("requests", {})).get(
            "storage", ""
        ),
        access_modes=list(spec.get("accessModes") or []),
        method=VolumeMethod.skipped,
        mounts=mounts,
    )
    if pvc.get("status", {}).get("phase") != "Bound" or not plan.pv:
        plan.reason = "the PVC is not bound to a volume"
        return plan
    pv = kube.get(f"/api/v1/persistentvolumes/{plan.pv}") or {}
    pv_spec = pv.get("spec", {})
    plan.driver = (pv_spec.get("csi") or {}).get("driver", "")
    if plan.driver and plan.driver in classes:
        plan.method = VolumeMethod.snapshot
        plan.snapshot_class = classes[plan.driver]
        return plan
    if pv_spec.get("volumeMode") == "Block" or spec.get("volumeMode") == "Block":
        plan.reason = "Block-mode volumes cannot be backed up at file level; use a snapshot-capable class"
        return plan
    if "hostPath" in pv_spec:
        plan.reason = "HostPath volumes are not under the kubelet root and cannot be backed up"
        return plan
    if not plan.driver:
        # In-tree volume types keep their kubelet plugin directory, e.g. kubernetes.io~nfs.
        for kind in ("nfs", "local", "cephfs", "glusterfs", "iscsi", "azureFile"):
            if kind in pv_spec:
                plan.plugin_dir = f"kubernetes.io~{kind.lower()}"
    plan.method = VolumeMethod.files
    if not mounts:
        plan.reason = "not mounted by any pod: a temporary pod is needed to read it"
    return plan
