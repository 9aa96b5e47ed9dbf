"""What a restore takes from a backup: namespaces and resource types, and the namespace mapping.

Names are the backup's (source) namespaces; the mapping renames them on the way in.  Resource
types match like backup selections do (plural, group-qualified plural, kind, short name, or an
alias such as ``pvc``, see :func:`kube.discovery.matches`), and a name of a moved kind matches
both groups (``deployments.apps`` selects what a 1.15 backup captured as
``deployments.extensions``).  Namespace objects are always taken for the selected namespaces:
the objects restored into them need them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kube.discovery import ApiResource, matches
from kube.export import BundleIndex, ResourceIndex
from kube.restore.kinds import canonical_resource, group_resource
from schemas.common import check_dns_label
from schemas.errors import BackupCenterError
from schemas.specs import RestoreSpec


def _canonical(resource: ApiResource) -> ApiResource:
    plural, _, group = canonical_resource(resource.group_resource).partition(".")
    return resource.model_copy(update={"group": group, "plural": plural})


def bundle_resource(bundle: BundleIndex, target: Iterable[ApiResource] = ()) -> ApiResource:
    """An ApiResource for a captured bundle; short names come from the target's discovery."""
    name = group_resource(bundle.group, bundle.plural)
    short: list[str] = []
    for res in target:
        if res.group_resource in (name, canonical_resource(name)) and res.short_names:
            short = list(res.short_names)
            break
    return ApiResource(group=bundle.group, version=bundle.version, plural=bundle.plural, kind=bundle.kind,
                       namespaced=bundle.namespaced, short_names=short, preferred=bundle.preferred)


def names_resource(resource: ApiResource, names: list[str]) -> bool:
    """Whether a type list names this resource, in its own group or its successor's."""
    return matches(resource, names) or matches(_canonical(resource), names)


def resource_selected(resource: ApiResource, spec: RestoreSpec) -> bool:
    if resource.plural == "namespaces" and not resource.group:
        return True
    if spec.include_resources and not names_resource(resource, spec.include_resources):
        return False
    return not (spec.exclude_resources and names_resource(resource, spec.exclude_resources))


def namespace_selected(namespace: str, spec: RestoreSpec) -> bool:
    if spec.include_namespaces:
        return namespace in spec.include_namespaces
    return namespace not in spec.exclude_namespaces


def item_selected(obj: dict[str, Any], resource: ApiResource, spec: RestoreSpec) -> bool:
    """Whether one backed-up object is restored (by its type and its source namespace)."""
    if not resource_selected(resource, spec):
        return False
    meta = obj.get("metadata") or {}
    if resource.plural == "namespaces" and not resource.group:
        return namespace_selected(meta.get("name", ""), spec)
    if resource.namespaced:
        return namespace_selected(meta.get("namespace", ""), spec)
    if resource.plural == "persistentvolumes" and not resource.group:
        # A bound volume goes with its claim's namespace.
        claim_ns = ((obj.get("spec") or {}).get("claimRef") or {}).get("namespace")
        return not claim_ns or namespace_selected(claim_ns, spec)
    return True


def selected_bundles(index: ResourceIndex, spec: RestoreSpec, target: Iterable[ApiResource] = ()
                     ) -> list[BundleIndex]:
    """The bundles whose type the restore selects (namespaces are filtered per object)."""
    known = list(target)
    return [b for b in index.bundles if resource_selected(bundle_resource(b, known), spec)]


def validate_namespace_mapping(spec: RestoreSpec, index: ResourceIndex) -> list[str]:
    """Raise ``InvalidSpec`` for mapping mistakes; return warnings for risky but valid mappings."""
    problems: list[str] = []
    in_backup = set(index.namespaces)
    for source, target in sorted(spec.namespace_mapping.items()):
        if source not in in_backup:
            held = ", ".join(sorted(in_backup)) or "no namespaces"
            problems.append(f"namespace {source} is not in backup {index.backup} (it holds {held})")
        elif not namespace_selected(source, spec):
            problems.append(f"namespace {source} is mapped but the restore's namespace selection excludes it")
        try:
            check_dns_label(target)
        except ValueError as exc:
            problems.append(f"target of {source}: {exc}")
    if problems:
        raise BackupCenterError(
            "InvalidSpec", field="namespace_mapping", reason="; ".join(problems)
        ).as_final()

    warnings: list[str] = []
    restored = [ns for ns in sorted(in_backup) if namespace_selected(ns, spec)]
    landing: dict[str, list[str]] = {}
    for ns in restored:
        landing.setdefault(spec.namespace_mapping.get(ns, ns), []).append(ns)
    for target, sources in sorted(landing.items()):
        if len(sources) > 1:
            warnings.append(f"namespaces {', '.join(sources)} are all restored into {target}: "
                            "objects with the same kind and name will clash")
    return warnings
