"""Activities behind job slots: talking to the slots workflow, and checking holders still run."""

from __future__ import annotations

from temporalio import activity
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from activities.context import current
from schemas.slots import SLOTS_WORKFLOW, SlotRequest, slots_id
from schemas.task_queues import control_queue


@activity.defn
async def request_slot(kind: str, holder: str, limit: int) -> None:
    """Queue ``holder`` for a slot of ``kind`` (starting the slots workflow if needed)."""
    queue = control_queue(current().settings)
    await activity.client().start_workflow(
        SLOTS_WORKFLOW,
        None,
        id=slots_id(queue, kind),
        task_queue=queue,
        start_signal="request",
        start_signal_args=[SlotRequest(holder=holder, limit=limit)],
    )


@activity.defn
async def release_slot(kind: str, holder: str) -> None:
    try:
        queue = control_queue(current().settings)
        await activity.client().get_workflow_handle(slots_id(queue, kind)).signal("release", holder)
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            raise  # a finished slots workflow holds nothing: nothing to release


@activity.defn
async def running_workflows(workflow_ids: list[str]) -> list[str]:
    """The ids among ``workflow_ids`` whose workflow still runs."""
    client = activity.client()
    alive = []
    for wid in workflow_ids:
        try:
            desc = await client.get_workflow_handle(wid).describe()
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                continue
            raise
        if desc.status == WorkflowExecutionStatus.RUNNING:
            alive.append(wid)
    return alive


ACTIVITIES = [request_slot, release_slot, running_workflows]
