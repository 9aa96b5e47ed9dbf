"""Restore and delete end to end: the session's in-process product workers (cluster A, from
tests.product_fixtures), and on demand a second local cluster B with its own control and node
workers, sharing A's file vault directory and snapshot store (one "region")."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from activities import context
from localdev.devenv import workers_in_process
from localdev.kube.controlplane import LocalCluster
from schemas.settings import SettingsProvider
from tests.product_fixtures import SETTINGS, Product


@pytest.fixture(scope="session")
def cluster_b(kube_cluster: Any) -> Iterator[LocalCluster]:
    if not isinstance(kube_cluster, LocalCluster) or kube_cluster.agent is None:
        pytest.skip("a second cluster needs the local backend")
    with LocalCluster(agent="thread", snapshot_store=kube_cluster.layout.snapshot_store) as other:
        yield other


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def product_b(temporal_env: WorkflowEnvironment, cluster_b: LocalCluster, product_state: dict[str, Any],
                    tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Product]:
    state = tmp_path_factory.mktemp("product-b-state")
    settings_path = state / "settings.yaml"
    settings_path.write_text(SETTINGS.format(cluster="cluster-b", prefix=f"tb{uuid.uuid4().hex[:6]}"))
    ctx = context.WorkerContext(
        settings_provider=SettingsProvider.from_file(settings_path, min_interval=0),
        state_dir=state,
        kubeconfig=str(cluster_b.kubeconfig_path),
    )
    # Cluster B attaches to the same location: the vault is shared, its backups are offered here.
    ctx.vaults().create({"name": "main", "url": f"file://{product_state['vault_dir']}"})
    async with workers_in_process(temporal_env.client, ctx):
        yield Product(temporal_env.client, ctx, "main", product_state["vault_dir"], ctx.kube(), settings_path)
