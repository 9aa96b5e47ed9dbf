"""Actions for every kind: server-set fields, status, namespaces, restore labels, owners."""

from __future__ import annotations

from typing import Any

from kube.restore.context import BACKUP_ANNOTATION, RESTORE_LABEL, ActionResult, RestoreContext
from kube.restore.kinds import describe

# Set by the API server for the object it stored; meaningless (or rejected) on create elsewhere.
SERVER_SET_FIELDS = ("uid", "resourceVersion", "creationTimestamp", "generation", "selfLink",
                     "managedFields", "deletionTimestamp", "deletionGracePeriodSeconds")

GC_WARNING = "removed by ownerReferences GC"


def copied(value: Any) -> Any:
    """A deep copy of JSON data (faster than copy.deepcopy: no memo, only dicts and lists)."""
    if isinstance(value, dict):
        return {k: copied(v) for k, v in value.items()}
    if isinstance(value, list):
        return [copied(v) for v in value]
    return value


def owner_key(kind: str, namespace: str, name: str) -> str:
    """The key of :attr:`RestoreContext.owner_uids`."""
    return f"{kind}/{namespace}/{name}"


def _rebind_owners(meta: dict[str, Any], ctx: RestoreContext) -> list[str]:
    """Point ownerReferences at owners already restored; return the owners left dangling."""
    dangling = []
    namespace = meta.get("namespace", "")
    for ref in meta.get("ownerReferences") or []:
        kind, name = ref.get("kind", ""), ref.get("name", "")
        uid = ctx.owner_uids.get(owner_key(kind, namespace, name)) or ctx.owner_uids.get(
            owner_key(kind, "", name))
        if uid:
            ref["uid"] = uid
        else:
            dangling.append(f"{kind} {name}")
    return dangling


def dangling_owners(obj: dict[str, Any], ctx: RestoreContext) -> list[str]:
    """Owners (``Kind name``) of a restored object that the context gives no new uid for: garbage
    collection deletes the object when the owner is missing or was recreated with another uid."""
    return _rebind_owners(copied(obj.get("metadata") or {}), ctx)


def clean_metadata(obj: dict[str, Any], ctx: RestoreContext) -> ActionResult:
    obj = copied(obj)
    meta = obj.setdefault("metadata", {})
    for name in SERVER_SET_FIELDS:
        meta.pop(name, None)
    # The target's controllers write status anew; creating with the old one is at best ignored.
    obj.pop("status", None)
    if meta.get("namespace"):
        meta["namespace"] = ctx.map_namespace(meta["namespace"])
    meta["labels"] = {**(meta.get("labels") or {}), RESTORE_LABEL: ctx.restore_name}
    meta["annotations"] = {**(meta.get("annotations") or {}), BACKUP_ANNOTATION: ctx.backup_name}

    warnings = []
    # Owner references are kept (a controller adopts its restored children), but a child whose
    # owner uid no longer exists is deleted by the garbage collector after the restore.
    dangling = _rebind_owners(meta, ctx)
    if dangling:
        warnings.append(
            f"{describe(obj)} is owned by {', '.join(dangling)}: it may be {GC_WARNING} when the owner "
            "is not restored or is recreated with a new uid (a restored controller recreates its children)"
        )
    return ActionResult.keep(obj, warnings)


def map_subject_namespaces(obj: dict[str, Any], ctx: RestoreContext) -> ActionResult:
    """RoleBinding and ClusterRoleBinding subjects (service accounts) follow their namespace."""
    if not ctx.namespace_mapping or not obj.get("subjects"):
        return ActionResult.keep(obj)
    obj = copied(obj)
    for subject in obj["subjects"]:
        if subject.get("namespace"):
            subject["namespace"] = ctx.map_namespace(subject["namespace"])
    return ActionResult.keep(obj)
