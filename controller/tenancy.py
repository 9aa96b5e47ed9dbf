"""Namespace self-service: a job object in a tenant's namespace (any namespace but the product's)
backs up or restores that namespace only, with vaults an admin marked shareable.

The tenant needs rights only on the job kinds in their own namespace (deploy/controller.yaml's
``backup-center-tenant`` ClusterRole, bound per namespace); the controller, which holds the wider
rights, refuses anything wider with the reason, before anything starts.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from controller.jobs import Refused
from kube.rest import Kube, ns_path
from schemas.errors import BackupCenterError
from schemas.resources import API_VERSION, LOCATION
from schemas.specs import BackupSpec, ClusterResources, DeleteSpec, RestoreSpec
from vault import catalog
from vault.lifecycle import VaultManager


class Tenancy:
    def __init__(self, kube: Kube, vaults: Any, product_namespace: str) -> None:
        self.kube = kube
        self.vaults = vaults  # () -> VaultManager
        self.product_namespace = product_namespace

    def is_tenant(self, namespace: str) -> bool:
        return namespace != self.product_namespace

    def _shareable(self, vault: str) -> bool:
        location = self.kube.get(ns_path(API_VERSION, LOCATION.plural, self.product_namespace, vault))
        return bool(location and (location.get("spec") or {}).get("shareable"))

    def _check_vault(self, vault: str) -> None:
        if not self._shareable(vault):
            raise Refused(
                "NotShareable",
                f"spec.vault: vault {vault} is not shareable with tenants; an admin sets shareable: true on "
                f"its BackupLocation in namespace {self.product_namespace}",
            )

    def narrow(self, spec: BaseModel, namespace: str) -> BaseModel:
        """The tenant's job as it may run (a backup's namespace filled in), or Refused.  Runs in a
        thread: it reads the BackupLocation and, for a restore, the backup's record."""
        if isinstance(spec, BackupSpec):
            if spec.exclude_namespaces or spec.include_namespaces not in ([], [namespace]):
                raise Refused(
                    "NotPermitted",
                    f"spec.includeNamespaces: a backup in namespace {namespace} covers that namespace only "
                    f"(leave it out, or give [{namespace}])",
                )
            if spec.cluster_resources is ClusterResources.all:
                raise Refused("NotPermitted", "spec.clusterResources: all cluster-scoped objects are an "
                              "admin's backup; a tenant's takes the related ones (the default)")
            self._check_vault(spec.vault)
            return spec.model_copy(update={"include_namespaces": [namespace]})
        if isinstance(spec, RestoreSpec):
            self._check_vault(spec.vault)
            manager: VaultManager = self.vaults()
            try:
                found = catalog.get_backup(manager.store(spec.vault), spec.backup)
            except BackupCenterError as err:
                raise Refused("InvalidSpec", f"spec.backup: {err.short()}") from None
            sources = list(found.record.namespaces) if found.record else []
            if sources != [namespace]:
                raise Refused(
                    "NotPermitted",
                    f"spec.backup: backup {spec.backup} is of namespace(s) "
                    f"{', '.join(sources) or 'unknown'}; "
                    f"a restore in namespace {namespace} restores a backup of {namespace} only",
                )
            targets = {spec.namespace_mapping.get(ns, ns) for ns in sources}
            if targets != {namespace}:
                raise Refused("NotPermitted", f"spec.namespaceMapping: a restore in namespace {namespace} "
                              f"restores into {namespace} only")
            return spec
        if isinstance(spec, DeleteSpec):
            return spec  # its target must be this namespace's job: JobDoor checks the owner
        raise Refused("NotPermitted", f"{type(spec).__name__} jobs are an admin's, in namespace "
                      f"{self.product_namespace}")
