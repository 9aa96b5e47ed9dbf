"""The CSI provisioner's part: PVs with real data directories for PVCs of the demo classes, and binding.

Volume data lives in <state>/volumes/<volumeHandle>/ (for a disk the handle is the disk id, which is
also the PV's name, as on the reference cloud), so a statically created PV naming an existing handle finds
the same data, as a re-attached cloud disk would.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from kubernetes.utils import parse_quantity

from kube.rest import Kube, KubeError, Obj
from localdev.kube.agent.blockcopy import copy_volume
from localdev.kube.agent.crds import GROUP as SNAPSHOT_GROUP
from localdev.kube.agent.ecs import EcsLinkError, LocalEcsLink
from localdev.kube.agent.model import (
    DISK_DRIVER,
    DISK_MULTI_NODE_ERROR,
    HOSTNAME_LABEL,
    LOCAL_PATH_PROVISIONER,
    NAS_DRIVER,
    PROVISIONED_BY,
    PROVISIONERS,
    PV_FINALIZER,
    REGION,
    SELECTED_NODE,
    ZONE_LABEL,
    Layout,
    default_zone,
)
from localdev.kube.agent.placement import pod_claims
from localdev.kube.agent.util import (
    Events,
    annotations_of,
    deleting,
    labels_of,
    log,
    meta,
    name_of,
    ns_of,
    random_id,
    uid_of,
)
from localdev.kube.agent.world import World

MULTI_NODE_MODES = ("ReadWriteMany", "ReadOnlyMany")


def volume_data_dir(layout: Layout, pv: Obj) -> Path | None:
    """Where a PV's data lives, for the volumes this agent serves (None for others)."""
    spec = pv.get("spec") or {}
    csi = spec.get("csi") or {}
    if csi.get("driver") in (DISK_DRIVER, NAS_DRIVER) and csi.get("volumeHandle"):
        return layout.volume_dir(str(csi["volumeHandle"]))
    if annotations_of(pv).get(PROVISIONED_BY) == LOCAL_PATH_PROVISIONER and spec.get("hostPath"):
        return Path(spec["hostPath"]["path"])
    return None


def _request(pvc: Obj) -> str:
    return str((((pvc.get("spec") or {}).get("resources") or {}).get("requests") or {}).get("storage", "1Gi"))


# Smallest disk of each ECS disk type, in GiB (ECS "Block Storage performance"; ESSD at PL1, the
# CSI driver's default performance level).  A class that lists several types gets a disk of the first
# that fits; a claim smaller than all of them is refused as the real driver refuses it.
_DISK_MINIMUM_GIB = {"cloud_essd": 20, "cloud_ssd": 20, "cloud_efficiency": 20, "cloud_essd_entry": 10,
                     "cloud_auto": 1}
_PL0_MINIMUM_GIB = 1


def _disk_minimum_gib(sc: Obj) -> int:
    parameters = sc.get("parameters") or {}
    types = [t.strip() for t in str(parameters.get("type") or "cloud_essd").split(",") if t.strip()]
    level = str(parameters.get("performanceLevel") or "PL1")
    sizes = [_PL0_MINIMUM_GIB if t == "cloud_essd" and level == "PL0" else _DISK_MINIMUM_GIB.get(t, 20)
             for t in types]
    return min(sizes, default=20)


class Provisioner:
    def __init__(
        self,
        kube: Kube,
        layout: Layout,
        events: Events,
        *,
        region: str = REGION,
        ecs: LocalEcsLink | None = None,
    ) -> None:
        self._kube = kube
        self._layout = layout
        self._events = events
        self._default_zone = default_zone(region)
        self._region = region
        self._ecs = ecs

    def _register_disk_from(self, source: Path, pvc: dict[str, Any]) -> None:
        """Tell ECS the disk was made from that snapshot (it then refuses DeleteSnapshot without Force)."""
        handle = source.parent.name
        if self._ecs is None or self._layout.snapshot_dir(handle) != source.parent:
            return  # no ECS, or a clone of another PVC
        size_gib = max(1, -(-int(parse_quantity(_request(pvc))) // (1 << 30)))
        try:
            self._ecs.register_disk(self._region, size_gib, source_snapshot_id=handle)
        except EcsLinkError as err:
            log.warning("disk from snapshot %s not registered with ECS: %s", handle, err)

    def reconcile(self, world: World) -> None:
        for pv in list(world.pvs.values()):
            self._guard(self._reconcile_pv, world, pv)
        for pvc in list(world.pvcs.values()):
            self._guard(self._reconcile_pvc, world, pvc)

    @staticmethod
    def _guard(fn: Any, world: World, obj: Obj) -> None:
        try:
            fn(world, obj)
        except (KubeError, OSError) as exc:
            log.warning("provisioning %s/%s: %s", ns_of(obj), name_of(obj), exc)

    # --- PVs: deletion and reclaim -------------------------------------------------------------------

    def _reconcile_pv(self, world: World, pv: Obj) -> None:
        if annotations_of(pv).get(PROVISIONED_BY) not in PROVISIONERS:
            return
        spec = pv.get("spec") or {}
        finalizers = list(meta(pv).get("finalizers") or [])
        if deleting(pv):
            if PV_FINALIZER in finalizers:
                data = volume_data_dir(self._layout, pv)
                if data is not None and spec.get("persistentVolumeReclaimPolicy") == "Delete":
                    shutil.rmtree(data, ignore_errors=True)
                finalizers.remove(PV_FINALIZER)
                self._kube.patch(
                    f"/api/v1/persistentvolumes/{name_of(pv)}",
                    {"metadata": {"finalizers": finalizers, "resourceVersion": meta(pv)["resourceVersion"]}},
                )
            return
        claim_uid = (spec.get("claimRef") or {}).get("uid")
        if (
            spec.get("persistentVolumeReclaimPolicy") == "Delete"
            and claim_uid
            and claim_uid not in world.pvc_uids()
        ):
            # The claim is gone: the provisioner deletes the volume it made (its finalizer frees the data).
            self._kube.delete(f"/api/v1/persistentvolumes/{name_of(pv)}")

    # --- PVCs: provisioning and binding --------------------------------------------------------------

    def _reconcile_pvc(self, world: World, pvc: Obj) -> None:
        if deleting(pvc):
            return
        spec = pvc.get("spec") or {}
        sc = world.classes.get(str(spec.get("storageClassName") or ""))
        if sc is None or sc.get("provisioner") not in PROVISIONERS:
            return
        if spec.get("volumeName"):
            pv = world.pvs.get(spec["volumeName"])
            if pv is not None and (pv.get("spec") or {}).get("claimRef", {}).get("uid") == uid_of(pvc):
                if (pvc.get("status") or {}).get("phase") != "Bound":
                    self._bind(pvc, pv)
                else:
                    self._expand(sc, pvc, pv)
            return
        mine = [
            pv
            for pv in world.pvs.values()
            if (pv.get("spec") or {}).get("claimRef", {}).get("uid") == uid_of(pvc)
        ]
        if mine:
            self._bind(pvc, mine[0])
            return
        if name_of(sc) in world.faults.never_bind:
            return
        self._provision(world, sc, pvc)

    def _warn(self, pvc: Obj, sc: Obj, message: str) -> None:
        self._events.emit(
            pvc,
            "PersistentVolumeClaim",
            "v1",
            "ProvisioningFailed",
            f'failed to provision volume with StorageClass "{name_of(sc)}": {message}',
            warning=True,
        )

    def _consumer_node(self, world: World, pvc: Obj) -> str | None:
        """The node of a pod that uses the claim and is already placed (set by hand, bypassing scheduling)."""
        for pod in world.pods:
            node = (pod.get("spec") or {}).get("nodeName")
            if node and ns_of(pod) == ns_of(pvc) and name_of(pvc) in pod_claims(pod):
                return str(node)
        return None

    def _provision(self, world: World, sc: Obj, pvc: Obj) -> None:
        spec = pvc.get("spec") or {}
        provisioner = str(sc.get("provisioner"))
        modes = list(spec.get("accessModes") or ["ReadWriteOnce"])
        if (
            provisioner == DISK_DRIVER
            and spec.get("volumeMode") != "Block"
            and any(m in MULTI_NODE_MODES for m in modes)
        ):
            self._warn(pvc, sc, f"rpc error: code = InvalidArgument desc = {DISK_MULTI_NODE_ERROR}")
            return
        if provisioner == DISK_DRIVER and parse_quantity(_request(pvc)) < _disk_minimum_gib(sc) * 2**30:
            minimum = _disk_minimum_gib(sc)
            types = (sc.get("parameters") or {}).get("type") or "cloud_essd"
            self._warn(pvc, sc, f"rpc error: code = InvalidArgument desc = disk size is not supported: "
                                f"{_request(pvc)} is below {minimum}Gi, the smallest disk of the types of "
                                f"this class ({types})")
            return
        node: str | None = None
        if sc.get("volumeBindingMode") == "WaitForFirstConsumer":
            node = annotations_of(pvc).get(SELECTED_NODE) or self._consumer_node(world, pvc)
            if not node or node not in world.nodes:
                return
            if SELECTED_NODE not in annotations_of(pvc):
                self._kube.patch(
                    f"/api/v1/namespaces/{ns_of(pvc)}/persistentvolumeclaims/{name_of(pvc)}",
                    {"metadata": {"annotations": {SELECTED_NODE: node}}},
                )
        source = self._data_source(world, sc, pvc)
        if source is False:
            return
        zone = self._default_zone
        if node:
            zone = labels_of(world.nodes[node]).get(ZONE_LABEL, self._default_zone)
        elif (sc.get("parameters") or {}).get("zoneId"):
            zone = str(sc["parameters"]["zoneId"]).split(",")[0]
        pv = self._pv_object(sc, pvc, modes, node, zone)
        data = volume_data_dir(self._layout, pv)
        assert data is not None
        if data.exists():
            shutil.rmtree(data)
        if isinstance(source, Path):
            copy_volume(source, data)
            self._register_disk_from(source, pvc)
        else:
            data.mkdir(parents=True)
        created = self._kube.create("/api/v1/persistentvolumes", pv)
        assert created is not None
        self._events.emit(
            pvc,
            "PersistentVolumeClaim",
            "v1",
            "ProvisioningSucceeded",
            f"Successfully provisioned volume {name_of(pv)}",
            warning=False,
        )
        self._bind(pvc, created)

    def _pv_object(self, sc: Obj, pvc: Obj, modes: list[str], node: str | None, zone: str) -> Obj:
        spec = pvc.get("spec") or {}
        provisioner = str(sc.get("provisioner"))
        pv_spec: Obj = {
            "capacity": {"storage": _request(pvc)},
            "accessModes": modes,
            "persistentVolumeReclaimPolicy": sc.get("reclaimPolicy") or "Delete",
            "storageClassName": name_of(sc),
            "volumeMode": spec.get("volumeMode") or "Filesystem",
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": ns_of(pvc),
                "name": name_of(pvc),
                "uid": uid_of(pvc),
                "resourceVersion": meta(pvc).get("resourceVersion"),
            },
        }
        if sc.get("mountOptions"):
            pv_spec["mountOptions"] = sc["mountOptions"]
        pv_labels: dict[str, str] = {}
        if provisioner == DISK_DRIVER:
            name = f"d-{random_id(20)}"
            disk_type = str((sc.get("parameters") or {}).get("type", "cloud_essd")).split(",")[0]
            pv_spec["csi"] = {
                "driver": DISK_DRIVER,
                "volumeHandle": name,
                "fsType": "ext4",
                "volumeAttributes": {
                    "type": disk_type,
                    "storage.kubernetes.io/csiProvisionerIdentity": f"local-{DISK_DRIVER}",
                },
            }
            pv_spec["nodeAffinity"] = {
                "required": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": ZONE_LABEL, "operator": "In", "values": [zone]}]}
                    ]
                }
            }
            pv_labels[ZONE_LABEL] = zone
        elif provisioner == NAS_DRIVER:
            name = f"pvc-{uid_of(pvc)}"
            pv_spec["csi"] = {
                "driver": NAS_DRIVER,
                "volumeHandle": name,
                "volumeAttributes": {
                    "server": "local-nas.cn-hangzhou.nas.aliyuncs.com",
                    "path": f"/{name}",
                    "volumeAs": "subpath",
                    "storage.kubernetes.io/csiProvisionerIdentity": f"local-{NAS_DRIVER}",
                },
            }
        else:
            name = f"pvc-{uid_of(pvc)}"
            pv_spec["hostPath"] = {
                "path": str(self._layout.local_path_dir(name)),
                "type": "DirectoryOrCreate",
            }
            pv_spec["nodeAffinity"] = {
                "required": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {"key": HOSTNAME_LABEL, "operator": "In", "values": [node or ""]}
                            ]
                        }
                    ]
                }
            }
        return {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {
                "name": name,
                "labels": pv_labels,
                "annotations": {PROVISIONED_BY: provisioner},
                "finalizers": [PV_FINALIZER],
            },
            "spec": pv_spec,
        }

    def _data_source(self, world: World, sc: Obj, pvc: Obj) -> Path | bool | None:
        """The directory to fill the new volume from; None for an empty volume; False to wait."""
        spec = pvc.get("spec") or {}
        source = spec.get("dataSourceRef") or spec.get("dataSource")
        if not source:
            return None
        kind, name = source.get("kind"), source.get("name")
        if kind == "VolumeSnapshot" and source.get("apiGroup") == SNAPSHOT_GROUP:
            snapshot = next(
                (s for s in world.snapshots if ns_of(s) == ns_of(pvc) and name_of(s) == name), None
            )
            status = (snapshot or {}).get("status") or {}
            if not status.get("readyToUse"):
                self._warn(
                    pvc,
                    sc,
                    f"error getting handle for DataSource Type VolumeSnapshot by Name {name}: "
                    f"snapshot {name} is not Ready",
                )
                return False
            content = world.contents.get(str(status.get("boundVolumeSnapshotContentName")), {})
            handle = str((content.get("status") or {}).get("snapshotHandle", ""))
            if sc.get("provisioner") != (content.get("spec") or {}).get("driver"):
                self._warn(
                    pvc,
                    sc,
                    f"VolumeSnapshot {name} of driver {(content.get('spec') or {}).get('driver')} "
                    f"cannot be restored by {sc.get('provisioner')}",
                )
                return False
            data = self._layout.snapshot_dir(handle) / "data"
            if not handle or not data.is_dir():
                self._warn(pvc, sc, f"snapshot {handle or name} not found")
                return False
            if parse_quantity(_request(pvc)) < parse_quantity(str(status.get("restoreSize") or "0")):
                self._warn(
                    pvc,
                    sc,
                    f"requested volume size {_request(pvc)} is less than the size "
                    f"{status.get('restoreSize')} for the source snapshot {name}",
                )
                return False
            return data
        if kind == "PersistentVolumeClaim" and not source.get("apiGroup"):
            src = world.pvcs.get((ns_of(pvc), str(name)))
            pv = world.pvs.get(str(((src or {}).get("spec") or {}).get("volumeName", "")))
            source_dir = volume_data_dir(self._layout, pv) if pv else None
            if source_dir is None or not source_dir.is_dir():
                self._warn(pvc, sc, f"error getting source volume for clone: PVC {name} is not bound")
                return False
            return source_dir
        return None

    def _bind(self, pvc: Obj, pv: Obj) -> None:
        """What the PV controller does once a PV is pre-bound to a claim (it may race us; both converge)."""
        path = f"/api/v1/namespaces/{ns_of(pvc)}/persistentvolumeclaims/{name_of(pvc)}"
        driver = annotations_of(pv).get(PROVISIONED_BY, "")
        self._kube.patch(
            path,
            {
                "metadata": {
                    "annotations": {
                        "pv.kubernetes.io/bind-completed": "yes",
                        "pv.kubernetes.io/bound-by-controller": "yes",
                        "volume.beta.kubernetes.io/storage-provisioner": driver,
                        "volume.kubernetes.io/storage-provisioner": driver,
                    }
                },
                "spec": {"volumeName": name_of(pv)},
            },
        )
        pv_spec = pv.get("spec") or {}
        self._kube.patch(
            path + "/status",
            {
                "status": {
                    "phase": "Bound",
                    "accessModes": pv_spec.get("accessModes"),
                    "capacity": pv_spec.get("capacity"),
                }
            },
        )
        self._kube.patch(f"/api/v1/persistentvolumes/{name_of(pv)}/status", {"status": {"phase": "Bound"}})

    def _expand(self, sc: Obj, pvc: Obj, pv: Obj) -> None:
        if not sc.get("allowVolumeExpansion"):
            return
        wanted = _request(pvc)
        current = str(((pv.get("spec") or {}).get("capacity") or {}).get("storage", "0"))
        if parse_quantity(wanted) <= parse_quantity(current):
            return
        self._kube.patch(
            f"/api/v1/persistentvolumes/{name_of(pv)}", {"spec": {"capacity": {"storage": wanted}}}
        )
        self._kube.patch(
            f"/api/v1/namespaces/{ns_of(pvc)}/persistentvolumeclaims/{name_of(pvc)}/status",
            {"status": {"capacity": {"storage": wanted}}},
        )
