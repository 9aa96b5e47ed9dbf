"""Which captured version of each resource a restore creates objects at.

A backup holds every object in every version the source served.  For each resource (legacy
groups folded into their successors, see :mod:`kube.restore.kinds`) the restore uses, in order:

1. a captured version the target prefers (the target's preferred version of the group);
2. another captured version the target serves, GA before beta before alpha, the successor group
   before the legacy one, newer before older (v2 > v1, v1beta2 > v1beta1);
3. none: every object of the resource fails with ``NoServedVersion``, naming the kind and the
   captured versions (an Ingress captured as extensions/v1beta1 and networking.k8s.io/v1beta1
   cannot be created on 1.22+, which serves only networking.k8s.io/v1).

Call it with the target's discovery taken after the backup's CRDs are established, so custom
resources are served.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pydantic import BaseModel

from kube.discovery import ApiResource
from kube.export import BundleIndex
from kube.restore.kinds import canonical_resource, group_resource, is_legacy_group
from schemas.errors import BackupCenterError, ErrorInfo

_VERSION = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?$")
_STABILITY = {None: 2, "beta": 1, "alpha": 0}


def version_rank(version: str) -> tuple[int, int, int]:
    """Sort key, larger is better: (stability, major, minor). Non-Kubernetes-style versions rank
    below every alpha."""
    match = _VERSION.match(version)
    if not match:
        return (-1, 0, 0)
    major, level, minor = match.groups()
    return (_STABILITY[level], int(major), int(minor or 0))


def _group_version(group: str, version: str) -> str:
    return f"{group}/{version}" if group else version


class VersionChoice(BaseModel):
    """The version one resource is restored at, or why it cannot be."""

    resource: str  # canonical group_resource, e.g. ingresses.networking.k8s.io
    kind: str
    captured: list[str]  # group/versions captured, e.g. ["extensions/v1beta1", "networking.k8s.io/v1beta1"]
    bundle: BundleIndex | None = None  # the captured bundle to read the objects from
    target: ApiResource | None = None  # the served resource to create them as

    @property
    def served(self) -> bool:
        return self.bundle is not None

    def problem(self) -> str | None:
        if self.served:
            return None
        return (f"{self.kind}: none of the captured versions ({', '.join(self.captured)}) "
                "is served by this cluster")

    def item_error(self, namespace: str, name: str) -> ErrorInfo | None:
        """The error each object of an unserved resource fails with."""
        if self.served:
            return None
        return BackupCenterError(
            "NoServedVersion", kind=self.kind, name=f"{namespace}/{name}" if namespace else name,
            versions=", ".join(self.captured),
        ).info()


def _choose(resource: str, bundles: list[BundleIndex], served: dict[tuple[str, str, str], ApiResource]
            ) -> VersionChoice:
    kind = next((b.kind for b in bundles if not is_legacy_group(b.group, b.plural)), bundles[0].kind)
    captured = sorted({_group_version(b.group, b.version) for b in bundles})
    candidates = [(b, served[(b.group, b.version, b.plural)]) for b in bundles
                  if (b.group, b.version, b.plural) in served]
    if not candidates:
        return VersionChoice(resource=resource, kind=kind, captured=captured)

    def preference(pair: tuple[BundleIndex, ApiResource]) -> tuple[bool, int, bool, tuple[int, int, int]]:
        bundle, target = pair
        rank = version_rank(bundle.version)
        return (target.preferred, rank[0], not is_legacy_group(bundle.group, bundle.plural), rank)

    bundle, target = max(candidates, key=preference)
    return VersionChoice(resource=resource, kind=kind, captured=captured, bundle=bundle, target=target)


def choose_versions(
    bundles: Iterable[BundleIndex], target: Iterable[ApiResource]
) -> dict[str, VersionChoice]:
    """One choice per resource of the backup, keyed by canonical group_resource."""
    served = {(r.group, r.version, r.plural): r for r in target}
    by_resource: dict[str, list[BundleIndex]] = {}
    for bundle in bundles:
        key = canonical_resource(group_resource(bundle.group, bundle.plural))
        by_resource.setdefault(key, []).append(bundle)
    return {key: _choose(key, found, served) for key, found in sorted(by_resource.items())}
