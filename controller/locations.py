"""BackupLocation objects are the cluster's vaults: creating one creates the vault (its marker in
the bucket, its registry entry), its status follows the vault's availability, deleting it forgets
the vault on this cluster (the bucket and its backups stay).  Vaults created with ``backupctl vault
create`` get their object too, so ``kubectl get backuplocations`` lists every vault."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, cast

import kopf

from controller.handlers import plain
from kube import job_objects
from kube.rest import Kube, KubeError, ns_path
from schemas.errors import BackupCenterError
from schemas.resources import (
    API_VERSION,
    GROUP,
    LOCATION,
    STARTED_BY_ANNOTATION,
    VERSION,
    LocationStatus,
    ObjectSpecError,
    object_spec,
    spec_from_object,
)
from schemas.vault import VaultEntry, VaultSpec
from vault.lifecycle import VaultManager

log = logging.getLogger(__name__)


def location_status(entry: VaultEntry) -> dict[str, Any]:
    status = entry.status
    return LocationStatus(
        phase=status.phase.value,
        lastValidated=status.last_check_time,
        lastSuccess=status.last_success_time,
        message=status.cause,
        vaultId=entry.vault_id,
        storageClass=status.storage_class,
    ).model_dump(mode="json", exclude_none=True)


class Locations:
    def __init__(self, vaults: Callable[[], VaultManager], kube: Kube, product_namespace: str) -> None:
        self.vaults = vaults
        self.kube = kube
        self.product_namespace = product_namespace

    def _path(self, name: str | None = None) -> str:
        return ns_path(API_VERSION, LOCATION.plural, self.product_namespace, name)

    async def _fail(self, obj: dict[str, Any], patch: kopf.Patch, code: str, message: str) -> None:
        patch.status["phase"] = "Failed"
        patch.status["message"] = message
        await asyncio.to_thread(job_objects.post_event, self.kube, obj, reason=code, message=message,
                                warning=True)

    async def create(self, body: Any, patch: kopf.Patch, **_: Any) -> None:
        obj = plain(body)
        if (obj.get("status") or {}).get("vaultId"):
            return
        if obj["metadata"]["namespace"] != self.product_namespace:
            await self._fail(obj, patch, "InvalidSpec", f"metadata.namespace: BackupLocations live in the "
                             f"product namespace {self.product_namespace}; an admin creates them there")
            return
        try:
            spec = spec_from_object(obj)
        except ObjectSpecError as err:
            await self._fail(obj, patch, "InvalidSpec", str(err))
            return
        try:
            entry = await asyncio.to_thread(self.vaults().create, cast(VaultSpec, spec))
        except BackupCenterError as err:
            await self._fail(obj, patch, err.code, f"spec.url: {err.short()}")
            return
        patch.status.update(location_status(entry))
        patch.status["observedGeneration"] = obj["metadata"].get("generation")

    async def refresh(self, body: Any, patch: kopf.Patch, **_: Any) -> None:
        """The vault's availability, as the availability checks recorded it (workflows/vault_check.py)."""
        obj = plain(body)
        if (obj.get("status") or {}).get("phase") == "Failed":
            return
        entry = await asyncio.to_thread(self.vaults().registry.get, obj["metadata"]["name"])
        if entry is None or entry.deleted:
            return
        fresh = location_status(entry)
        if any((obj.get("status") or {}).get(k) != v for k, v in fresh.items()):
            patch.status.update(fresh)

    async def delete(self, body: Any, **_: Any) -> None:
        obj = plain(body)
        if (obj.get("status") or {}).get("phase") == "Failed":
            return  # never created
        name = obj["metadata"]["name"]
        manager = self.vaults()
        entry = await asyncio.to_thread(manager.registry.get, name)
        if entry is not None and not entry.deleted:
            await asyncio.to_thread(manager.delete, name)

    async def mirror_cli_vaults(self, stop: asyncio.Event, interval: float = 10.0) -> None:
        """Give every registered vault its BackupLocation (vaults made by ``backupctl vault create``)."""
        while not stop.is_set():
            try:
                await asyncio.to_thread(self._mirror_once)
            except (KubeError, BackupCenterError, OSError) as err:
                log.warning("mirroring vaults as BackupLocations: %s", err)
            try:
                await asyncio.wait_for(stop.wait(), interval)
            except TimeoutError:
                continue

    def _mirror_once(self) -> None:
        if not job_objects.served(self.kube):
            return
        existing = {o["metadata"]["name"] for o in self.kube.list(self._path())[0]}
        for entry in self.vaults().list():
            if entry.name in existing:
                continue
            spec = object_spec(entry.spec)
            self.kube.create(
                self._path(),
                {
                    "apiVersion": API_VERSION,
                    "kind": LOCATION.kind,
                    "metadata": {"name": entry.name, "annotations": {STARTED_BY_ANNOTATION: "backupctl"}},
                    "spec": spec,
                },
                exist_ok=True,
            )

    def register(self, registry: kopf.OperatorRegistry) -> None:
        res = (GROUP, VERSION, LOCATION.plural)
        kopf.on.create(*res, id="create", registry=registry)(self.create)
        kopf.on.resume(*res, id="resume", registry=registry)(self.create)
        kopf.timer(*res, id="availability", interval=5.0, idle=1.0, registry=registry)(self.refresh)
        kopf.on.delete(*res, id="forget", registry=registry)(self.delete)

