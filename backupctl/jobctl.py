"""What every job kind's commands share: start with a unique name, describe, signal, wait."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text
from temporalio.client import Client, WorkflowExecutionDescription, WorkflowExecutionStatus, WorkflowHandle
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from activities import search_attributes as sa
from backupctl.console import BadInput, console
from schemas.errors import BackupCenterError
from schemas.ids import job_id
from schemas.settings import Settings
from schemas.specs import JobKind
from schemas.status import JobPhase, JobStatus, Progress
from schemas.task_queues import control_queue

EXIT_PARTIAL = 3  # PartiallyFailed: usable, but some items failed
EXIT_WAITING = 4  # --wait returned while the job waits for an operator (retry, skip or cancel it)


async def start_job(
    client: Client,
    settings: Settings,
    kind: str,
    name: str,
    workflow_run: Any,
    spec: Any,
    *,
    vault: str = "",
    summary: str,
    memo: dict[str, Any] | None = None,
) -> WorkflowHandle[Any, Any]:
    """Start a job; a name used before (running or finished, not deleted) is refused.  ``memo``: the
    job's custom resource, when the controller starts it for one (schemas/resources.py)."""
    wid = job_id(kind, name)
    try:
        desc = await client.get_workflow_handle(wid).describe()
        raise BackupCenterError(
            "NameInUse",
            kind=kind,
            name=name,
            detail=f"workflow {wid} is {desc.status.name if desc.status else 'known'}",
        )
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            raise
    try:
        return await client.start_workflow(
            workflow_run,
            spec,
            id=wid,
            task_queue=control_queue(settings),
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=sa.initial(kind, vault=vault, cluster=settings.cluster_id),
            static_summary=summary,
            memo=memo,
        )
    except WorkflowAlreadyStartedError:
        raise BackupCenterError("NameInUse", kind=kind, name=name) from None


async def job_exists(client: Client, kind: str, name: str) -> bool:
    """Whether a job of that name has a workflow execution (running or finished, not deleted)."""
    try:
        await client.get_workflow_handle(job_id(kind, name)).describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    return True


async def job_status(client: Client, kind: str, name: str) -> JobStatus:
    handle = client.get_workflow_handle(job_id(kind, name), result_type=JobStatus)
    try:
        desc = await handle.describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise BackupCenterError("NotFound", kind=kind, name=name) from None
        raise
    if desc.status == WorkflowExecutionStatus.COMPLETED:
        result: JobStatus = await handle.result()
        return result
    if desc.status == WorkflowExecutionStatus.RUNNING:
        status: JobStatus = await handle.query("status", result_type=JobStatus)
        copies = await _live_copies(client, desc)
        return with_live_copies(status, copies, datetime.now(UTC)) if copies else status
    # Terminated or timed out by Temporal itself: no status of ours to show.
    return JobStatus.model_validate(
        {
            "kind": kind,
            "name": name,
            "phase": JobPhase.failed.value,
            "error": {
                "code": "StepFailed",
                "kind": "JobError",
                "message": f"workflow {desc.status.name if desc.status else 'ended'}",
            },
        }
    )


COPY_ACTIVITIES = ("backup_volume_files", "restore_volume_files")
MIB = 1 << 20


class LiveCopy(BaseModel):
    """A volume copy running on a node worker, as its latest heartbeat tells."""

    volume: str
    files_done: int = 0
    files_total: int = 0
    bytes_done: int = 0
    bytes_total: int = 0
    started_at: datetime | None = None


async def _live_copies(client: Client, desc: WorkflowExecutionDescription) -> list[LiveCopy]:
    copies = []
    for pending in desc.raw_description.pending_activities:
        if pending.activity_type.name not in COPY_ACTIVITIES or not pending.heartbeat_details.payloads:
            continue
        details = (await client.data_converter.decode(pending.heartbeat_details.payloads))[0]
        if not isinstance(details, dict) or "volume" not in details:
            continue
        started = pending.last_started_time.ToDatetime(UTC) if pending.HasField("last_started_time") else None
        copies.append(LiveCopy.model_validate({**details, "started_at": started}))
    return copies


def copy_progress(copy: LiveCopy, now: datetime) -> str:
    """``files, MiB (percent), MiB/s, ETA`` of one running copy."""
    text = f"copying {copy.volume}: {copy.files_done}/{copy.files_total} files, "
    text += f"{copy.bytes_done / MIB:.0f}/{copy.bytes_total / MIB:.0f} MiB"
    if copy.bytes_total:
        text += f" ({100 * copy.bytes_done // copy.bytes_total}%)"
    seconds = (now - copy.started_at).total_seconds() if copy.started_at else 0.0
    if seconds > 0 and copy.bytes_done:
        rate = copy.bytes_done / seconds
        text += f", {rate / MIB:.1f} MiB/s"
        if copy.bytes_total > copy.bytes_done:
            text += f", ETA {int((copy.bytes_total - copy.bytes_done) / rate) + 1} s"
    return text


def with_live_copies(status: JobStatus, copies: list[LiveCopy], now: datetime) -> JobStatus:
    """The status with each running volume copy's progress on its step (``volume <ns>/<pvc>``,
    ``convert <ns>/<pvc>``, else the current step): bytes as the step's progress, files, rate and
    ETA in its message.  The workflow itself never sees heartbeats; describe and --wait do."""
    status = status.model_copy(deep=True)
    for copy in copies:
        step = next((s for s in status.steps if s.name.endswith(f" {copy.volume}")), None)
        if step is None and status.current_step:
            step = status.step(status.current_step)
        if step is None:
            continue
        total = copy.bytes_total // MIB or None
        step.progress = Progress(done=copy.bytes_done // MIB, total=total, unit="MiB")
        live = copy_progress(copy, now)
        step.message = f"{step.message}; {live}" if step.message else live
    return status


async def signal_job(client: Client, kind: str, name: str, signal: str) -> None:
    handle = client.get_workflow_handle(job_id(kind, name))
    try:
        await handle.signal(signal)
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise BackupCenterError("NotFound", kind=f"running {kind}", name=name) from None
        raise


def render(status: JobStatus) -> Group:
    table = Table(
        "step",
        "state",
        "attempts",
        "progress",
        "message",
        title=f"{status.kind} {status.name}: [bold]{status.phase.value}[/bold]",
    )
    for step in status.steps:
        message = step.error.short() if step.error else (step.message or "")
        table.add_row(
            step.name,
            step.state.value,
            str(step.attempts),
            step.progress.render() if step.progress else "",
            message,
        )
    parts: list[Any] = [table]
    if status.error:
        lines = [f"Error {status.error.code}: {status.error.short()}"]
        if status.error.detail:
            lines.append(f"  detail: {status.error.detail}")
        lines += [f"  cause: {c}" for c in status.error.causes]
        lines += [f"  fix:   {f}" for f in status.error.fixes]
        if status.phase is JobPhase.waiting_for_operator:
            lines.append(f"  then: backupctl {status.kind} retry|skip|cancel {status.name}")
        parts.append(Text("\n".join(lines)))
    if status.item_errors_total:
        parts.append(
            Text(
                f"Item errors ({status.item_errors_total}):\n"
                + "\n".join(f"  {i.item}: {i.message}" for i in status.item_errors)
            )
        )
    if status.warnings_total:
        parts.append(
            Text(
                f"Warnings ({status.warnings_total}):\n"
                + "\n".join(f"  {i.item}: {i.message}" for i in status.warnings)
            )
        )
    if status.summary:
        parts.append(Text("Summary: " + ", ".join(f"{k}={v}" for k, v in status.summary.items())))
    return Group(*parts)


async def wait_job(
    client: Client, kind: str, name: str, *, live: bool = True, through_operator_waits: bool = False
) -> JobStatus:
    """Follow a job until it finishes, showing its step table as it changes.  A job that waits for an
    operator is returned as it is (a script must not hang on it), unless ``through_operator_waits``."""

    def done(status: JobStatus) -> bool:
        waiting = status.phase is JobPhase.waiting_for_operator and not through_operator_waits
        return status.phase.finished or waiting

    status = await job_status(client, kind, name)
    if not live:
        while not done(status):
            await asyncio.sleep(0.5)
            status = await job_status(client, kind, name)
        return status
    with Live(render(status), console=console, refresh_per_second=4, transient=False) as view:
        while not done(status):
            await asyncio.sleep(0.5)
            status = await job_status(client, kind, name)
            view.update(render(status))
    if status.phase is JobPhase.waiting_for_operator:
        console.print(
            f"{kind} {name} waits for an operator at step {status.current_step!r}: "
            f"`backupctl {kind} describe {name}`, then `backupctl {kind} retry|skip|cancel {name}` "
            f"(exit code {EXIT_WAITING}; --keep-following waits through it)",
            soft_wrap=True,
        )
    return status


def exit_code(status: JobStatus) -> int:
    if status.phase is JobPhase.completed:
        return 0
    if status.phase is JobPhase.partially_failed:
        return EXIT_PARTIAL
    if status.phase is JobPhase.waiting_for_operator:
        return EXIT_WAITING
    return 1


def visibility_query(kind: str | None, phase: str | None) -> str:
    clauses = [f"{sa.JOB_KIND.name} IS NOT NULL"]
    if kind:
        if kind not in {k.value for k in JobKind}:
            raise BadInput(f"--kind: {kind!r} is not one of {', '.join(k.value for k in JobKind)}")
        clauses.append(f"{sa.JOB_KIND.name} = '{kind}'")
    if phase:
        if phase not in {p.value for p in JobPhase}:
            raise BadInput(f"--phase: {phase!r} is not one of {', '.join(p.value for p in JobPhase)}")
        clauses.append(f"{sa.PHASE.name} = '{phase}'")
    return " AND ".join(clauses)


def print_job_list(kind: str, phase: str | None) -> None:
    """``<kind> list``: the jobs of one kind on this cluster, newest first."""
    from backupctl.asyncrun import with_client

    query = visibility_query(kind, phase)

    async def go(client: Client) -> list[tuple[str, ...]]:
        rows: list[tuple[str, ...]] = []
        async for wf in client.list_workflows(query, limit=500):
            attrs = wf.typed_search_attributes
            rows.append(
                (
                    wf.id.removeprefix(f"{kind}-"),
                    attrs.get(sa.PHASE) or "",
                    attrs.get(sa.STEP) or "",
                    attrs.get(sa.VAULT) or "",
                    f"{wf.start_time:%Y-%m-%d %H:%M:%S}",
                )
            )
        return rows

    table = Table("name", "phase", "step", "vault", "started (UTC)")
    for row in with_client(go):
        table.add_row(*row)
    console.print(table)
