"""Activities of a restore drill (workflows/drill.py): plan the scratch namespaces, check what the
drill's restore made against the backup, and remove it all again.

The drill never touches anything it did not make: scratch namespaces are new (a drill refuses a name
that exists) and only those carrying its restore's label are deleted, with the volumes their claims
held and the cluster-scoped objects its restore created.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from temporalio import activity

from activities.context import current
from activities.errors import product_errors
from activities.verify import keep_report
from kube.discovery import ApiResource
from kube.restore.context import RESTORE_LABEL
from kube.restore.explain import ItemOutcome, ItemStatus, MissingReason
from kube.restore.kinds import canonical_resource
from kube.restore.records import RestoreFolder
from schemas.drill import DrillCheck, DrillPlan, DrillReport, RemovedScratch
from schemas.errors import BackupCenterError
from schemas.specs import DrillSpec
from vault import catalog, verifications
from vault.store import ObjectNotFound

SCRATCH_GONE_SECONDS = 300.0
# Objects their controllers make and replace at will (a restored ReplicaSet deletes a restored pod it
# does not want, a Deployment a ReplicaSet): one gone after the restore is no difference.
REPLACEABLE_KINDS = frozenset({"Pod", "ReplicaSet", "ControllerRevision", "EndpointSlice", "Endpoints"})
NAMESPACES = "/api/v1/namespaces"


def scratch_namespace(namespace: str, drill: str) -> str:
    """``<namespace>-drill-<5 hex of the drill's name>``, within the 63 characters of a name."""
    tag = "-drill-" + hashlib.sha256(drill.encode()).hexdigest()[:5]
    return namespace[: 63 - len(tag)].rstrip("-") + tag


def restore_name(drill: str) -> str:
    return drill[: 63 - len("-restore")].rstrip("-") + "-restore"


@activity.defn
@product_errors
def plan_drill(spec: DrillSpec) -> DrillPlan:
    """The backup (committed), and a new scratch namespace for each of its namespaces."""
    ctx = current()
    backup = catalog.committed_backup(ctx.store(spec.vault), spec.backup, spec.vault)
    assert backup.record is not None
    if not backup.record.namespaces:
        raise BackupCenterError(
            "InvalidSpec", field="backup", reason=f"backup {spec.backup} holds no namespaces to restore"
        )
    kube = ctx.kube()
    scratch = {ns: scratch_namespace(ns, spec.name) for ns in backup.record.namespaces}
    for namespace in scratch.values():
        found = kube.get(f"{NAMESPACES}/{namespace}")
        if found is not None and not _made_by(found, restore_name(spec.name)):
            raise BackupCenterError("DrillScratchInUse", name=spec.name, namespace=namespace)
    return DrillPlan(
        backup=spec.backup,
        backup_taken_at=backup.record.completed_at,
        scratch=scratch,
        restore=restore_name(spec.name),
    )


class DrillRequest(BaseModel):
    vault: str
    plan: DrillPlan


def _made_by(obj: dict[str, Any], restore: str) -> bool:
    return ((obj.get("metadata") or {}).get("labels") or {}).get(RESTORE_LABEL) == restore


def _outcomes(request: DrillRequest) -> tuple[RestoreFolder, dict[str, ApiResource]]:
    ctx = current()
    folder = RestoreFolder.of(ctx.store(request.vault), ctx.settings.cluster_id, request.plan.restore)
    resources: dict[str, ApiResource] = {}
    for res in folder.discovery():
        key = canonical_resource(res.group_resource)
        if key not in resources or res.preferred:
            resources[key] = res
    return folder, resources


def _path(res: ApiResource, outcome: ItemOutcome) -> str:
    return f"{res.list_path(outcome.namespace or None)}/{outcome.name}"


@activity.defn
@product_errors
def check_drill(request: DrillRequest) -> DrillCheck:
    """Every object the restore says it made is there in the scratch namespaces, every claim is
    Bound; every object it could not restore is a difference.  Objects removed afterwards by their
    owners (the restore's own explanations say which) are not."""
    kube = current().kube()
    folder, resources = _outcomes(request)
    scratch = set(request.plan.scratch.values())
    gone_by_design = {
        (canonical_resource(e.resource), e.namespace, e.name)
        for e in folder.read_explanations()
        if e.name and e.reason in (MissingReason.owner_gc, MissingReason.removed)
    }
    check = DrillCheck()
    for done, outcome in enumerate(folder.read_outcomes()):
        if done % 200 == 0:
            activity.heartbeat({"checked": done})
        resource = canonical_resource(outcome.resource)
        where = f"{outcome.namespace}/{outcome.name}" if outcome.namespace else outcome.name
        check.checked[resource] = check.checked.get(resource, 0) + 1
        if outcome.status is ItemStatus.failed:
            check.differ(f"{outcome.kind} {where}: not restored: {outcome.reason}")
            continue
        if outcome.status not in (ItemStatus.created, ItemStatus.updated) or outcome.namespace not in scratch:
            continue
        res = resources.get(resource)
        if res is None:
            continue
        live = kube.get(_path(res, outcome))
        if live is None:
            if outcome.key() not in gone_by_design and outcome.kind not in REPLACEABLE_KINDS:
                check.differ(f"{outcome.kind} {where}: restored, then missing")
        elif outcome.kind == "PersistentVolumeClaim" and (live.get("status") or {}).get("phase") != "Bound":
            phase = (live.get("status") or {}).get("phase") or "no phase"
            check.differ(f"PersistentVolumeClaim {where}: {phase}, not Bound")
    return check


@activity.defn
@product_errors
def remove_scratch(request: DrillRequest) -> RemovedScratch:
    """Delete the drill's scratch namespaces (only those its restore made), wait until they are
    gone, then the volumes their claims held and the cluster-scoped objects the restore created."""
    kube = current().kube()
    removed = RemovedScratch()
    restore = request.plan.restore
    scratch = set(request.plan.scratch.values())
    # Volumes of a Retain class would outlive their claims (and their disks the PV objects): the
    # drill's own go with their claims.
    for pv in kube.list("/api/v1/persistentvolumes")[0]:
        spec = pv.get("spec") or {}
        if (spec.get("claimRef") or {}).get("namespace") in scratch and (
            spec.get("persistentVolumeReclaimPolicy") != "Delete"
        ):
            kube.patch(f"/api/v1/persistentvolumes/{pv['metadata']['name']}",
                       {"spec": {"persistentVolumeReclaimPolicy": "Delete"}})
    ours = []
    for namespace in request.plan.scratch.values():
        found = kube.get(f"{NAMESPACES}/{namespace}")
        if found is not None and _made_by(found, restore):
            ours.append(namespace)
            removed.namespaces += kube.delete(f"{NAMESPACES}/{namespace}")
    deadline = time.monotonic() + SCRATCH_GONE_SECONDS
    while (left := [n for n in ours if kube.get(f"{NAMESPACES}/{n}") is not None]):
        activity.heartbeat({"terminating": left})
        if time.monotonic() > deadline:
            raise BackupCenterError(
                "StepFailed", step="remove scratch namespaces",
                reason=f"namespace {left[0]} still terminating after {SCRATCH_GONE_SECONDS:.0f} s",
            )
        time.sleep(0.5)
    for pv in kube.list("/api/v1/persistentvolumes")[0]:
        claim = (pv.get("spec") or {}).get("claimRef") or {}
        if claim.get("namespace") in scratch:
            removed.cluster_objects += kube.delete(f"/api/v1/persistentvolumes/{pv['metadata']['name']}")
    try:
        folder, resources = _outcomes(request)
        outcomes = [o for o in folder.read_outcomes() if not o.namespace and o.status is ItemStatus.created]
    except ObjectNotFound:
        outcomes = []  # the restore never got as far as recording what it made
    for outcome in outcomes:
        res = resources.get(canonical_resource(outcome.resource))
        if res is None or res.plural == "namespaces":
            continue
        live = kube.get(_path(res, outcome))
        if live is not None and _made_by(live, restore):
            removed.cluster_objects += kube.delete(_path(res, outcome))
    return removed


class DrillDue(BaseModel):
    plan: str
    vault: str
    every_seconds: float


@activity.defn
@product_errors
def drill_due(request: DrillDue) -> bool:
    """Whether the plan's last drill (of any of its runs' backups) is ``every_seconds`` old or more."""
    store = current().store(request.vault)
    runs = re.compile(rf"{re.escape(request.plan)}-\d{{14}}")
    last = None
    for backup in catalog.list_backups(store):
        if runs.fullmatch(backup.name):
            report = verifications.latest_drill(store, backup.name)
            if report is not None and (last is None or report.finished_at > last):
                last = report.finished_at
    return last is None or (datetime.now(UTC) - last).total_seconds() >= request.every_seconds


@activity.defn
@product_errors
def record_drill(report: DrillReport) -> str:
    """Keep the drill's report with the backup; its vault key."""
    return keep_report(report)


ACTIVITIES: list[Callable[..., Any]] = [plan_drill, check_drill, remove_scratch, drill_due, record_drill]
