"""Which workflows and activities each worker pool runs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def control_workflows() -> list[type]:
    from workflows.backup import BackupWorkflow
    from workflows.plan import PlanRunWorkflow
    from workflows.slots import JobSlotsWorkflow

    return [BackupWorkflow, PlanRunWorkflow, JobSlotsWorkflow]


def control_activities() -> list[Callable[..., Any]]:
    from activities import backup, slots

    return [*backup.ACTIVITIES, *slots.ACTIVITIES]


def node_activities() -> list[Callable[..., Any]]:
    return []
