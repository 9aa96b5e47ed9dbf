"""Why a restore that Completed lacks something (requirements.md §8).

``describe`` of a restore shows, for what an operator expected but does not find, one of:
not in the backup, excluded by the restore's selection, skipped (the cluster recreates it),
failed (with the error), removed afterwards by ownerReferences garbage collection, or removed
afterwards by something else.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from pydantic import BaseModel, Field

from kube.discovery import ALIASES, NEVER_BACKED_UP
from kube.export import BundleIndex, ResourceIndex
from kube.restore.actions.meta import GC_WARNING
from kube.restore.kinds import canonical_resource, group_resource
from kube.restore.selection import bundle_resource, names_resource, namespace_selected, resource_selected
from schemas.errors import ErrorInfo
from schemas.specs import RestoreSpec


class ItemStatus(StrEnum):
    created = "created"
    updated = "updated"  # existing_resource_policy=update
    exists = "exists"  # skipped: an object of that name exists (policy none)
    skipped = "skipped"  # skipped by an action, see reason
    failed = "failed"


class ItemOutcome(BaseModel):
    """What the restore did with one backed-up object; names are the target's."""

    resource: str  # group_resource as captured, e.g. deployments.apps
    kind: str
    namespace: str = ""
    name: str
    status: ItemStatus
    reason: str = ""  # why skipped or failed
    error: ErrorInfo | None = None
    warnings: list[str] = Field(default_factory=list)
    dangling_owners: list[str] = Field(
        default_factory=list,
        description="Owners left without a new uid (kube.restore.actions.meta.dangling_owners)",
    )

    def key(self) -> tuple[str, str, str]:
        return canonical_resource(self.resource), self.namespace, self.name


class MissingReason(StrEnum):
    not_in_backup = "not in backup"
    excluded = "excluded"
    skipped = "skipped"
    failed = "failed"
    owner_gc = "removed by ownerReferences GC"
    removed = "removed after restore"


class Explanation(BaseModel):
    reason: MissingReason
    resource: str = ""
    namespace: str = ""
    name: str = ""
    count: int = 0  # objects concerned, for type- and namespace-wide entries
    message: str


def _one_bundle_per_resource(index: ResourceIndex) -> list[BundleIndex]:
    """Each object is captured once per version: count it once (the source's preferred version)."""
    chosen: dict[str, BundleIndex] = {}
    for bundle in index.bundles:
        key = canonical_resource(group_resource(bundle.group, bundle.plural))
        if key not in chosen or (bundle.preferred and not chosen[key].preferred):
            chosen[key] = bundle
    return list(chosen.values())


def _not_in_backup(index: ResourceIndex, spec: RestoreSpec) -> list[Explanation]:
    found = []
    for ns in spec.include_namespaces:
        if ns not in index.namespaces:
            found.append(Explanation(reason=MissingReason.not_in_backup, namespace=ns,
                                     message=f"namespace {ns} is not in backup {index.backup}"))
    captured = [bundle_resource(b) for b in index.bundles if b.count]
    for name in spec.include_resources:
        if any(names_resource(res, [name]) for res in captured):
            continue
        resolved = ALIASES.get(name, name)
        never = any(resolved in (entry, entry.partition(".")[0]) for entry in NEVER_BACKED_UP)
        why = ("never backed up: the cluster recreates them" if never
               else f"backup {index.backup} holds no objects of this type")
        found.append(Explanation(reason=MissingReason.not_in_backup, resource=name, message=f"{name}: {why}"))
    return found


def _excluded(index: ResourceIndex, spec: RestoreSpec) -> list[Explanation]:
    found = []
    bundles = _one_bundle_per_resource(index)
    for ns in index.namespaces:
        if not namespace_selected(ns, spec):
            count = sum(b.namespaces[ns].count for b in bundles if ns in b.namespaces)
            message = f"namespace {ns} is excluded by the restore's namespace selection ({count} objects)"
            found.append(Explanation(reason=MissingReason.excluded, namespace=ns, count=count,
                                     message=message))
    for bundle in bundles:
        if resource_selected(bundle_resource(bundle), spec):
            continue
        # Count only what the namespace selection would have taken.
        count = sum(c.count for ns, c in bundle.namespaces.items() if not ns or namespace_selected(ns, spec))
        if count:
            name = group_resource(bundle.group, bundle.plural)
            found.append(Explanation(reason=MissingReason.excluded, resource=name, count=count,
                                     message=f"{name} is excluded by the restore's resource selection "
                                             f"({count} objects)"))
    return found


def _from_outcomes(outcomes: Iterable[ItemOutcome], present: set[tuple[str, str, str]] | None
                   ) -> list[Explanation]:
    found = []
    for item in outcomes:
        where = {"resource": item.resource, "namespace": item.namespace, "name": item.name}
        label = f"{item.kind} {item.namespace}/{item.name}" if item.namespace else f"{item.kind} {item.name}"
        if item.status is ItemStatus.failed:
            why = item.error.short() if item.error else item.reason or "failed"
            found.append(Explanation(reason=MissingReason.failed, **where, message=f"{label} failed: {why}"))
        elif item.status is ItemStatus.skipped:
            found.append(Explanation(reason=MissingReason.skipped, **where,
                                     message=f"{label} skipped: {item.reason or 'by the restore'}"))
        elif item.status in (ItemStatus.created, ItemStatus.updated):
            gone = present is not None and item.key() not in present
            owners = ", ".join(item.dangling_owners)
            if gone and owners:
                found.append(Explanation(reason=MissingReason.owner_gc, **where,
                                         message=f"{label} was restored, then {GC_WARNING}: its owner "
                                                 f"({owners}) was not restored or has a new uid"))
            elif gone:
                found.append(Explanation(reason=MissingReason.removed, **where,
                                         message=f"{label} was restored and deleted afterwards"))
            elif present is None and owners:
                found.append(Explanation(reason=MissingReason.owner_gc, **where,
                                         message=f"{label} may be {GC_WARNING}: its owner ({owners}) "
                                                 "was not restored or has a new uid"))
    return found


def explain_missing(
    index: ResourceIndex,
    spec: RestoreSpec,
    outcomes: Iterable[ItemOutcome],
    *,
    present: set[tuple[str, str, str]] | None = None,
) -> list[Explanation]:
    """Entries explaining what a restore did not (or no longer) put in the target cluster.

    ``present``, when given, holds (canonical group_resource, namespace, name) of the objects
    found in the target now; without it, objects that garbage collection may remove are listed
    as likely rather than confirmed.
    """
    return [*_not_in_backup(index, spec), *_excluded(index, spec), *_from_outcomes(outcomes, present)]
