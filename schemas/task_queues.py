"""Task-queue names.  One control queue; one queue per node for file-level volume work."""

from __future__ import annotations

from schemas.settings import Settings


def control_queue(settings: Settings) -> str:
    return f"{settings.task_queue_prefix}-control"


def node_queue(settings: Settings, node_name: str) -> str:
    # Node names are DNS subdomains, valid in a task-queue name as they are.
    return f"{settings.task_queue_prefix}-node-{node_name}"
