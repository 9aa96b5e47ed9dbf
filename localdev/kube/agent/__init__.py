"""The local node/storage agent of the development cluster (kubelets, CSI drivers, snapshots, faults).

Run alone: `python -m localdev.kube.agent --kubeconfig KUBECONFIG --state-dir DIR`.
"""

from localdev.kube.agent.core import LocalAgent
from localdev.kube.agent.faults import Faults, FaultSettings
from localdev.kube.agent.model import (
    DISK_DRIVER,
    DISK_SNAPSHOT_CLASS,
    KUBELET_ROOT_ANNOTATION,
    NAS_DRIVER,
    NODES,
    STORAGE_CLASSES,
    csi_mount_path,
    kubelet_root,
    kubelet_root_of,
)

__all__ = [
    "DISK_DRIVER",
    "DISK_SNAPSHOT_CLASS",
    "KUBELET_ROOT_ANNOTATION",
    "NAS_DRIVER",
    "NODES",
    "STORAGE_CLASSES",
    "FaultSettings",
    "Faults",
    "LocalAgent",
    "csi_mount_path",
    "kubelet_root",
    "kubelet_root_of",
]
