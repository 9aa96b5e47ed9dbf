"""Which workflows and activities each worker pool runs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def control_workflows() -> list[type]:
    from workflows.backup import BackupWorkflow
    from workflows.convert import ConvertWorkflow
    from workflows.delete import DeleteWorkflow
    from workflows.drill import DrillWorkflow
    from workflows.file_restore import FileRestoreWorkflow
    from workflows.plan import PlanRunWorkflow
    from workflows.restore import RestoreWorkflow
    from workflows.retention import RetentionWorkflow
    from workflows.slots import JobSlotsWorkflow
    from workflows.vault_check import VaultAvailabilityWorkflow
    from workflows.verify import VerifyWorkflow

    return [
        BackupWorkflow,
        PlanRunWorkflow,
        JobSlotsWorkflow,
        RestoreWorkflow,
        ConvertWorkflow,
        DeleteWorkflow,
        VaultAvailabilityWorkflow,
        RetentionWorkflow,
        VerifyWorkflow,
        DrillWorkflow,
        FileRestoreWorkflow,
    ]


def control_activities() -> list[Callable[..., Any]]:
    from activities import (
        backup,
        convert,
        delete,
        drill,
        ecs,
        file_restore,
        objects,
        restore,
        retention,
        settings,
        slots,
        vault,
        verify,
    )

    found: list[Callable[..., Any]] = []
    # ecs: sync activities too (the aliyun SDK blocks), on the worker's thread pool.
    for module in (settings, backup, slots, restore, convert, delete, vault, retention, ecs, objects, verify,
                   drill, file_restore):
        found.extend(module.ACTIVITIES)
    return found


def node_activities() -> list[Callable[..., Any]]:
    from activities import node

    return list(node.ACTIVITIES)
