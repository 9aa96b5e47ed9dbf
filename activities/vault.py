"""Vault activities: availability checks (sync; the worker runs them on its thread pool).

They find the cluster's vaults through a :class:`~vault.lifecycle.VaultManager`.  By default it is
built from the worker context (file registry under the state directory, credentials Secrets read
through the worker's Kubernetes client); :func:`use_manager` swaps it, e.g. for a ConfigMap-backed
registry or in tests.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from temporalio import activity

from activities import context
from activities.errors import product_errors
from schemas.vault import VaultCheckRequest, VaultCheckResult, VaultStatus
from vault.lifecycle import (
    CredentialsResolver,
    FileVaultRegistry,
    VaultManager,
    kube_secret_resolver,
    registry_dir,
)

_factory: Callable[[], VaultManager] | None = None
_lock = threading.Lock()


def use_manager(factory: Callable[[], VaultManager] | None) -> None:
    """Make activities use ``factory()`` for their VaultManager (None: back to the worker default)."""
    global _factory
    with _lock:
        _factory = factory


def _lazy_kube_resolver(ctx: context.WorkerContext, namespace: str) -> CredentialsResolver:
    # Only vaults that name a Secret need the Kubernetes API; don't connect for the others.
    resolver: CredentialsResolver | None = None

    def resolve(spec: Any) -> Any:
        nonlocal resolver
        if spec.credentials is None:
            return None
        if resolver is None:
            from kubernetes import client

            resolver = kube_secret_resolver(client.CoreV1Api(ctx.api_client()), namespace)
        return resolver(spec)

    return resolve


def default_manager() -> VaultManager:
    ctx = context.current()
    settings = ctx.settings
    return VaultManager(
        registry=FileVaultRegistry(registry_dir(ctx.state_dir)),
        cluster_id=settings.cluster_id,
        resolve_credentials=_lazy_kube_resolver(ctx, settings.product_namespace),
    )


def manager() -> VaultManager:
    with _lock:
        factory = _factory
    return (factory or default_manager)()


@activity.defn(name="vault.check")
@product_errors
def check_vault(name: str) -> VaultStatus:
    """Check one vault and record its status."""
    return manager().check(name)


@activity.defn(name="vault.check_all")
@product_errors
def check_vaults(request: VaultCheckRequest) -> list[VaultCheckResult]:
    """Check the requested vaults (default: every live one) and record their statuses."""
    statuses = manager().check_all(request.names)
    return [
        VaultCheckResult(name=name, phase=status.phase, checked_at=status.last_check_time, cause=status.cause)
        for name, status in statuses.items()
    ]


@activity.defn(name="vault.list_names")
@product_errors
def list_vault_names() -> list[str]:
    return [entry.name for entry in manager().list()]


ACTIVITIES: list[Callable[..., Any]] = [check_vault, check_vaults, list_vault_names]
