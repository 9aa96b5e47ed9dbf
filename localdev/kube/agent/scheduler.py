"""The scheduler's part: place pending pods on a node, volume topology included.

Like kube-scheduler's volume binding: a pod with an unbound WaitForFirstConsumer claim picks a node,
the claim is annotated with it (the provisioner then creates the volume in that node's zone), and the
pod is bound only once all its claims are bound. A pod with an unbound Immediate claim waits.
"""

from __future__ import annotations

from kube.rest import Kube, KubeError, Obj
from localdev.kube.agent.model import SELECTED_NODE
from localdev.kube.agent.placement import node_selector_matches, pod_claims, pod_fits_node
from localdev.kube.agent.util import annotations_of, deleting, labels_of, log, name_of, ns_of, uid_of
from localdev.kube.agent.world import World


def _is_virtual(node: Obj) -> bool:
    return labels_of(node).get("type") == "virtual-kubelet"


class Scheduler:
    def __init__(self, kube: Kube) -> None:
        self._kube = kube
        self._reported: dict[str, str] = {}

    def reconcile(self, world: World) -> None:
        load: dict[str, int] = {n: 0 for n in world.nodes}
        for pod in world.pods:
            node = (pod.get("spec") or {}).get("nodeName")
            if node in load:
                load[node] += 1
        for pod in world.pods:
            spec = pod.get("spec") or {}
            if spec.get("nodeName") or deleting(pod) or spec.get("schedulingGates"):
                continue
            if (pod.get("status") or {}).get("phase", "Pending") != "Pending":
                continue
            try:
                node = self._schedule(world, pod, load)
            except KubeError as exc:
                log.warning("scheduling %s/%s: %s", ns_of(pod), name_of(pod), exc)
                continue
            if node:
                load[node] += 1

    def _volume_check(self, world: World, pod: Obj, node: Obj) -> str | None:
        for claim in pod_claims(pod):
            pvc = world.pvcs.get((ns_of(pod), claim))
            if pvc is None:
                return f'persistentvolumeclaim "{claim}" not found'
            volume = (pvc.get("spec") or {}).get("volumeName")
            if volume:
                pv = world.pvs.get(str(volume))
                if pv is None:
                    return f'persistentvolume "{volume}" not found'
                required = ((pv.get("spec") or {}).get("nodeAffinity") or {}).get("required")
                if not node_selector_matches(required, node):
                    return "node(s) had volume node affinity conflict"
                continue
            sc = world.classes.get(str((pvc.get("spec") or {}).get("storageClassName") or ""))
            if sc is None or sc.get("volumeBindingMode") != "WaitForFirstConsumer":
                return "pod has unbound immediate PersistentVolumeClaims"
            selected = annotations_of(pvc).get(SELECTED_NODE)
            if selected and selected != name_of(node):
                return "node(s) did not match the claim's selected node"
        return None

    def _schedule(self, world: World, pod: Obj, load: dict[str, int]) -> str | None:
        reasons: dict[str, int] = {}
        fits: list[Obj] = []
        for node in world.nodes.values():
            why = pod_fits_node(pod, node) or self._volume_check(world, pod, node)
            if why:
                reasons[why] = reasons.get(why, 0) + 1
            else:
                fits.append(node)
        if not fits:
            detail = ", ".join(f"{count} {why}" for why, count in sorted(reasons.items()))
            self._unschedulable(pod, f"0/{len(world.nodes)} nodes are available: {detail}.")
            return None
        # Real nodes before the virtual one (it costs per pod), then the least loaded, then by name.
        best = min(fits, key=lambda n: (_is_virtual(n), load.get(name_of(n), 0), name_of(n)))
        node_name = name_of(best)
        unbound = []
        for claim in pod_claims(pod):
            pvc = world.pvcs[(ns_of(pod), claim)]
            if not (pvc.get("spec") or {}).get("volumeName"):
                unbound.append(pvc)
                if annotations_of(pvc).get(SELECTED_NODE) != node_name:
                    self._kube.patch(
                        f"/api/v1/namespaces/{ns_of(pvc)}/persistentvolumeclaims/{name_of(pvc)}",
                        {"metadata": {"annotations": {SELECTED_NODE: node_name}}},
                    )
        if unbound:
            return None  # bound on a later pass, once the provisioner has bound the claims
        self._kube.create(
            f"/api/v1/namespaces/{ns_of(pod)}/pods/{name_of(pod)}/binding",
            {
                "apiVersion": "v1",
                "kind": "Binding",
                "metadata": {"name": name_of(pod), "namespace": ns_of(pod), "uid": uid_of(pod)},
                "target": {"apiVersion": "v1", "kind": "Node", "name": node_name},
            },
        )
        self._reported.pop(uid_of(pod), None)
        return node_name

    def _unschedulable(self, pod: Obj, message: str) -> None:
        if self._reported.get(uid_of(pod)) == message:
            return
        self._kube.patch(
            f"/api/v1/namespaces/{ns_of(pod)}/pods/{name_of(pod)}/status",
            {
                "status": {
                    "conditions": [
                        {
                            "type": "PodScheduled",
                            "status": "False",
                            "reason": "Unschedulable",
                            "message": message,
                            "lastProbeTime": None,
                        }
                    ],
                }
            },
            content_type="application/strategic-merge-patch+json",
        )
        self._reported[uid_of(pod)] = message
