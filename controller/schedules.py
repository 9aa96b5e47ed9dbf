"""BackupSchedule objects are backup plans, that is Temporal Schedules: creating one creates the
schedule, a changed spec (cycle, template, ``paused``) updates it, deleting it deletes it (its
backups stay, with their retention).  Status: the cycle, the last run and its result, the next run."""

from __future__ import annotations

import asyncio
from typing import Any

import kopf
from temporalio.client import Client, ScheduleAlreadyRunningError, ScheduleUpdate, ScheduleUpdateInput
from temporalio.service import RPCError, RPCStatusCode

from backupctl.console import BadInput
from backupctl.plan_cmd import build_schedule
from backupctl.vault_cmd import named_store
from controller.handlers import plain
from kube import job_objects
from kube.rest import Kube
from schemas.ids import plan_schedule_id
from schemas.resources import GROUP, SCHEDULE, VERSION, ObjectSpecError, ScheduleStatus, spec_from_object
from schemas.settings import Settings
from schemas.specs import PlanSpec
from schemas.status import JobStatus


class Schedules:
    def __init__(self, client: Client, settings: Settings, kube: Kube) -> None:
        self.client = client
        self.settings = settings
        self.kube = kube

    async def _plan(self, obj: dict[str, Any], patch: kopf.Patch) -> PlanSpec | None:
        """The object's plan, or None after refusing it (status Failed and an Event)."""
        problem: tuple[str, str] | None = None
        if obj["metadata"]["namespace"] != self.settings.product_namespace:
            problem = ("InvalidSpec", f"metadata.namespace: BackupSchedules live in the product namespace "
                       f"{self.settings.product_namespace}")
        else:
            try:
                plan = spec_from_object(obj)
                assert isinstance(plan, PlanSpec)
                vault = plan.template.vault
                await asyncio.to_thread(named_store, vault)
                return plan
            except ObjectSpecError as err:
                problem = ("InvalidSpec", str(err))
            except BadInput as err:
                problem = ("InvalidSpec", f"spec.template.vault: {err}")
        code, message = problem
        patch.status["phase"] = "Failed"
        patch.status["message"] = message
        await asyncio.to_thread(job_objects.post_event, self.kube, obj, reason=code, message=message,
                                warning=True)
        return None

    async def create(self, body: Any, patch: kopf.Patch, **_: Any) -> None:
        obj = plain(body)
        plan = await self._plan(obj, patch)
        if plan is None:
            return
        schedule = build_schedule(plan, self.settings)
        try:
            await self.client.create_schedule(plan_schedule_id(plan.name), schedule)
        except ScheduleAlreadyRunningError:
            await self._update(plan)  # made before (a resume, another replica): make it match
        self._state(patch, plan, obj)

    async def update(self, body: Any, patch: kopf.Patch, **_: Any) -> None:
        obj = plain(body)
        plan = await self._plan(obj, patch)
        if plan is None:
            return
        await self._update(plan)
        self._state(patch, plan, obj)

    async def _update(self, plan: PlanSpec) -> None:
        schedule = build_schedule(plan, self.settings)

        def change(_: ScheduleUpdateInput) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=schedule)

        await self.client.get_schedule_handle(plan_schedule_id(plan.name)).update(change)

    @staticmethod
    def _state(patch: kopf.Patch, plan: PlanSpec, obj: dict[str, Any]) -> None:
        patch.status["phase"] = "Paused" if plan.paused else "Active"
        patch.status["cycle"] = plan.cycle
        paused = " (paused)" if plan.paused else ""
        patch.status["message"] = f"backup plan {plan.name}: {plan.cycle}{paused}"
        patch.status["observedGeneration"] = obj["metadata"].get("generation")

    async def refresh(self, body: Any, patch: kopf.Patch, **_: Any) -> None:
        obj = plain(body)
        old = obj.get("status") or {}
        if old.get("phase") in (None, "Failed"):
            return
        try:
            desc = await self.client.get_schedule_handle(plan_schedule_id(obj["metadata"]["name"])).describe()
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return
            raise
        info = desc.info
        paused = desc.schedule.state.paused
        fresh = ScheduleStatus(
            runs=info.num_actions,
            skipped=info.num_actions_skipped_overlap,
            nextRun=None if paused or not info.next_action_times else info.next_action_times[0],
        )
        if info.recent_actions:
            last = info.recent_actions[-1]
            fresh.lastRunAt = last.started_at
            fresh.lastRun, fresh.lastResult = await self._outcome(last.action.workflow_id)  # type: ignore[attr-defined]
        values = fresh.model_dump(mode="json", exclude={"phase", "message", "cycle", "observedGeneration"})
        if any(old.get(k) != v for k, v in values.items()):
            patch.status.update(values)

    async def _outcome(self, run_id: str) -> tuple[str, str]:
        """(backup job, its phase) of a plan run, or (the run, Running) while it goes."""
        handle = self.client.get_workflow_handle(run_id, result_type=JobStatus)
        desc = await handle.describe()
        if desc.status is not None and desc.status.name == "COMPLETED":
            result: JobStatus = await handle.result()
            return result.name, result.phase.value
        return run_id, (desc.status.name.title() if desc.status else "Unknown")

    async def delete(self, body: Any, **_: Any) -> None:
        obj = plain(body)
        if (obj.get("status") or {}).get("phase") == "Failed":
            return
        try:
            await self.client.get_schedule_handle(plan_schedule_id(obj["metadata"]["name"])).delete()
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise

    def register(self, registry: kopf.OperatorRegistry) -> None:
        res = (GROUP, VERSION, SCHEDULE.plural)
        kopf.on.create(*res, id="create", registry=registry)(self.create)
        kopf.on.resume(*res, id="resume", registry=registry)(self.create)
        kopf.on.update(*res, id="update", field="spec", registry=registry)(self.update)
        kopf.timer(*res, id="runs", interval=5.0, idle=1.0, registry=registry)(self.refresh)
        kopf.on.delete(*res, id="delete", registry=registry)(self.delete)
