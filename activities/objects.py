"""Activities that keep a job's custom resource in step with the job (kube/job_objects.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from temporalio import activity

from activities.context import current
from activities.errors import product_errors
from kube import job_objects
from schemas.resources import PublishRequest
from schemas.specs import JobKind


@activity.defn
@product_errors
def publish_job_object(request: PublishRequest) -> bool:
    """Push the job's status (and an Event on a phase change) to its object; False: stop pushing."""
    ctx = current()
    namespace = request.namespace or ctx.settings.product_namespace
    mirror = request.mirror_spec if request.namespace is None else None
    return job_objects.publish_status(
        ctx.kube(),
        request.kind,
        namespace,
        request.name,
        request.status,
        mirror_spec=mirror,
        previous_phase=request.previous_phase,
    )


@activity.defn
@product_errors
def remove_job_object(kind: JobKind, name: str, namespace: str | None) -> bool:
    """Delete the object of a job whose name a delete request freed (its own namespace, else the
    product namespace)."""
    ctx = current()
    kube = ctx.kube()
    if not job_objects.served(kube):
        return False
    return job_objects.remove_object(kube, kind, namespace or ctx.settings.product_namespace, name)


ACTIVITIES: list[Callable[..., Any]] = [publish_job_object, remove_job_object]
