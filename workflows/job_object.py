"""The job's side of its custom resource: push the status on every step transition.

Transitions only mark the status changed; one background loop sends the latest status, one push
at a time, so a burst of transitions costs one activity and a job never waits for its object
(the last push, at the end, is awaited: the object's final phase is then certain).  A job whose
object is gone (or whose cluster does not serve the kinds) stops pushing.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel

    from activities import objects as acts
    from schemas.resources import ObjectStatus, PublishRequest, object_spec, object_status
    from schemas.status import JobStatus

PUSH_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=3)


class ObjectMirror:
    def __init__(
        self, status: JobStatus, spec: BaseModel, namespace: str | None, product_namespace: str
    ) -> None:
        self.status = status
        self.namespace = namespace  # None: a CLI job, whose object is in the product namespace
        self.shown_namespace = namespace or product_namespace
        # A CLI job's object is created from its spec on the first push.
        self.mirror_spec: dict[str, Any] | None = object_spec(spec) if namespace is None else None
        # What the object was last told: its phase (an Event marks each change) and when each
        # condition last changed status (Kubernetes keeps lastTransitionTime until it does).
        self.pushed_phase: str | None = None
        self.transitions: dict[str, tuple[str, datetime]] = {}
        self.version = 0
        self.sent = 0
        self.closing = False
        self.enabled = True
        self.task: asyncio.Task[None] | None = None

    def changed(self) -> None:
        self.version += 1

    def start(self) -> None:
        self.task = asyncio.ensure_future(self._run())

    async def close(self) -> None:
        self.closing = True
        if self.task is not None:
            await self.task

    def _transition_times(self, status: ObjectStatus) -> None:
        now = workflow.now().replace(microsecond=0)
        for cond in status.conditions:
            prior = self.transitions.get(cond.type)
            if prior is None or prior[0] != cond.status:
                prior = self.transitions[cond.type] = (cond.status, now)
            cond.lastTransitionTime = prior[1]

    async def _run(self) -> None:
        while self.enabled:
            await workflow.wait_condition(lambda: self.version > self.sent or self.closing)
            if self.version == self.sent:
                return
            version = self.version
            status = object_status(
                self.status, workflow_id=workflow.info().workflow_id, namespace=self.shown_namespace
            )
            self._transition_times(status)
            request = PublishRequest(
                kind=self.status.kind,
                name=self.status.name,
                namespace=self.namespace,
                status=status,
                mirror_spec=self.mirror_spec,
                previous_phase=self.pushed_phase,
            )
            try:
                # An ordinary activity, not a local one: a local activity holds the workflow task open
                # until it answers, so every push would delay the job's next step (measured: make
                # test ran about twice as long); this one runs beside the job.
                self.enabled = await workflow.execute_activity(
                    acts.publish_job_object,
                    request,
                    start_to_close_timeout=timedelta(seconds=30),
                    retry_policy=PUSH_RETRY,
                    summary=f"status of {self.status.kind.value} {self.status.name}",
                )
                self.pushed_phase = status.phase
            except ActivityError as err:
                # The object is a mirror: a failed push is logged, never the job's failure; the
                # next transition pushes again.
                workflow.logger.warning("status push of %s failed: %s", self.status.name, err)
            self.sent = version
