"""A product control worker, in this process, against the session's real Temporal and cluster."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from activities import context
from kube.rest import Kube
from localdev.devenv import workers_in_process
from schemas.settings import Settings, SettingsProvider

SETTINGS = """
cluster_id: {cluster}
task_queue_prefix: {prefix}
snapshot_ready_timeout: 8s
operator_wait_timeout: 10m
node_pickup_timeout: 3s
"""


@dataclass
class Product:
    client: Client
    ctx: context.WorkerContext
    vault: str
    vault_dir: Path
    kube: Kube
    settings_path: Path

    @property
    def settings(self) -> Settings:
        return self.ctx.settings


def worker_context(
    settings_path: Path, state_dir: Path, kubeconfig: str | Path, *, min_interval: float = 0
) -> context.WorkerContext:
    """The context the product's workers build for a cluster and a settings file (re-read at once when
    the tests edit it, unless ``min_interval`` says otherwise): the one way tests set a product up."""
    return context.WorkerContext(
        settings_provider=SettingsProvider.from_file(settings_path, min_interval=min_interval),
        state_dir=state_dir,
        kubeconfig=str(kubeconfig),
    )


@pytest.fixture(scope="session")
def product_state(tmp_path_factory: pytest.TempPathFactory, kube_cluster: Any) -> Iterator[dict[str, Any]]:
    state = tmp_path_factory.mktemp("product-state")
    settings_path = state / "settings.yaml"
    prefix = f"t{uuid.uuid4().hex[:6]}"
    settings_path.write_text(SETTINGS.format(cluster="cluster-a", prefix=prefix))
    ctx = worker_context(settings_path, state, kube_cluster.kubeconfig_path)
    vault_dir = state / "vault-data"
    vault_dir.mkdir()
    ctx.vaults().create({"name": "main", "url": f"file://{vault_dir}"})
    yield {"ctx": ctx, "vault_dir": vault_dir, "settings_path": settings_path}


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def product(temporal_env: WorkflowEnvironment, product_state: dict[str, Any]) -> AsyncIterator[Product]:
    ctx = product_state["ctx"]
    async with workers_in_process(temporal_env.client, ctx):
        yield Product(
            temporal_env.client,
            ctx,
            "main",
            product_state["vault_dir"],
            ctx.kube(),
            product_state["settings_path"],
        )
