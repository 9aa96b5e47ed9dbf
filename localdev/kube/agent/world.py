"""One consistent-enough read of everything the agent's controllers look at, taken per reconcile pass."""

from __future__ import annotations

from dataclasses import dataclass

from kube.rest import Kube, KubeError, Obj
from localdev.kube.agent.crds import API_VERSION as SNAPSHOT_API
from localdev.kube.agent.faults import Faults, FaultSettings
from localdev.kube.agent.util import key, name_of


@dataclass
class World:
    nodes: dict[str, Obj]
    classes: dict[str, Obj]
    snapshot_classes: dict[str, Obj]
    pvs: dict[str, Obj]
    contents: dict[str, Obj]
    pvcs: dict[tuple[str, str], Obj]
    snapshots: list[Obj]
    pods: list[Obj]
    services: list[Obj]
    faults: FaultSettings

    def pvc_uids(self) -> set[str]:
        return {str(p["metadata"]["uid"]) for p in self.pvcs.values()}


def _by_name(items: list[Obj]) -> dict[str, Obj]:
    return {name_of(i): i for i in items}


def _list_or_empty(kube: Kube, path: str) -> list[Obj]:
    try:
        return kube.list(path)[0]
    except KubeError as exc:
        # The snapshot API may not be installed yet on the very first pass.
        if exc.status == 404:
            return []
        raise


def observe(kube: Kube) -> World:
    """List in dependency order (a PV before the PVCs, a content before the snapshots, faults last) so an
    object created from another is never seen without its origin, and a fault set before an object was
    created is always seen together with that object."""
    nodes = _by_name(kube.list("/api/v1/nodes")[0])
    classes = _by_name(kube.list("/apis/storage.k8s.io/v1/storageclasses")[0])
    snapshot_classes = _by_name(_list_or_empty(kube, f"/apis/{SNAPSHOT_API}/volumesnapshotclasses"))
    pvs = _by_name(kube.list("/api/v1/persistentvolumes")[0])
    contents = _by_name(_list_or_empty(kube, f"/apis/{SNAPSHOT_API}/volumesnapshotcontents"))
    pvcs = {key(p): p for p in kube.list("/api/v1/persistentvolumeclaims")[0]}
    snapshots = _list_or_empty(kube, f"/apis/{SNAPSHOT_API}/volumesnapshots")
    pods = kube.list("/api/v1/pods")[0]
    services = kube.list("/api/v1/services")[0]
    faults = Faults(kube).read()
    return World(nodes, classes, snapshot_classes, pvs, contents, pvcs, snapshots, pods, services, faults)
