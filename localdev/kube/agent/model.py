"""What the local agent pretends the cloud is: nodes, zones, CSI drivers, classes; and where data lives."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

REGION = "cn-hangzhou"
ZONE_LABEL = "topology.kubernetes.io/zone"
REGION_LABEL = "topology.kubernetes.io/region"
HOSTNAME_LABEL = "kubernetes.io/hostname"

DISK_DRIVER = "diskplugin.csi.alibabacloud.com"
NAS_DRIVER = "nasplugin.csi.alibabacloud.com"
LOCAL_PATH_PROVISIONER = "rancher.io/local-path"
CSI_DRIVERS = (DISK_DRIVER, NAS_DRIVER)
PROVISIONERS = (DISK_DRIVER, NAS_DRIVER, LOCAL_PATH_PROVISIONER)

DISK_SNAPSHOT_CLASS = "alicloud-disk-snapshot"

# Annotations and finalizers the agent reads or writes. The upstream names are the ones real
# controllers use; the localdev.* ones are this agent's own bookkeeping.
SELECTED_NODE = "volume.kubernetes.io/selected-node"
PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
PV_FINALIZER = "external-provisioner.volume.kubernetes.io/finalizer"
CONTENT_FINALIZER = "snapshot.storage.kubernetes.io/volumesnapshotcontent-bound-protection"
SNAPSHOT_FINALIZER = "snapshot.storage.kubernetes.io/volumesnapshot-bound-protection"
KUBELET_ROOT_ANNOTATION = "localdev.backupcenter.io/kubelet-root"
VIRTUAL_TAINT_KEY = "virtual-kubelet.io/provider"

DISK_MULTI_NODE_ERROR = (
    "multi-node writing is only supported for block volume. For Kubernetes users, if unsure, "
    "use ReadWriteOnce access mode in PersistentVolumeClaim for disk volume"
)

FAULTS_CONFIGMAP = "local-agent-faults"
STATUS_CONFIGMAP = "local-agent-status"
AGENT_NAMESPACE = "kube-system"


@dataclass(frozen=True)
class NodeSpec:
    name: str
    zone: str
    ip: str
    virtual: bool = False


NODES: tuple[NodeSpec, ...] = (
    NodeSpec("node-a1", f"{REGION}-a", "192.168.1.11"),
    NodeSpec("node-a2", f"{REGION}-a", "192.168.1.12"),
    NodeSpec("node-b1", f"{REGION}-b", "192.168.2.11"),
    NodeSpec(f"virtual-kubelet-{REGION}-b", f"{REGION}-b", "192.168.2.250", virtual=True),
)
DEFAULT_ZONE = NODES[0].zone


def zone_in(spec: NodeSpec, region: str) -> str:
    """The node's zone in the cluster's region: a cluster configured for another region (``--region``)
    keeps its node names, and its zones are ``<region>-a`` and ``<region>-b`` as on the cloud."""
    return region + spec.zone.removeprefix(REGION)


def default_zone(region: str) -> str:
    return zone_in(NODES[0], region)


@dataclass(frozen=True)
class StorageClassSpec:
    name: str
    provisioner: str
    binding_mode: str
    parameters: dict[str, str]
    reclaim_policy: str = "Delete"
    expandable: bool = True


STORAGE_CLASSES: tuple[StorageClassSpec, ...] = (
    StorageClassSpec(
        "alicloud-disk-topology-alltype",
        DISK_DRIVER,
        "WaitForFirstConsumer",
        {"type": "cloud_essd,cloud_ssd,cloud_efficiency", "fstype": "ext4"},
    ),
    StorageClassSpec(
        "alicloud-disk-immediate", DISK_DRIVER, "Immediate", {"type": "cloud_essd", "fstype": "ext4"}
    ),
    StorageClassSpec(
        "alibabacloud-cnfs-nas",
        NAS_DRIVER,
        "Immediate",
        {"volumeAs": "subpath", "containerNetworkFileSystem": "cnfs-nas-local", "path": "/"},
    ),
    StorageClassSpec(
        "unsupported-local", LOCAL_PATH_PROVISIONER, "WaitForFirstConsumer", {}, expandable=False
    ),
)


@dataclass(frozen=True)
class Layout:
    """Where one cluster's agent keeps volume data, snapshots and kubelet roots."""

    state_dir: Path
    snapshot_store: Path

    @classmethod
    def of(cls, state_dir: Path, snapshot_store: Path | None = None) -> Layout:
        state_dir = state_dir.resolve()
        return cls(state_dir, (snapshot_store or state_dir / "snapshots").resolve())

    def volume_dir(self, pv_name: str) -> Path:
        return self.state_dir / "volumes" / pv_name

    def local_path_dir(self, pv_name: str) -> Path:
        return self.state_dir / "local-path" / pv_name

    def snapshot_dir(self, handle: str) -> Path:
        return self.snapshot_store / handle

    def kubelet_root(self, node: str) -> Path:
        return self.state_dir / "kubelet" / node


def kubelet_root(state_dir: Path, node: str) -> Path:
    """The kubelet root of a node of the local cluster whose agent keeps its state in state_dir."""
    return Layout.of(state_dir).kubelet_root(node)


def kubelet_root_of(node: dict[str, Any]) -> Path | None:
    """The kubelet root the agent announced on a Node object (per-node workers read it from the API)."""
    root = ((node.get("metadata") or {}).get("annotations") or {}).get(KUBELET_ROOT_ANNOTATION)
    return Path(root) if root else None


def csi_mount_path(root: Path, pod_uid: str, pv_name: str) -> Path:
    """Where a kubelet mounts a CSI persistent volume for a pod."""
    return root / "pods" / pod_uid / "volumes" / "kubernetes.io~csi" / pv_name / "mount"
