"""Job objects in the cluster: the custom resources (schemas/resources.py) that stand for jobs.

The job's workflow is the truth; its object is a door (``kubectl apply`` starts the job through the
controller) and a mirror: the workflow pushes the object's ``.status`` on every step transition, and
an Event on every phase change, so ``kubectl get`` and ``kubectl describe`` tell what ``backupctl
describe`` tells.  A job started by ``backupctl`` gets its object here too (annotated as started by
the CLI), so both doors show every job.
"""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime
from typing import Any

from kube.rest import Kube, KubeError, ns_path
from schemas.resources import (
    API_VERSION,
    GROUP,
    KINDS,
    STARTED_BY_ANNOTATION,
    VERSION,
    ObjectStatus,
)
from schemas.specs import JobKind

# Keys of .status the controller owns; the workflow's pushes leave them alone.
CONTROLLER_FIELDS = ("steering", "observedGeneration")


def object_path(kind: JobKind, namespace: str, name: str | None = None) -> str:
    return ns_path(API_VERSION, KINDS[kind].plural, namespace, name)


def served(kube: Kube) -> bool:
    """Whether the cluster serves the product's custom resources (deploy/crds.yaml applied)."""
    return kube.get(f"/apis/{GROUP}/{VERSION}") is not None


def install_crds(kube: Kube, crds: list[dict[str, Any]], *, timeout: float = 30.0) -> None:
    """Create or update the CRDs and wait until the API server serves them."""
    for crd in crds:
        path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd['metadata']['name']}"
        current = kube.get(path)
        if current is None:
            kube.create("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
        else:
            kube.patch(path, {"spec": crd["spec"]})
    deadline = time.monotonic() + timeout
    for crd in crds:
        path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd['metadata']['name']}"
        while True:
            conditions = ((kube.get(path) or {}).get("status") or {}).get("conditions") or []
            if any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"CRD {crd['metadata']['name']} not established within {timeout:.0f}s")
            time.sleep(0.1)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def post_event(kube: Kube, obj: dict[str, Any], *, reason: str, message: str, warning: bool) -> None:
    """A core/v1 Event about the object (what ``kubectl describe`` lists under Events)."""
    meta = obj["metadata"]
    now = _now()
    kube.create(
        f"/api/v1/namespaces/{meta['namespace']}/events",
        {
            "metadata": {"name": f"{meta['name']}.{secrets.token_hex(8)}", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": obj.get("apiVersion", API_VERSION),
                "kind": obj["kind"],
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "reason": reason,
            "message": message[:1024],
            "type": "Warning" if warning else "Normal",
            "source": {"component": "backupcenter"},
            "reportingComponent": "backupcenter",
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        },
    )


WARNING_PHASES = {"Failed", "WaitingForOperator", "PartiallyFailed"}


def publish_status(
    kube: Kube,
    kind: JobKind,
    namespace: str,
    name: str,
    status: ObjectStatus,
    *,
    mirror_spec: dict[str, Any] | None,
    previous_phase: str | None,
) -> bool:
    """Push a job's status to its object (and an Event when the phase differs from
    ``previous_phase``, the last one pushed); False when there is no object to push to any more.

    One PATCH per push: the object is read only when it is missing.  ``mirror_spec`` is given for
    jobs started by the CLI: their object is created here when missing (and when the cluster serves
    the kinds).  A controller-started job's object is the user's: once it is gone, pushing stops."""
    path = object_path(kind, namespace, name)
    new = status.model_dump(mode="json", exclude=set(CONTROLLER_FIELDS))
    obj = _patch_status(kube, path, new)
    if obj is None:
        if mirror_spec is None or not served(kube):
            return False
        body = {
            "apiVersion": API_VERSION,
            "kind": KINDS[kind].kind,
            "metadata": {
                "name": name,
                "namespace": namespace,
                "annotations": {STARTED_BY_ANNOTATION: "backupctl"},
            },
            "spec": mirror_spec,
        }
        try:
            kube.create(object_path(kind, namespace), body)
        except KubeError as err:
            if err.status == 404:
                return False  # no product namespace (deploy/namespace.yaml)
            if err.status != 409:
                raise
        obj = _patch_status(kube, path, new)
        if obj is None:
            return False
    if new["phase"] != previous_phase:
        message = new.get("message") or (f"step {new['currentStep']}" if new.get("currentStep") else "")
        reason = new["phase"]
        if new.get("error") and new["phase"] in ("Failed", "WaitingForOperator"):
            reason = new["error"]["code"]
        post_event(kube, obj, reason=reason, message=message, warning=new["phase"] in WARNING_PHASES)
    return True


def _patch_status(kube: Kube, path: str, status: dict[str, Any]) -> dict[str, Any] | None:
    """The object after its status was merged in; None when there is no such object."""
    try:
        return kube.patch(f"{path}/status", {"status": status})
    except KubeError as err:
        if err.status == 404:
            return None
        raise


def remove_object(kube: Kube, kind: JobKind, namespace: str, name: str) -> bool:
    """Delete a deleted job's object (a no-op when it is already going: the controller finishes it)."""
    path = object_path(kind, namespace, name)
    try:
        obj = kube.get(path)
    except KubeError as err:
        if err.status == 404:
            return False
        raise
    if obj is None or obj["metadata"].get("deletionTimestamp"):
        return False
    return kube.delete(path)
