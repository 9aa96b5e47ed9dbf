"""Volumes of a backup: how each PVC is protected and where it is mounted."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field

# The kubelet's directory for CSI volumes under <root>/pods/<uid>/volumes/.
CSI_PLUGIN_DIR = "kubernetes.io~csi"


class VolumeMethod(StrEnum):
    snapshot = "snapshot"
    files = "files"
    skipped = "skipped"


class Mount(BaseModel):
    node: str
    pod: str
    pod_uid: str


class VolumePlan(BaseModel):
    namespace: str
    pvc: str
    pv: str = ""
    storage_class: str = ""
    driver: str = ""
    size: str = ""
    access_modes: list[str] = Field(default_factory=list)
    method: VolumeMethod
    snapshot_class: str = ""
    plugin_dir: str = CSI_PLUGIN_DIR
    mounts: list[Mount] = Field(default_factory=list)
    reason: str = ""  # why skipped

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.pvc}"


class HostPathUse(BaseModel):
    namespace: str
    pod: str
    volume: str


class VolumeInventory(BaseModel):
    volumes: list[VolumePlan] = Field(default_factory=list)
    host_paths: list[HostPathUse] = Field(default_factory=list)
