"""Faults on demand, for tests: they live in a ConfigMap so any process (a test, a detached agent, the CLI)
can set them, and the agent reads them on every reconcile pass.

ConfigMap kube-system/local-agent-faults, data keys:
  neverBindStorageClasses  comma-separated class names whose PVCs are never provisioned
  snapshotsNeverReady      "true": snapshots are never taken (stay readyToUse=false)
  snapshotDelaySeconds     a snapshot is taken only this long after its content was created
  staleSnapshotCache       "true": a deleted VolumeSnapshot's content is judged on the deletion policy
                           the content had when first seen (a snapshot controller whose informer lags)
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from kube.rest import Kube, KubeError
from localdev.kube.agent.model import AGENT_NAMESPACE, FAULTS_CONFIGMAP

_PATH = f"/api/v1/namespaces/{AGENT_NAMESPACE}/configmaps"


@dataclass(frozen=True)
class FaultSettings:
    never_bind: frozenset[str] = field(default_factory=frozenset)
    snapshots_never_ready: bool = False
    snapshot_delay_seconds: float = 0.0
    stale_snapshot_cache: bool = False

    @classmethod
    def from_data(cls, data: dict[str, str]) -> FaultSettings:
        classes = frozenset(
            c.strip() for c in data.get("neverBindStorageClasses", "").split(",") if c.strip()
        )
        try:
            delay = max(0.0, float(data.get("snapshotDelaySeconds", "0") or 0))
        except ValueError:
            delay = 0.0
        return cls(
            classes,
            data.get("snapshotsNeverReady", "").lower() == "true",
            delay,
            data.get("staleSnapshotCache", "").lower() == "true",
        )

    def to_data(self) -> dict[str, str]:
        return {
            "neverBindStorageClasses": ",".join(sorted(self.never_bind)),
            "snapshotsNeverReady": "true" if self.snapshots_never_ready else "false",
            "snapshotDelaySeconds": f"{self.snapshot_delay_seconds:g}",
            "staleSnapshotCache": "true" if self.stale_snapshot_cache else "false",
        }


class Faults:
    """Read and change the agent's faults through the API (the agent picks them up within a second)."""

    def __init__(self, kube: Kube) -> None:
        self._kube = kube

    def read(self) -> FaultSettings:
        cm = self._kube.get(f"{_PATH}/{FAULTS_CONFIGMAP}")
        return FaultSettings.from_data((cm or {}).get("data") or {})

    def _write(self, settings: FaultSettings) -> FaultSettings:
        body = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": FAULTS_CONFIGMAP, "namespace": AGENT_NAMESPACE},
            "data": settings.to_data(),
        }
        try:
            self._kube.patch(f"{_PATH}/{FAULTS_CONFIGMAP}", {"data": settings.to_data()})
        except KubeError as exc:
            if exc.status != 404:
                raise
            self._kube.create(_PATH, body)
        return settings

    def never_bind(self, storage_class: str, enabled: bool = True) -> FaultSettings:
        current = self.read()
        classes = current.never_bind | {storage_class} if enabled else current.never_bind - {storage_class}
        return self._write(replace(current, never_bind=classes))

    def snapshots_never_ready(self, enabled: bool = True) -> FaultSettings:
        current = self.read()
        return self._write(replace(current, snapshots_never_ready=enabled))

    def slow_snapshots(self, delay_seconds: float) -> FaultSettings:
        current = self.read()
        return self._write(replace(current, snapshot_delay_seconds=delay_seconds))

    def stale_snapshot_cache(self, enabled: bool = True) -> FaultSettings:
        return self._write(replace(self.read(), stale_snapshot_cache=enabled))

    def clear(self) -> FaultSettings:
        return self._write(FaultSettings())
