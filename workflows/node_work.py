"""Work a node worker does for a job's workflow: write a file-level snapshot (or chosen paths of
one) into a mounted volume.

Shared by restore (fill pods), conversion (temporary PVCs) and file restore (a live PVC): the
activity runs on the task queue of the node where the volume is mounted, and a node whose worker
does not take the task within ``node_pickup_timeout`` is named in the error.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, TimeoutError, TimeoutType

with workflow.unsafe.imports_passed_through():
    from activities import node as node_acts
    from activities.errors import to_application_error
    from schemas.errors import BackupCenterError
    from schemas.restore import FilesRestored
    from schemas.settings import Settings
    from schemas.task_queues import node_queue


async def write_volume_files(settings: Settings, node: str, request: node_acts.VolumeRestoreRequest) -> int:
    """Returns the files written."""
    written: int = await _on_node(
        settings, node, node_acts.restore_volume_files, request,
        f"write the files of {request.volume} on node {node}",
    )
    return written


async def write_chosen_files(
    settings: Settings, node: str, request: node_acts.ChosenFilesRequest
) -> FilesRestored:
    """Chosen paths of a snapshot into a volume mounted on the node (a file restore's)."""
    written: FilesRestored = await _on_node(
        settings, node, node_acts.restore_chosen_files, request,
        f"write {len(request.paths)} chosen path(s) into {request.volume} on node {node}",
    )
    return written


async def _on_node(settings: Settings, node: str, fn: Any, request: Any, summary: str) -> Any:
    try:
        return await workflow.execute_activity(
            fn,
            request,
            task_queue=node_queue(settings, node),
            # A node whose worker is missing or broken does not take the task: say so, by name.
            schedule_to_start_timeout=settings.node_pickup_timeout,
            start_to_close_timeout=timedelta(hours=12),
            heartbeat_timeout=settings.heartbeat_timeout,
            retry_policy=RetryPolicy(maximum_attempts=3, initial_interval=timedelta(seconds=2),
                                     non_retryable_error_types=["InvalidSpec"]),
            summary=summary,
        )
    except ActivityError as err:
        if isinstance(err.cause, TimeoutError) and err.cause.type is TimeoutType.SCHEDULE_TO_START:
            raise to_application_error(
                BackupCenterError(
                    "NodeAgentMissing",
                    volume=request.volume,
                    node=node,
                    timeout=str(settings.node_pickup_timeout),
                )
            ) from None
        raise
