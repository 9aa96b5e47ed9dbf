"""API discovery: every group, every served version, every listable resource.

A backup captures each object in every version the cluster serves (a Deployment on 1.16 is
stored as extensions/v1beta1, apps/v1beta1, apps/v1beta2 and apps/v1), so that a restore
into an older or newer cluster can pick the version that cluster prefers.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel

from kube.rest import Kube


class ApiResource(BaseModel):
    group: str  # "" for the core group
    version: str
    plural: str
    kind: str
    namespaced: bool
    short_names: list[str] = []
    preferred: bool = False  # the group's preferred version

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_resource(self) -> str:
        """``deployments.apps``, or ``configmaps`` for the core group."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def list_path(self, namespace: str | None = None) -> str:
        prefix = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        return prefix + (f"/namespaces/{namespace}" if namespace else "") + f"/{self.plural}"


def _resources_of(kube: Kube, group: str, version: str, preferred: bool) -> list[ApiResource]:
    path = f"/apis/{group}/{version}" if group else f"/api/{version}"
    doc = kube.get(path) or {}
    found: list[ApiResource] = []
    for res in doc.get("resources", []):
        name = res.get("name", "")
        verbs = set(res.get("verbs", []))
        # Subresources (pods/log, deployments/scale) are not objects of their own.
        if "/" in name or not {"list", "create"} <= verbs:
            continue
        found.append(
            ApiResource(
                group=group,
                version=version,
                plural=name,
                kind=res["kind"],
                namespaced=bool(res.get("namespaced")),
                short_names=list(res.get("shortNames", [])),
                preferred=preferred,
            )
        )
    return found


def discover(kube: Kube) -> list[ApiResource]:
    """All listable, creatable resources in all served versions, preferred versions marked."""
    resources: list[ApiResource] = []
    core = kube.get("/api") or {}
    for version in core.get("versions", ["v1"]):
        resources += _resources_of(kube, "", version, preferred=True)
    groups = kube.get("/apis") or {}
    for group in groups.get("groups", []):
        preferred = group.get("preferredVersion", {}).get("version")
        for gv in group.get("versions", []):
            resources += _resources_of(kube, group["name"], gv["version"], gv["version"] == preferred)
    return resources


# Objects a backup never captures: they are recreated by the cluster itself, or describe
# transient state that means nothing in another cluster.
NEVER_BACKED_UP = frozenset(
    {
        "events",
        "events.events.k8s.io",
        "nodes",
        "leases.coordination.k8s.io",
        "endpoints",
        "endpointslices.discovery.k8s.io",
        "componentstatuses",
        "bindings",
        "tokenreviews.authentication.k8s.io",
        "selfsubjectreviews.authentication.k8s.io",
        "localsubjectaccessreviews.authorization.k8s.io",
        "selfsubjectaccessreviews.authorization.k8s.io",
        "selfsubjectrulesreviews.authorization.k8s.io",
        "subjectaccessreviews.authorization.k8s.io",
        "certificatesigningrequests.certificates.k8s.io",
        "apiservices.apiregistration.k8s.io",
        "flowschemas.flowcontrol.apiserver.k8s.io",
        "prioritylevelconfigurations.flowcontrol.apiserver.k8s.io",
        "volumeattachments.storage.k8s.io",
        "csinodes.storage.k8s.io",
        "ipaddresses.networking.k8s.io",
        "servicecidrs.networking.k8s.io",
        # Snapshot objects are recreated from the backup's own snapshot records.
        "volumesnapshots.snapshot.storage.k8s.io",
        "volumesnapshotcontents.snapshot.storage.k8s.io",
    }
)

# Friendly names accepted in resource include/exclude lists.
ALIASES = {
    "pvc": "persistentvolumeclaims",
    "pv": "persistentvolumes",
    "cm": "configmaps",
    "svc": "services",
    "ns": "namespaces",
    "sa": "serviceaccounts",
    "deploy": "deployments.apps",
    "sts": "statefulsets.apps",
    "ds": "daemonsets.apps",
    "ing": "ingresses.networking.k8s.io",
    "crd": "customresourcedefinitions.apiextensions.k8s.io",
    "sc": "storageclasses.storage.k8s.io",
}


def matches(resource: ApiResource, names: Iterable[str]) -> bool:
    """Whether a user-given type list names this resource (plural, kind, short name, alias,
    or group-qualified plural)."""
    mine = {
        resource.plural,
        resource.group_resource,
        resource.kind.lower(),
        *(s.lower() for s in resource.short_names),
    }
    for raw in names:
        name = ALIASES.get(raw.lower(), raw.lower())
        if name in mine:
            return True
    return False
