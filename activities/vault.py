"""Vault activities: availability checks (sync; the worker runs them on its thread pool).

They find the cluster's vaults through a :class:`~vault.lifecycle.VaultManager`: by default the
worker context's (:meth:`activities.context.WorkerContext.vaults`); :func:`use_manager` swaps it,
e.g. in tests.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from temporalio import activity

from activities import context
from activities.errors import product_errors
from schemas.vault import VaultCheckRequest, VaultCheckResult, VaultStatus
from vault.lifecycle import VaultManager

_factory: Callable[[], VaultManager] | None = None
_lock = threading.Lock()


def use_manager(factory: Callable[[], VaultManager] | None) -> None:
    """Make activities use ``factory()`` for their VaultManager (None: back to the worker default)."""
    global _factory
    with _lock:
        _factory = factory


def default_manager() -> VaultManager:
    """The worker's own VaultManager (registry and credentials as the worker context sets them up)."""
    manager: VaultManager = context.current().vaults()
    return manager


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
