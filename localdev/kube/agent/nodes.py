"""Node objects and their heartbeat: what kubelets would register and keep fresh."""

from __future__ import annotations

from kube.rest import Kube, KubeError, Obj
from localdev.kube.agent.model import (
    HOSTNAME_LABEL,
    KUBELET_ROOT_ANNOTATION,
    NODES,
    REGION,
    REGION_LABEL,
    VIRTUAL_TAINT_KEY,
    ZONE_LABEL,
    Layout,
    NodeSpec,
    zone_in,
)
from localdev.kube.agent.util import log, micro_time, random_id, rfc3339

KUBELET_VERSION = "v1.34.4"
LEASE_SECONDS = 40


def node_object(spec: NodeSpec, layout: Layout, region: str = REGION) -> Obj:
    labels = {
        HOSTNAME_LABEL: spec.name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": "amd64",
        ZONE_LABEL: zone_in(spec, region),
        REGION_LABEL: region,
        "node.kubernetes.io/instance-type": "ecs.g7.xlarge",
    }
    taints: list[Obj] = []
    if spec.virtual:
        # How virtual kubelets present themselves: a role label and a taint ordinary pods do not tolerate.
        labels.update(
            {
                "type": "virtual-kubelet",
                "kubernetes.io/role": "agent",
                "node.kubernetes.io/instance-type": "virtual-kubelet",
            }
        )
        taints.append({"key": VIRTUAL_TAINT_KEY, "value": "alibabacloud", "effect": "NoSchedule"})
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": spec.name,
            "labels": labels,
            "annotations": {KUBELET_ROOT_ANNOTATION: str(layout.kubelet_root(spec.name))},
        },
        "spec": {"providerID": f"{region}.i-{random_id(20)}", "taints": taints},
    }


def node_status(spec: NodeSpec) -> Obj:
    stamp = rfc3339()
    capacity = {"cpu": "4", "memory": "16Gi", "pods": "110", "ephemeral-storage": "120Gi"}
    if spec.virtual:
        capacity = {"cpu": "1000", "memory": "4Ti", "pods": "1000", "ephemeral-storage": "10Ti"}

    def condition(kind: str, status: str, reason: str, message: str) -> Obj:
        return {
            "type": kind,
            "status": status,
            "reason": reason,
            "message": message,
            "lastHeartbeatTime": stamp,
            "lastTransitionTime": stamp,
        }

    return {
        "capacity": capacity,
        "allocatable": capacity,
        "conditions": [
            condition(
                "MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory"
            ),
            condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            condition(
                "PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"
            ),
            condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
        ],
        "addresses": [{"type": "InternalIP", "address": spec.ip}, {"type": "Hostname", "address": spec.name}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "nodeInfo": {
            "machineID": spec.name,
            "systemUUID": spec.name,
            "bootID": spec.name,
            "kernelVersion": "5.10.134",
            "osImage": "Alibaba Cloud Linux 3",
            "containerRuntimeVersion": "containerd://1.6.28",
            "kubeletVersion": KUBELET_VERSION,
            "kubeProxyVersion": KUBELET_VERSION,
            "operatingSystem": "linux",
            "architecture": "amd64",
        },
    }


def register_nodes(kube: Kube, layout: Layout, region: str = REGION) -> None:
    """Create the nodes that do not exist yet and mark all of them Ready."""
    for spec in NODES:
        layout.kubelet_root(spec.name).joinpath("pods").mkdir(parents=True, exist_ok=True)
        existing = kube.get(f"/api/v1/nodes/{spec.name}")
        if existing is None:
            kube.create("/api/v1/nodes", node_object(spec, layout, region), exist_ok=True)
        else:
            # A restarted agent may have a new state dir (or region): point the node at it.
            kube.patch(
                f"/api/v1/nodes/{spec.name}",
                {
                    "metadata": {
                        "annotations": {KUBELET_ROOT_ANNOTATION: str(layout.kubelet_root(spec.name))},
                        "labels": {ZONE_LABEL: zone_in(spec, region), REGION_LABEL: region},
                    }
                },
            )
        kube.patch(f"/api/v1/nodes/{spec.name}/status", {"status": node_status(spec)})
        # Admission taints new nodes not-ready until the node lifecycle controller sees them Ready; that
        # controller is off here (it would evict pods whenever the agent pauses), so clear it ourselves.
        kube.patch(
            f"/api/v1/nodes/{spec.name}", {"spec": {"taints": node_object(spec, layout)["spec"]["taints"]}}
        )
    heartbeat(kube, refresh_status=False)


def heartbeat(kube: Kube, refresh_status: bool) -> None:
    """Renew each node's Lease (what the node lifecycle controller watches) and optionally its status."""
    for spec in NODES:
        path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{spec.name}"
        spec_body = {
            "holderIdentity": spec.name,
            "leaseDurationSeconds": LEASE_SECONDS,
            "renewTime": micro_time(),
        }
        try:
            try:
                kube.patch(path, {"spec": spec_body})
            except KubeError as exc:
                if exc.status != 404:
                    raise
                node = kube.get(f"/api/v1/nodes/{spec.name}")
                owners = (
                    [{"apiVersion": "v1", "kind": "Node", "name": spec.name, "uid": node["metadata"]["uid"]}]
                    if node
                    else []
                )
                kube.create(
                    "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
                    {
                        "metadata": {
                            "name": spec.name,
                            "namespace": "kube-node-lease",
                            "ownerReferences": owners,
                        },
                        "spec": spec_body,
                    },
                    exist_ok=True,
                )
            if refresh_status:
                # Strategic merge keys conditions by type: only the heartbeat moves, transitions stay put.
                stamp = rfc3339()
                conditions = [
                    {"type": c["type"], "lastHeartbeatTime": stamp} for c in node_status(spec)["conditions"]
                ]
                kube.patch(
                    f"/api/v1/nodes/{spec.name}/status",
                    {"status": {"conditions": conditions}},
                    content_type="application/strategic-merge-patch+json",
                )
        except KubeError as exc:
            log.warning("heartbeat of %s failed: %s", spec.name, exc)
