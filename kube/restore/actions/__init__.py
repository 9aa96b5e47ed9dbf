"""The registry of restore item actions and the pipeline that runs them on one object.

Every object goes through: a skip check for kinds the target cluster recreates, the generic
metadata action, the actions registered for its (group, kind), and the image action when it
holds a pod spec.  Each action is a pure function ``(object, context) -> ActionResult``; the
pipeline feeds every object an action returns to the next one, gathers warnings, and stops at
the first error or skip.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kube.restore.actions import misc
from kube.restore.actions import service as actions_service
from kube.restore.actions import storage as actions_storage
from kube.restore.actions import workloads as actions_workloads
from kube.restore.actions.meta import clean_metadata, map_subject_namespaces
from kube.restore.context import ActionResult, RestoreContext
from kube.restore.kinds import group_kind

Action = Callable[[dict[str, Any], RestoreContext], ActionResult]
GroupKind = tuple[str, str]  # (canonical group, kind); "" is the core group

RBAC = "rbac.authorization.k8s.io"

# Checked before anything else, so skipped objects cost nothing and warn about nothing.
SKIPS: dict[GroupKind, Action] = {
    ("", "Event"): misc.skip_cluster_managed,
    ("events.k8s.io", "Event"): misc.skip_cluster_managed,
    ("", "Endpoints"): misc.skip_cluster_managed,
    ("discovery.k8s.io", "EndpointSlice"): misc.skip_cluster_managed,
    ("", "Secret"): misc.secret_action,
}

KIND_ACTIONS: dict[GroupKind, tuple[Action, ...]] = {
    ("", "Namespace"): (misc.namespace_action,),
    ("", "ServiceAccount"): (misc.service_account_action,),
    ("", "Service"): (actions_service.service_action,),
    ("", "PersistentVolumeClaim"): (actions_storage.pvc_action,),
    ("", "PersistentVolume"): (actions_storage.pv_action,),
    ("", "Pod"): (actions_workloads.pod_action,),
    ("apps", "StatefulSet"): (actions_storage.claim_templates_action,),
    ("batch", "Job"): (actions_workloads.job_action,),
    ("batch", "CronJob"): (misc.isolate_action,),
    ("networking.k8s.io", "Ingress"): (misc.isolate_action,),
    (RBAC, "RoleBinding"): (map_subject_namespaces,),
    (RBAC, "ClusterRoleBinding"): (map_subject_namespaces,),
    ("apiextensions.k8s.io", "CustomResourceDefinition"): (misc.pass_through,),
}


def actions_for(obj: dict[str, Any]) -> list[Action]:
    """The actions an object goes through, in order."""
    key = group_kind(obj)
    chain: list[Action] = []
    if key in SKIPS:
        chain.append(SKIPS[key])
    chain.append(clean_metadata)
    chain += KIND_ACTIONS.get(key, ())
    if actions_workloads.has_pod_spec(obj):
        chain.append(actions_workloads.images_action)
    return chain


def run_actions(obj: dict[str, Any], ctx: RestoreContext, chain: list[Action]) -> ActionResult:
    objects = [obj]
    warnings: list[str] = []
    for action in chain:
        produced: list[dict[str, Any]] = []
        for item in objects:
            result = action(item, ctx)
            warnings += result.warnings
            if result.error is not None or result.skip_reason is not None:
                return result.model_copy(update={"objects": [], "warnings": warnings})
            produced += result.objects
        objects = produced
        if not objects:
            break
    return ActionResult(objects=objects, warnings=warnings)


def restore_item(obj: dict[str, Any], ctx: RestoreContext) -> ActionResult:
    """The object(s) to create for one backed-up object, or why it is skipped or fails.

    The input is not modified.
    """
    return run_actions(obj, ctx, actions_for(obj))
