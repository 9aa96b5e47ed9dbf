"""The order a restore creates resources in: phases, each complete before the next starts.

CRDs come first and must be established before anything else (their custom resources are
restored in the last phase), then namespaces, then storage (so volumes are bound and filled
before the workloads that mount them), then what pods reference (accounts, secrets, config,
RBAC, quotas), then the workloads, then what routes traffic to them, then everything else.
Inside a phase the listed order is kept (a PV before its claim, a snapshot before the claim
restored from it); resources the table does not know go to the last phase, sorted.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum

from kube.restore.kinds import canonical_resource


class Phase(IntEnum):
    crds = 0
    namespaces = 1
    storage = 2
    config = 3
    workloads = 4
    network = 5
    rest = 6


_TABLE: dict[Phase, tuple[str, ...]] = {
    Phase.crds: ("customresourcedefinitions.apiextensions.k8s.io",),
    Phase.namespaces: ("namespaces",),
    Phase.storage: (
        "storageclasses.storage.k8s.io",
        "volumesnapshotclasses.snapshot.storage.k8s.io",
        "volumesnapshotcontents.snapshot.storage.k8s.io",
        "volumesnapshots.snapshot.storage.k8s.io",
        "persistentvolumes",
        "persistentvolumeclaims",
    ),
    Phase.config: (
        "priorityclasses.scheduling.k8s.io",  # pods naming a missing priority class are rejected
        "serviceaccounts",
        "secrets",
        "configmaps",
        "roles.rbac.authorization.k8s.io",
        "clusterroles.rbac.authorization.k8s.io",
        "rolebindings.rbac.authorization.k8s.io",
        "clusterrolebindings.rbac.authorization.k8s.io",
        "limitranges",
        "resourcequotas",
    ),
    Phase.workloads: (
        "deployments.apps",
        "statefulsets.apps",
        "daemonsets.apps",
        "replicasets.apps",
        "replicationcontrollers",
        "jobs.batch",
        "cronjobs.batch",
        "pods",
    ),
    Phase.network: (
        "services",
        "ingressclasses.networking.k8s.io",
        "ingresses.networking.k8s.io",
    ),
}

_POSITION: dict[str, tuple[Phase, int]] = {
    name: (phase, index) for phase, names in _TABLE.items() for index, name in enumerate(names)
}


def phase_of(group_resource: str) -> Phase:
    return _POSITION.get(canonical_resource(group_resource), (Phase.rest, 0))[0]


def order_groups(group_resources: Iterable[str]) -> list[list[str]]:
    """The given resources (group_resource names, legacy groups allowed) grouped into phases, in
    restore order; empty phases are left out (use :func:`phase_of` to tell which is which)."""
    phases: dict[Phase, list[str]] = {}
    for name in dict.fromkeys(group_resources):  # de-duplicated, first occurrence kept
        phases.setdefault(phase_of(name), []).append(name)

    def within(name: str) -> tuple[int, str]:
        return _POSITION.get(canonical_resource(name), (Phase.rest, len(_POSITION)))[1], name

    return [sorted(phases[phase], key=within) for phase in sorted(phases)]
