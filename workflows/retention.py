"""Retention: a long-running sweep that deletes this cluster's expired backups.

Every ``interval`` it lists the committed backups whose TTL has passed and starts an ordinary
delete request for each (``delete-expired-<backup>``), so an expired backup is removed exactly as
an operator's ``backupctl delete backup`` would remove it, visible and steerable in the Web UI.
"""

from __future__ import annotations

import contextlib
import hashlib
from datetime import timedelta

from temporalio import workflow
from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDConflictPolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities import retention as acts
    from activities import search_attributes as sa
    from schemas.ids import job_id
    from schemas.specs import DeleteSpec, JobKind
    from workflows.delete import DeleteWorkflow
    from workflows.steps import QUICK, TRANSIENT

# Sweeps per run before continue-as-new keeps the history small.
SWEEPS_PER_RUN = 100


def request_name(backup: str) -> str:
    """``expired-<backup>``, shortened with a digest to stay a Kubernetes name."""
    name = f"expired-{backup}"
    if len(name) <= 63:
        return name
    digest = hashlib.sha256(backup.encode()).hexdigest()[:8]
    return f"{name[:54].rstrip('-')}-{digest}"


@workflow.defn
class RetentionWorkflow:
    @workflow.run
    async def run(self, interval: timedelta) -> None:
        cluster = workflow.info().typed_search_attributes.get(sa.CLUSTER) or ""
        for _ in range(SWEEPS_PER_RUN):
            expired = await workflow.execute_activity(
                acts.find_expired_backups, start_to_close_timeout=QUICK, retry_policy=TRANSIENT
            )
            for backup in expired:
                spec = DeleteSpec(
                    name=request_name(backup.name),
                    target_kind=JobKind.backup,
                    target=backup.name,
                    vault=backup.vault,
                )
                # An earlier sweep may have started this delete already: that is fine.
                with contextlib.suppress(WorkflowAlreadyStartedError):
                    await workflow.start_child_workflow(
                        DeleteWorkflow.run,
                        spec,
                        id=job_id("delete", spec.name),
                        search_attributes=sa.initial("delete", vault=backup.vault, cluster=cluster),
                        static_summary=f"retention: backup {backup.name} expired at "
                        f"{backup.expired_at:%Y-%m-%d %H:%M} UTC",
                        # The delete goes on if this sweep is continued-as-new or stopped.
                        parent_close_policy=ParentClosePolicy.ABANDON,
                    )
            await workflow.sleep(interval)
        workflow.continue_as_new(interval)


async def ensure_started(client: Client, *, task_queue: str, interval: timedelta, cluster: str) -> None:
    """Start this cluster's sweep unless it already runs (idempotent; called at worker start)."""
    await client.start_workflow(
        RetentionWorkflow.run,
        interval,
        id=f"retention-{cluster}",
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        search_attributes=TypedSearchAttributes([SearchAttributePair(sa.CLUSTER, cluster)]),
        static_summary=f"delete the expired backups of cluster {cluster}, every {interval}",
    )
