"""The controller's kopf handlers: job objects start, steer and delete their jobs.

Status is not polled here: each job's workflow pushes its object's ``.status`` on step transitions
(kube/job_objects.py).  The controller writes only what it decides itself — the workflow id it
started, a refusal, the acknowledgement of a steering annotation — so its cost does not grow with
the number of objects, and a controller restart loses nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import kopf

from controller.jobs import JobDoor, Refused, delete_request_name, now
from controller.tenancy import Tenancy
from kube import job_objects
from kube.rest import Kube
from schemas.resources import (
    API_VERSION,
    BY_KIND,
    GROUP,
    KINDS,
    STARTED_BY_ANNOTATION,
    STEER_ANNOTATION,
    VERSION,
    job_conditions,
)
from schemas.specs import JobKind
from schemas.status import JobPhase

# Kinds whose deletion deletes the job's data through a DeleteRequest (a finalizer holds the object
# until the request completed).
DATA_KINDS = (JobKind.backup, JobKind.restore, JobKind.convert)


def plain(value: Any) -> Any:
    """A kopf body (mapping views) as plain dicts and lists."""
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


class Controller:
    def __init__(self, door: JobDoor, kube: Kube, tenancy: Tenancy) -> None:
        self.door = door
        self.kube = kube
        self.tenancy = tenancy

    async def _event(self, obj: dict[str, Any], reason: str, message: str, *, warning: bool) -> None:
        await asyncio.to_thread(job_objects.post_event, self.kube, obj, reason=reason, message=message,
                                warning=warning)

    async def _refuse(self, obj: dict[str, Any], patch: kopf.Patch, code: str, message: str,
                      *, phase: str = "Failed") -> None:
        patch.status["phase"] = phase
        patch.status["message"] = message
        patch.status["error"] = {"code": code, "message": message, "causes": [], "fixes": []}
        patch.status["observedGeneration"] = obj["metadata"].get("generation")
        patch.status["conditions"] = [
            {**c.model_dump(mode="json"), "lastTransitionTime": now()} for c in job_conditions(phase, message)
        ]
        await self._event(obj, code, message, warning=True)

    # --- handlers ---------------------------------------------------------------------------
    async def start(self, body: Any, patch: kopf.Patch, **_: Any) -> None:
        obj = plain(body)
        status = obj.get("status") or {}
        if status.get("workflowId") or status.get("phase"):
            return  # started (or refused) before: a resume or a second replica
        annotations = obj["metadata"].get("annotations") or {}
        if annotations.get(STARTED_BY_ANNOTATION) == "backupctl":
            return  # the object of a CLI job: its workflow made it
        if (obj.get("spec") or {}).get("cancel"):
            await self._refuse(obj, patch, "Canceled", "created with spec.cancel: true; nothing started",
                               phase="Canceled")
            return
        tenant = self.tenancy.is_tenant(obj["metadata"]["namespace"])
        try:
            workflow_id = await self.door.start(obj, narrow=self.tenancy.narrow if tenant else None)
        except Refused as refused:
            await self._refuse(obj, patch, refused.code, refused.message)
            return
        patch.status["workflowId"] = workflow_id
        patch.status["observedGeneration"] = obj["metadata"].get("generation")

    async def cancel(self, body: Any, new: Any, patch: kopf.Patch, **_: Any) -> None:
        obj = plain(body)
        jk = _job(obj)
        name, namespace = obj["metadata"]["name"], obj["metadata"]["namespace"]
        if not new or not await self.door.owns(jk, name, namespace):
            return
        if await self.door.running(jk, name):
            await self.door.signal(jk, name, "cancel")
            await self._event(obj, "CancelRequested", "spec.cancel: true: the job stops and removes what "
                              "it made", warning=False)
        patch.status["observedGeneration"] = obj["metadata"].get("generation")

    async def steer(self, body: Any, new: Any, patch: kopf.Patch, **_: Any) -> None:
        obj = plain(body)
        jk = _job(obj)
        name, namespace = obj["metadata"]["name"], obj["metadata"]["namespace"]
        value = str(new or "")
        if not value or ((obj.get("status") or {}).get("steering") or {}).get("value") == value:
            return
        action = value.split("-", 1)[0]
        result = await self._steer(jk, name, namespace, action, value)
        patch.status["steering"] = {"value": value, "action": action, "result": result, "at": now()}
        await self._event(obj, "Steering", f"{STEER_ANNOTATION}={value}: {result}",
                          warning=not result.startswith("sent"))

    async def _steer(self, jk: JobKind, name: str, namespace: str, action: str, value: str) -> str:
        if action not in ("retry", "skip"):
            return f"refused: {value!r} is neither retry nor skip (retry-<n> gives the same decision again)"
        if not await self.door.owns(jk, name, namespace):
            return "ignored: no job was started for this object"
        status = await self.door.status(jk, name)
        if status is None or status.phase is not JobPhase.waiting_for_operator:
            phase = status.phase.value if status else "unknown"
            return f"ignored: the job is {phase}, not WaitingForOperator"
        step = status.step(status.current_step) if status.current_step else None
        if action == "skip" and (step is None or not step.skippable):
            return f"refused: step {status.current_step!r} cannot be skipped; retry it or set spec.cancel"
        await self.door.signal(jk, name, action)
        return f"sent {action} to step {status.current_step!r}"

    async def delete(self, body: Any, **_: Any) -> None:
        """Hold the object until its data is deleted: cancel a running job, then a DeleteRequest.

        The DeleteRequest is looked at first: deleting a backup frees its job name (the backup's
        workflow execution goes) a moment before the request completes, so "no job of ours" alone
        would let the object go while its data is still being deleted."""
        obj = plain(body)
        jk = _job(obj)
        name, namespace = obj["metadata"]["name"], obj["metadata"]["namespace"]
        request = delete_request_name(jk, name)
        path = job_objects.object_path(JobKind.delete, namespace, request)
        found = await asyncio.to_thread(self.kube.get, path)
        if found is not None and not found["metadata"].get("deletionTimestamp"):
            if _created(found) < _created(obj):
                # Left from an earlier object of this name (made before this one existed): it goes,
                # and this object's own request is made on the next pass.
                await asyncio.to_thread(self.kube.delete, path)
                raise kopf.TemporaryError(f"DeleteRequest {request} was for an earlier {name}", delay=2)
            status = found.get("status") or {}
            phase = status.get("phase")
            if phase == JobPhase.completed.value:
                return
            if phase in (JobPhase.failed.value, JobPhase.canceled.value):
                raise kopf.TemporaryError(
                    f"DeleteRequest {request} {phase}: {status.get('message')}. Fix the cause, then "
                    f"`kubectl -n {namespace} delete deleterequest {request}` to try again",
                    delay=30,
                )
            raise kopf.TemporaryError(f"waiting for DeleteRequest {request} ({phase or 'starting'})", delay=2)
        if found is not None:
            raise kopf.TemporaryError(f"the earlier DeleteRequest {request} is going", delay=2)
        if not await self.door.owns(jk, name, namespace):
            return  # nothing of ours to delete (deleted already, or never started)
        if await self.door.running(jk, name):
            await self.door.signal(jk, name, "cancel")
            raise kopf.TemporaryError("canceling the running job before its data is deleted", delay=2)
        body_ = {
            "apiVersion": API_VERSION,
            "kind": KINDS[JobKind.delete].kind,
            "metadata": {"name": request, "namespace": namespace},
            "spec": {"targetKind": jk.value, "target": name},
        }
        collection = job_objects.object_path(JobKind.delete, namespace)
        await asyncio.to_thread(self.kube.create, collection, body_, exist_ok=True)
        raise kopf.TemporaryError(f"deleting its data: DeleteRequest {request} created", delay=2)

    # --- registration -----------------------------------------------------------------------
    def register(self, registry: kopf.OperatorRegistry) -> None:
        for rk in KINDS.values():
            res = (GROUP, VERSION, rk.plural)
            kopf.on.create(*res, id="start", registry=registry)(self.start)
            kopf.on.resume(*res, id="resume", registry=registry)(self.start)
            kopf.on.field(*res, id="steer", field=("metadata", "annotations", STEER_ANNOTATION),
                          registry=registry)(self.steer)
            if rk.job_kind in DATA_KINDS:
                kopf.on.field(*res, id="cancel", field="spec.cancel", registry=registry)(self.cancel)
                kopf.on.delete(*res, id="delete-data", registry=registry)(self.delete)


def _created(obj: dict[str, Any]) -> str:
    """The creation time as the API server writes it (RFC 3339, UTC, whole seconds: sorts as text)."""
    return str(obj["metadata"].get("creationTimestamp") or "")


def _job(obj: dict[str, Any]) -> JobKind:
    job_kind = BY_KIND[obj["kind"]].job_kind
    assert job_kind is not None, f"{obj['kind']} is not a job"
    return job_kind
