"""What activities share within one worker process: settings, the Kubernetes API, state paths.

A worker installs one :class:`WorkerContext` at start; activities read it with :func:`current`.
Tests install their own, pointing at the local cluster and a temporary vault.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from schemas.settings import Settings, SettingsProvider

if TYPE_CHECKING:
    from vault.store import ObjectStore


@dataclass
class WorkerContext:
    settings_provider: SettingsProvider
    state_dir: Path
    kubeconfig: str | None = None
    node_name: str | None = None
    kubelet_root_override: str | None = None
    _api_client: Any = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def settings(self) -> Settings:
        # Re-read on every use: a changed ConfigMap or file applies without a restart.
        return self.settings_provider.current()

    @property
    def kubelet_root(self) -> Path:
        """Node workers read volumes here; symlinked roots are resolved (clusters move them)."""
        raw = (
            self.kubelet_root_override
            or os.environ.get("KUBELET_ROOT_PATH")
            or self.settings.kubelet_root_path
        )
        return Path(raw).resolve()

    def api_client(self) -> Any:
        """A kubernetes ApiClient (thread-safe to share), created on first use."""
        with self._lock:
            if self._api_client is None:
                from kubernetes import client, config

                if self.kubeconfig:
                    cfg = client.Configuration()
                    config.load_kube_config(config_file=self.kubeconfig, client_configuration=cfg)
                else:
                    cfg = client.Configuration()
                    try:
                        config.load_incluster_config(client_configuration=cfg)
                    except config.ConfigException:
                        config.load_kube_config(client_configuration=cfg)
                # Room for the activity thread pool's parallel requests.
                cfg.connection_pool_maxsize = 32
                self._api_client = client.ApiClient(cfg)
            return self._api_client

    def kube(self) -> Any:
        from kube.rest import Kube

        return Kube(self.api_client())

    def vaults(self) -> Any:
        """The cluster's vault manager: registry per the vault_registry setting; Secret
        credentials read through the cluster only when a vault names a Secret."""
        from kubernetes.client import CoreV1Api

        from kube.vault_registry import KubeVaultRegistry
        from schemas.vault import VaultSpec
        from vault.credentials import OssCredentials
        from vault.lifecycle import (
            FileVaultRegistry,
            VaultManager,
            VaultRegistry,
            kube_secret_resolver,
            registry_dir,
        )

        settings = self.settings
        registry: VaultRegistry
        if settings.vault_registry.value == "kubernetes":
            registry = KubeVaultRegistry(self.kube(), settings.product_namespace)
        else:
            registry = FileVaultRegistry(registry_dir(self.state_dir))

        def resolve(spec: VaultSpec) -> OssCredentials | None:
            if spec.credentials is None:
                return None  # the ALIBABA_CLOUD_* environment, read by the store itself
            return kube_secret_resolver(CoreV1Api(self.api_client()), settings.product_namespace)(spec)

        return VaultManager(registry=registry, cluster_id=settings.cluster_id, resolve_credentials=resolve)

    def store(self, vault: str) -> ObjectStore:
        """The named vault's object store; store failures become product errors naming the cause."""
        from vault.store import product_errors_of_store

        with product_errors_of_store():
            store: ObjectStore = self.vaults().store(vault)
        return store


# One context per task queue: a process may run several workers (tests do; so could a pod serving
# two clusters), and an activity finds its own worker's context through its task queue.
_by_queue: dict[str, WorkerContext] = {}


def install(ctx: WorkerContext, task_queue: str) -> None:
    _by_queue[task_queue] = ctx


def uninstall(task_queue: str) -> None:
    _by_queue.pop(task_queue, None)


def current() -> WorkerContext:
    from temporalio import activity

    try:
        queue = activity.info().task_queue
    except RuntimeError:
        raise RuntimeError("no worker context: activities run inside a product worker") from None
    try:
        return _by_queue[queue]
    except KeyError:
        raise RuntimeError(f"no worker context installed for task queue {queue}") from None


def from_environment() -> WorkerContext:
    return WorkerContext(
        settings_provider=SettingsProvider.from_environment(),
        state_dir=Path(os.environ.get("BACKUPCENTER_STATE_DIR", ".dev")).absolute(),
        kubeconfig=os.environ.get("KUBECONFIG"),
    )
