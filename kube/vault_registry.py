"""The vault registry of a cluster, kept in the cluster: one ConfigMap per vault.

Control workers run as several replicas and the CLI runs anywhere with a kubeconfig, so the
list of a cluster's vaults lives in the product's namespace, not on a disk.  ConfigMaps are
labelled ``backupcenter.io/vault``; the entry is JSON under ``entry.json``.  Creation is
exclusive (409 means the name is taken, tombstones included), and updates use the object's
resourceVersion, so a status write never overwrites a concurrent delete.
"""

from __future__ import annotations

from datetime import datetime

from kube.rest import Kube, KubeError
from schemas.common import check_dns_label
from schemas.vault import VaultEntry, VaultStatus

LABEL = "backupcenter.io/vault"
KEY = "entry.json"


class KubeVaultRegistry:
    def __init__(self, kube: Kube, namespace: str) -> None:
        self.kube = kube
        self.namespace = namespace

    def _name(self, vault: str) -> str:
        return f"vault-{check_dns_label(vault)}"

    def _path(self, vault: str | None = None) -> str:
        base = f"/api/v1/namespaces/{self.namespace}/configmaps"
        return base if vault is None else f"{base}/{self._name(vault)}"

    def _ensure_namespace(self) -> None:
        self.kube.create("/api/v1/namespaces", {"metadata": {"name": self.namespace}}, exist_ok=True)

    @staticmethod
    def _entry(cm: dict[str, object]) -> VaultEntry:
        data = cm.get("data") or {}
        assert isinstance(data, dict)
        return VaultEntry.model_validate_json(data[KEY])

    def get(self, name: str) -> VaultEntry | None:
        try:
            cm = self.kube.get(self._path(name))
        except ValueError:
            return None  # not a valid vault name: no such vault
        return None if cm is None else self._entry(cm)

    def list(self) -> list[VaultEntry]:
        items, _ = self.kube.list(self._path(), labelSelector=LABEL)
        return sorted((self._entry(cm) for cm in items), key=lambda e: e.name)

    def add(self, entry: VaultEntry) -> bool:
        self._ensure_namespace()
        body = {
            "metadata": {"name": self._name(entry.name), "labels": {LABEL: entry.name}},
            "data": {KEY: entry.model_dump_json()},
        }
        try:
            self.kube.create(self._path(), body)
        except KubeError as err:
            if err.status == 409:
                return False
            raise
        return True

    def _update(self, name: str, change: dict[str, object], *, live_only: bool) -> VaultEntry | None:
        for _ in range(5):  # optimistic concurrency: re-read and retry on a conflict
            cm = self.kube.get(self._path(name))
            if cm is None:
                return None
            entry = self._entry(cm)
            if entry.deleted:
                return None if live_only else entry
            entry = entry.model_copy(update=change)
            body = {
                "metadata": {"resourceVersion": cm["metadata"]["resourceVersion"]},
                "data": {KEY: entry.model_dump_json()},
            }
            try:
                self.kube.patch(self._path(name), body)
            except KubeError as err:
                if err.status == 409:
                    continue
                raise
            return entry
        raise RuntimeError(f"vault {name}: registry entry kept changing; try again")

    def set_status(self, name: str, status: VaultStatus) -> VaultEntry | None:
        return self._update(name, {"status": status}, live_only=True)

    def tombstone(self, name: str, deleted_at: datetime) -> VaultEntry | None:
        return self._update(name, {"deleted_at": deleted_at}, live_only=False)
