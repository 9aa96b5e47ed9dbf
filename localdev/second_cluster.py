"""A second local cluster, in another region, with its own product workers in this process.

The demo restores its backup here to show what the product is for: the first cluster is gone, a
new one (another region, another cluster id) attaches to the same vault and gets the application
back.  Its disk driver shares the first cluster's snapshot store and ECS endpoint, as two regions
of one cloud account do; its snapshots are only usable after the restore copies them across.
Everything it starts is stopped, and its state removed, when the context ends.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from kubernetes.client import ApiClient
from temporalio.client import Client

from activities import context
from localdev import ecs_process
from localdev.devenv import workers_in_process
from localdev.kube.controlplane import LocalCluster
from schemas.settings import Settings, SettingsProvider

CLUSTER_ID = "second"
REGION = "cn-beijing"


@dataclass
class SecondCluster:
    cluster: LocalCluster
    settings: Settings

    def api_client(self) -> ApiClient:
        return self.cluster.api_client()


def _settings_text(ecs: ecs_process.LocalEcs | None, product_namespace: str) -> str:
    lines = [
        f"cluster_id: {CLUSTER_ID}",
        f"task_queue_prefix: {CLUSTER_ID}",
        f"product_namespace: {product_namespace}",
    ]
    if ecs is not None:
        lines += [
            "enable_ecs_snapshot: true",
            f"ecs_endpoint: {ecs.endpoint}",
            f"cloud_credentials_secret: {ecs_process.CREDENTIALS_SECRET}",
        ]
    return "\n".join(lines) + "\n"


@asynccontextmanager
async def second_cluster(
    client: Client,
    *,
    vault_name: str,
    vault_url: str,
    snapshot_store: Path,
    ecs: ecs_process.LocalEcs | None,
    product_namespace: str,
) -> AsyncIterator[SecondCluster]:
    state = Path(tempfile.mkdtemp(prefix="backupcenter-second-"))
    try:
        with LocalCluster(
            agent="thread",
            snapshot_store=snapshot_store,
            region=REGION,
            ecs_endpoint=ecs.endpoint if ecs else None,
            name="backupcenter-second",
        ) as cluster:
            if ecs is not None:
                ecs_process.install_credentials(cluster.kubeconfig_path, product_namespace, ecs)
            settings_path = state / "settings.yaml"
            settings_path.write_text(_settings_text(ecs, product_namespace))
            ctx = context.WorkerContext(
                settings_provider=SettingsProvider.from_file(settings_path, min_interval=0),
                state_dir=state,
                kubeconfig=str(cluster.kubeconfig_path),
            )
            # The new cluster attaches to the same vault location: the first cluster's backups show up.
            ctx.vaults().create({"name": vault_name, "url": vault_url})
            async with workers_in_process(client, ctx):
                yield SecondCluster(cluster, ctx.settings)
    finally:
        shutil.rmtree(state, ignore_errors=True)
