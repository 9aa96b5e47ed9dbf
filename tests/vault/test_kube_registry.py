"""The in-cluster vault registry (ConfigMaps) behaves as the file registry: exclusive names,
status updates on live entries only, tombstones that keep the name."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from kube.rest import Kube
from kube.vault_registry import KubeVaultRegistry
from schemas.vault import VaultPhase, VaultStatus
from vault.lifecycle import VaultManager

pytestmark = pytest.mark.cluster


def test_lifecycle_on_configmaps(kube_cluster: Any, tmp_path: Any) -> None:
    kube = Kube(kube_cluster.api_client())
    namespace = f"reg-{uuid.uuid4().hex[:6]}"
    registry = KubeVaultRegistry(kube, namespace)
    manager = VaultManager(registry=registry, cluster_id="c1")
    entry = manager.create({"name": "main", "url": f"file://{tmp_path}"})
    assert entry.status.phase is VaultPhase.available
    assert [e.name for e in registry.list()] == ["main"]
    assert registry.add(entry) is False  # the name is taken

    down = VaultStatus(phase=VaultPhase.unavailable, cause="bucket does not exist",
                       last_check_time=datetime.now(UTC))
    assert registry.set_status("main", down) is not None
    assert registry.get("main").status.cause == "bucket does not exist"  # type: ignore[union-attr]

    manager.delete("main")
    assert registry.set_status("main", down) is None  # tombstones take no status
    with pytest.raises(Exception, match="main"):
        manager.create({"name": "main", "url": f"file://{tmp_path}"})
    cm = kube.get(f"/api/v1/namespaces/{namespace}/configmaps/vault-main")
    assert cm is not None and cm["metadata"]["labels"] == {"backupcenter.io/vault": "main"}
