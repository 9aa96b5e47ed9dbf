"""A file restore as a durable workflow: ``backupctl restore files … --to-pvc ns/pvc[:subdir]``.

find the files and the volume → wait for the volume mounted → write the files → remove the
temporary pod

Chosen paths of a volume's file-level copy go into a PVC that may be in use: the node worker of
the node where a running pod mounts it writes them through that mount (or, when no pod mounts it,
through a temporary pod this job makes and removes).  Only the chosen paths are written; files
already there are kept unless ``overwrite``.  Nothing else of the PVC, and nothing of the backup,
changes; a bad choice (a path the backup lacks, one leaving the volume) is refused before any pod.
"""

from __future__ import annotations

from datetime import timedelta
from typing import ClassVar

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities import file_restore as acts
    from activities import node as node_acts
    from activities import restore as restore_acts
    from schemas.errors import ErrorInfo
    from schemas.restore import FileRestorePlan, FilesRestored, FileTarget
    from schemas.settings import Settings
    from schemas.specs import FileRestoreSpec, JobKind
    from schemas.status import ItemIssue, JobStatus
    from workflows.job import JobWorkflow
    from workflows.node_work import write_chosen_files
    from workflows.steps import QUICK, JobRunner, act, produced


STEP_PLAN = "find the files and the volume"
STEP_MOUNT = "wait for the volume mounted"
STEP_WRITE = "write the files"
STEP_REMOVE = "remove the temporary pod"
REMOVE_TIMEOUT = timedelta(minutes=2)


@workflow.defn
class FileRestoreWorkflow(JobWorkflow[FileRestoreSpec]):
    """Canceled or failed, it removes its temporary pod; files already written stay (each one
    whole: the data mover writes a file under a temporary name and renames it when complete)."""

    kind: ClassVar[JobKind] = JobKind.files
    slot_setting: ClassVar[str] = "restore_max_workers"

    def __init__(self) -> None:
        super().__init__()
        self._name = ""

    @workflow.run
    async def run(self, spec: FileRestoreSpec) -> JobStatus:
        return await self.run_job(spec)

    def prepare(self, spec: FileRestoreSpec, settings: Settings) -> list[str]:
        self._name = spec.name
        self._status.summary.update({
            "backup": spec.backup, "vault": spec.vault, "volume": spec.volume, "target": spec.target,
            "paths": ", ".join(spec.paths), "overwrite": spec.overwrite,
        })
        return [STEP_PLAN, STEP_MOUNT, STEP_WRITE, STEP_REMOVE]

    async def runbook(self, spec: FileRestoreSpec, settings: Settings, runner: JobRunner) -> None:
        plan: FileRestorePlan = produced(
            await runner.step(STEP_PLAN, lambda: act(acts.plan_file_restore, spec)), STEP_PLAN
        )
        how = "a temporary pod" if plan.temporary_pod else f"pod {plan.mount.pod}"
        runner.status.step(STEP_PLAN).message = (
            f"{len(plan.paths)} path(s) in snapshot {plan.snapshot_id}; {spec.target} mounted by {how}"
        )

        bind = settings.pvc_bind_timeout
        request = restore_acts.FillRequest(volumes=[plan.mount], timeout_seconds=bind.total_seconds())
        targets: list[FileTarget] = produced(
            await runner.step(STEP_MOUNT, lambda: act(
                restore_acts.wait_file_pods, request, timeout=bind + QUICK, non_retryable=["ResourceTimeout"],
                summary=f"wait for {spec.target_namespace}/{spec.target_pvc} mounted by {how}",
            )),
            STEP_MOUNT,
        )
        target = targets[0]
        runner.status.step(STEP_MOUNT).message = f"mounted on node {target.node} (pod {target.pod})"

        chosen = node_acts.ChosenFilesRequest(
            vault=spec.vault, snapshot_id=plan.snapshot_id, target_pod_uid=target.pod_uid,
            plugin_dir=target.plugin_dir, pv=target.pv, volume=f"{spec.target_namespace}/{spec.target_pvc}",
            paths=plan.paths, subdir=spec.subdir, overwrite=spec.overwrite,
        )
        written: FilesRestored = produced(
            await runner.step(STEP_WRITE, lambda: write_chosen_files(settings, target.node, chosen)),
            STEP_WRITE,
        )
        kept = f", {written.kept_existing} already there kept" if written.kept_existing else ""
        runner.status.step(STEP_WRITE).message = (
            f"{written.files} file(s), {written.dirs} dir(s), {written.bytes} bytes written{kept}"
        )
        runner.status.summary.update({"files": written.files, "bytes": written.bytes,
                                      "kept_existing": written.kept_existing})
        for warning in written.warnings:
            runner.status.add_warning(ItemIssue(item=spec.target, message=warning))

        removed = produced(await runner.step(STEP_REMOVE, self._remove), STEP_REMOVE)
        runner.status.step(STEP_REMOVE).message = "removed" if removed else "none was made"

    async def _remove(self) -> int:
        removed: int = await act(acts.remove_mount_pod, self._name, timeout=REMOVE_TIMEOUT,
                                 summary="delete the temporary pod, if one was made")
        return removed

    async def cleanup(self, *, canceled: bool, error: ErrorInfo | None) -> None:
        try:
            await self._remove()
        except Exception as err:
            self._status.add_warning(ItemIssue(item=f"pods/{self._name}", message=f"not removed: {err}"))
