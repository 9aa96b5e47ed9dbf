"""Worker process entry points: the control pool and the per-node workers."""

from __future__ import annotations

import asyncio
import logging
import signal
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import Worker

from activities import context
from schemas.task_queues import control_queue, node_queue
from workers import registry
from workers.client import connect
from workers.liveness import Liveness

log = logging.getLogger(__name__)

# Blocking SDKs (kubernetes, oss2, aliyun) run in sync activities on this many threads.
ACTIVITY_THREADS = 32
# Heartbeat details reach the server at least this often (the SDK's default waits up to 0.8 x the
# heartbeat timeout): a volume copy's files and bytes show in describe, --wait and the Web UI, and a
# few seconds' heartbeat timeout keeps several beats of slack.
HEARTBEAT_THROTTLE = timedelta(seconds=1)
# A workflow task waits this long on the queue of the worker that last ran the workflow (its cache)
# before any worker may take it: after that worker was killed, the job goes on within seconds.
STICKY_WAIT = timedelta(seconds=2)


def control_worker(client: Client, ctx: context.WorkerContext, executor: ThreadPoolExecutor) -> Worker:
    queue = control_queue(ctx.settings)
    context.install(ctx, queue)
    return Worker(
        client,
        task_queue=queue,
        workflows=registry.control_workflows(),
        activities=registry.control_activities(),
        activity_executor=executor,
        max_concurrent_activities=ACTIVITY_THREADS,
        max_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
        default_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
        sticky_queue_schedule_to_start_timeout=STICKY_WAIT,
        interceptors=[Liveness(ctx.settings.heartbeat_timeout)],
    )


def node_worker(
    client: Client, ctx: context.WorkerContext, node_name: str, executor: ThreadPoolExecutor
) -> Worker:
    queue = node_queue(ctx.settings, node_name)
    context.install(ctx, queue)
    return Worker(
        client,
        task_queue=queue,
        activities=registry.node_activities(),
        activity_executor=executor,
        # One volume job of a backup per node is enforced by placement; a few jobs of
        # different backups may share a node, at low priority.
        max_concurrent_activities=4,
        max_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
        default_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
        interceptors=[Liveness(ctx.settings.heartbeat_timeout)],
    )


async def _serve(worker: Worker) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with worker:
        log.info("worker polling %s", worker.task_queue)
        await stop.wait()


async def serve_control() -> None:
    ctx = context.from_environment()
    client = await connect(ctx.settings)
    with ThreadPoolExecutor(ACTIVITY_THREADS) as executor:
        worker = control_worker(client, ctx, executor)
        # Vault availability and backup retention are long-running workflows, not crons in a pod;
        # each worker start makes sure this cluster's run (idempotent: an existing one stays).
        from workflows import retention, vault_check

        settings = ctx.settings
        await vault_check.ensure_started(
            client,
            task_queue=worker.task_queue,
            interval=settings.vault_check_interval,
            workflow_id=f"vault-availability-{settings.cluster_id}",
        )
        await retention.ensure_started(
            client,
            task_queue=worker.task_queue,
            interval=settings.retention_sweep_interval,
            cluster=settings.cluster_id,
        )
        await _serve(worker)


async def serve_node(node_name: str, kubelet_root: str | None = None) -> None:
    ctx = context.from_environment()
    ctx.node_name = node_name
    ctx.kubelet_root_override = kubelet_root
    client = await connect(ctx.settings)
    with ThreadPoolExecutor(8) as executor:
        await _serve(node_worker(client, ctx, node_name, executor))
