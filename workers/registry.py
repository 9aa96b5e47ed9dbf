"""Which workflows and activities each worker pool runs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def control_workflows() -> list[type]:
    from workflows.backup import BackupWorkflow
    from workflows.plan import PlanRunWorkflow

    return [BackupWorkflow, PlanRunWorkflow]


def control_activities() -> list[Callable[..., Any]]:
    from activities import backup

    return [*backup.ACTIVITIES]


def node_activities() -> list[Callable[..., Any]]:
    return []
