"""What the controller does for a job object: judge it, start its job once, steer it, delete it.

The job's workflow id is fixed by the object's kind and name (schemas/ids.py), so however many
controllers see an object, however often (two replicas, a restart, a resync), one job runs: a second
start finds the workflow and adopts it when it was started for this very object.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import kopf
from pydantic import BaseModel
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import DeleteWorkflowExecutionRequest
from temporalio.client import Client, WorkflowExecutionDescription, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from backupctl import jobctl
from backupctl.console import BadInput
from backupctl.restore_cmd import check_backup, check_file_restore
from backupctl.vault_cmd import named_store
from schemas.errors import BackupCenterError
from schemas.ids import job_id
from schemas.resources import BY_KIND, OBJECT_NAMESPACE_MEMO, ObjectSpecError, ResourceKind, spec_from_object
from schemas.settings import Settings
from schemas.specs import (
    BackupSpec,
    ConvertSpec,
    DeleteSpec,
    DrillSpec,
    FileRestoreSpec,
    JobKind,
    RestoreSpec,
    VerifySpec,
)
from schemas.status import JobStatus


class Refused(Exception):
    """What only the controller can judge (vault missing, backup unknown, a name in use): the object
    ends Failed with this message, and nothing starts."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# Request kinds: each object asks for one run; the same name applied again (after the earlier object
# went) asks again.  Clock slack between the API server's creationTimestamp and Temporal's start time.
REQUEST_KINDS = (JobKind.delete, JobKind.verify, JobKind.drill, JobKind.files)
ADOPT_SLACK = timedelta(seconds=2)
FORGET_POLLS = 50  # x 0.2 s


def _workflow(kind: JobKind) -> Any:
    from workflows.backup import BackupWorkflow
    from workflows.convert import ConvertWorkflow
    from workflows.delete import DeleteWorkflow
    from workflows.drill import DrillWorkflow
    from workflows.file_restore import FileRestoreWorkflow
    from workflows.restore import RestoreWorkflow
    from workflows.verify import VerifyWorkflow

    return {
        JobKind.backup: BackupWorkflow.run,
        JobKind.restore: RestoreWorkflow.run,
        JobKind.convert: ConvertWorkflow.run,
        JobKind.delete: DeleteWorkflow.run,
        JobKind.verify: VerifyWorkflow.run,
        JobKind.drill: DrillWorkflow.run,
        JobKind.files: FileRestoreWorkflow.run,
    }[kind]


def _summary(spec: BaseModel) -> tuple[str, str]:
    """(vault, one-line summary) of a job, as the CLI words them."""
    if isinstance(spec, BackupSpec):
        scope = ", ".join(spec.include_namespaces) or "all namespaces"
        return spec.vault, f"backup {spec.name}: {scope} → vault {spec.vault}"
    if isinstance(spec, RestoreSpec):
        return spec.vault, f"restore {spec.name}: backup {spec.backup} from vault {spec.vault}"
    if isinstance(spec, ConvertSpec):
        return spec.vault, f"convert {spec.name}: backup {spec.backup} in vault {spec.vault}"
    if isinstance(spec, VerifySpec):
        return spec.vault, f"verify backup {spec.backup} in vault {spec.vault}"
    if isinstance(spec, DrillSpec):
        return spec.vault, f"restore drill of backup {spec.backup} in vault {spec.vault}"
    if isinstance(spec, FileRestoreSpec):
        return spec.vault, f"restore files of {spec.volume} from backup {spec.backup} into {spec.target}"
    assert isinstance(spec, DeleteSpec)
    return spec.vault or "", f"delete {spec.target_kind.value} {spec.target}"


def _precheck(spec: BaseModel) -> tuple[str, Callable[[], object]] | None:
    """The checks the CLI makes before it starts a job (the API server cannot make them), with the
    field they judge."""
    if isinstance(spec, BackupSpec):
        vault = spec.vault
        return "spec.vault", lambda: named_store(vault)
    if isinstance(spec, RestoreSpec | ConvertSpec | VerifySpec | DrillSpec):
        backup, vault = spec.backup, spec.vault
        return "spec.backup", lambda: check_backup(backup, vault)
    if isinstance(spec, FileRestoreSpec):
        chosen = spec
        return "spec.paths", lambda: check_file_restore(chosen)
    return None


def delete_request_name(kind: JobKind, name: str) -> str:
    """The DeleteRequest a deleted job object asks for: ``<name>-dbr`` (backup), ``-drr``, ``-dcr``."""
    suffix = {JobKind.backup: "-dbr", JobKind.restore: "-drr", JobKind.convert: "-dcr"}[kind]
    return name[: 63 - len(suffix)].rstrip("-") + suffix


class JobDoor:
    def __init__(self, client: Client, settings: Settings) -> None:
        self.client = client
        self.settings = settings

    async def describe(self, kind: JobKind, name: str) -> WorkflowExecutionDescription | None:
        try:
            return await self.client.get_workflow_handle(job_id(kind.value, name)).describe()
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return None
            raise

    async def _owner(self, desc: WorkflowExecutionDescription) -> str:
        """The namespace of the object a job was started for (a CLI job's is the product namespace)."""
        namespace = await desc.memo_value(OBJECT_NAMESPACE_MEMO, None, type_hint=str)
        return namespace or self.settings.product_namespace

    async def start(
        self, obj: dict[str, Any], *, narrow: Callable[[BaseModel, str], BaseModel] | None = None
    ) -> str:
        """Start the object's job, or adopt the one already started for it: its workflow id.
        Refused says why not."""
        rk: ResourceKind = BY_KIND[obj["kind"]]
        jk = rk.job_kind
        assert jk is not None, f"{rk.kind} is not a job"
        namespace, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
        wid = job_id(jk.value, name)
        existing = await self.describe(jk, name)
        if existing is not None and await self._asks_again(jk, existing, obj):
            await self._forget_and_wait(jk, name)
            existing = None
        if existing is not None:
            if await self._owner(existing) == namespace:
                return wid
            raise Refused(
                "NameInUse",
                f"metadata.name: a {jk.value} job named {name} already exists for another "
                f"namespace ({await self._owner(existing)}); job names are unique per cluster: pick another",
            )
        try:
            spec = spec_from_object(obj)
        except ObjectSpecError as err:
            raise Refused("InvalidSpec", str(err)) from None
        if narrow is not None:
            # A tenant's object: its job as it may run, or refused (controller/tenancy.py).
            spec = await asyncio.to_thread(narrow, spec, namespace)
            if isinstance(spec, DeleteSpec) and not await self.owns(spec.target_kind, spec.target, namespace):
                raise Refused("NotPermitted", f"spec.target: no {spec.target_kind.value} {spec.target} was "
                              f"made from namespace {namespace}")
        precheck = _precheck(spec)
        if precheck is not None:
            field, check = precheck
            try:
                await asyncio.to_thread(check)
            except BadInput as err:
                raise Refused("InvalidSpec", f"{field}: {err}") from None
        vault, summary = _summary(spec)
        try:
            await jobctl.start_job(
                self.client,
                self.settings,
                jk.value,
                name,
                _workflow(jk),
                spec,
                vault=vault,
                summary=summary,
                memo={OBJECT_NAMESPACE_MEMO: namespace},
            )
        except BackupCenterError as err:
            if err.code != "NameInUse":
                raise
            # Another controller started it between our look and our start: the same job.
            return await self.start(obj, narrow=narrow)
        return wid

    async def _asks_again(
        self, jk: JobKind, existing: WorkflowExecutionDescription, obj: dict[str, Any]
    ) -> bool:
        """Whether a request object (DeleteRequest, BackupVerification) made anew under the name of
        an earlier one, whose job has finished, asks for the job again: then the earlier execution
        goes and a new job starts.  A job started for this very object (after it was created) is
        adopted instead, and data jobs (backups, restores, conversions) free their names only through
        their deletion."""
        if jk not in REQUEST_KINDS or existing.status == WorkflowExecutionStatus.RUNNING:
            return False
        if await self._owner(existing) != obj["metadata"]["namespace"]:
            return False
        created = datetime.fromisoformat(obj["metadata"]["creationTimestamp"].replace("Z", "+00:00"))
        return existing.start_time is not None and existing.start_time < created - ADOPT_SLACK

    async def _forget_and_wait(self, jk: JobKind, name: str) -> None:
        """Delete the earlier execution and wait until Temporal no longer has it (deletion is
        asynchronous: a start before that would meet the old id and refuse)."""
        try:
            await self.forget(jk, name)
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
        for _ in range(FORGET_POLLS):
            if await self.describe(jk, name) is None:
                return
            await asyncio.sleep(0.2)
        raise kopf.TemporaryError(f"the earlier {jk.value} job {name} is still being removed", delay=2)

    async def forget(self, kind: JobKind, name: str) -> None:
        """Delete a finished job's workflow execution, which frees its name."""
        await self.client.workflow_service.delete_workflow_execution(
            DeleteWorkflowExecutionRequest(
                namespace=self.client.namespace,
                workflow_execution=WorkflowExecution(workflow_id=job_id(kind.value, name)),
            )
        )

    async def signal(self, kind: JobKind, name: str, signal: str) -> None:
        await jobctl.signal_job(self.client, kind.value, name, signal)

    async def status(self, kind: JobKind, name: str) -> JobStatus | None:
        try:
            return await jobctl.job_status(self.client, kind.value, name)
        except BackupCenterError as err:
            if err.code == "NotFound":
                return None
            raise

    async def running(self, kind: JobKind, name: str) -> bool:
        desc = await self.describe(kind, name)
        return desc is not None and desc.status == WorkflowExecutionStatus.RUNNING

    async def owns(self, kind: JobKind, name: str, namespace: str) -> bool:
        """Whether the job of that name exists and was started for the object in ``namespace``."""
        desc = await self.describe(kind, name)
        return desc is not None and await self._owner(desc) == namespace


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
