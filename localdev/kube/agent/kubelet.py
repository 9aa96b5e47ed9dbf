"""The kubelets' part: lay out volume directories for pods on the agent's nodes, report them Running,
and finish their deletion.

Each node has a kubelet root of its own (<state>/kubelet/<node>/). A CSI volume appears at
pods/<uid>/volumes/kubernetes.io~csi/<pv>/mount as a symlink to the volume's data directory, which is
what a per-node worker reading the kubelet root needs to find the data; emptyDir volumes are real
directories under kubernetes.io~empty-dir/.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from kube.rest import Kube, KubeError, Obj
from localdev.kube.agent.model import NODES, Layout, csi_mount_path
from localdev.kube.agent.provisioner import volume_data_dir
from localdev.kube.agent.util import deleting, log, name_of, ns_of, rfc3339, uid_of
from localdev.kube.agent.world import World

_NODE_INDEX = {spec.name: i for i, spec in enumerate(NODES)}
_NODE_IP = {spec.name: spec.ip for spec in NODES}


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def pod_ip(node: str, uid: str) -> str:
    digest = hashlib.sha256(uid.encode()).digest()
    return f"10.244.{_NODE_INDEX.get(node, 9)}.{2 + digest[0] % 250}"


class Kubelet:
    def __init__(self, kube: Kube, layout: Layout) -> None:
        self._kube = kube
        self._layout = layout

    def reconcile(self, world: World, *, collect_garbage: bool) -> None:
        live: dict[str, set[str]] = {node: set() for node in _NODE_INDEX}
        for pod in world.pods:
            node = str((pod.get("spec") or {}).get("nodeName") or "")
            if node not in _NODE_INDEX:
                continue
            live[node].add(uid_of(pod))
            try:
                if deleting(pod):
                    self._finish_deletion(node, pod)
                elif (pod.get("status") or {}).get("phase") in ("Pending", None):
                    self._start(world, node, pod)
            except (KubeError, OSError) as exc:
                log.warning("kubelet %s, pod %s/%s: %s", node, ns_of(pod), name_of(pod), exc)
        if collect_garbage:
            self._remove_orphans(live)

    def _pod_dir(self, node: str, pod: Obj) -> Path:
        return self._layout.kubelet_root(node) / "pods" / uid_of(pod)

    def _mount_volumes(self, world: World, node: str, pod: Obj) -> bool:
        """Lay out every volume; False while one is not ready yet (claim not bound)."""
        root = self._layout.kubelet_root(node)
        for vol in (pod.get("spec") or {}).get("volumes") or []:
            if "emptyDir" in vol:
                (self._pod_dir(node, pod) / "volumes" / "kubernetes.io~empty-dir" / vol["name"]).mkdir(
                    parents=True, exist_ok=True
                )
                continue
            if vol.get("persistentVolumeClaim"):
                claim = str(vol["persistentVolumeClaim"].get("claimName"))
            elif vol.get("ephemeral"):
                claim = f"{name_of(pod)}-{vol['name']}"
            else:
                continue
            pvc = world.pvcs.get((ns_of(pod), claim))
            pv = world.pvs.get(str(((pvc or {}).get("spec") or {}).get("volumeName") or ""))
            if pvc is None or pv is None or (pvc.get("status") or {}).get("phase") != "Bound":
                return False
            csi = (pv.get("spec") or {}).get("csi")
            data = volume_data_dir(self._layout, pv)
            if data is None:
                continue  # not ours, or hostPath-like: nothing under the kubelet root
            data.mkdir(parents=True, exist_ok=True)
            if not csi:
                continue
            mount = csi_mount_path(root, uid_of(pod), name_of(pv))
            mount.parent.mkdir(parents=True, exist_ok=True)
            if not mount.is_symlink():
                mount.symlink_to(data, target_is_directory=True)
            vol_data = mount.parent / "vol_data.json"
            if not vol_data.exists():
                vol_data.write_text(
                    json.dumps(
                        {
                            "driverName": csi.get("driver"),
                            "volumeHandle": csi.get("volumeHandle"),
                            "specVolID": name_of(pv),
                            "volumeLifecycleMode": "Persistent",
                            "nodeName": node,
                        }
                    )
                )
        return True

    def _start(self, world: World, node: str, pod: Obj) -> None:
        if not self._mount_volumes(world, node, pod):
            return
        spec = pod.get("spec") or {}
        started = rfc3339()
        ip = pod_ip(node, uid_of(pod))

        def condition(kind: str) -> Obj:
            return {"type": kind, "status": "True", "lastProbeTime": None, "lastTransitionTime": started}

        containers = [
            {
                "name": c["name"],
                "image": c.get("image", ""),
                "imageID": "",
                "containerID": "containerd://" + _digest(uid_of(pod) + c["name"]),
                "ready": True,
                "started": True,
                "restartCount": 0,
                "state": {"running": {"startedAt": started}},
            }
            for c in spec.get("containers") or []
        ]
        init = [
            {
                "name": c["name"],
                "image": c.get("image", ""),
                "imageID": "",
                "ready": True,
                "restartCount": 0,
                "state": {
                    "terminated": {
                        "exitCode": 0,
                        "reason": "Completed",
                        "startedAt": started,
                        "finishedAt": started,
                    }
                },
            }
            for c in spec.get("initContainers") or []
        ]
        status: Obj = {
            "phase": "Running",
            "hostIP": _NODE_IP[node],
            "hostIPs": [{"ip": _NODE_IP[node]}],
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "startTime": started,
            "conditions": [
                condition(k)
                for k in (
                    "PodReadyToStartContainers",
                    "Initialized",
                    "Ready",
                    "ContainersReady",
                    "PodScheduled",
                )
            ],
            "containerStatuses": containers,
        }
        if init:
            status["initContainerStatuses"] = init
        self._kube.patch(f"/api/v1/namespaces/{ns_of(pod)}/pods/{name_of(pod)}/status", {"status": status})

    def _finish_deletion(self, node: str, pod: Obj) -> None:
        # Unmounting only drops the links: data stays with the volume.
        shutil.rmtree(self._pod_dir(node, pod), ignore_errors=True)
        self._kube.delete(
            f"/api/v1/namespaces/{ns_of(pod)}/pods/{name_of(pod)}",
            {
                "apiVersion": "v1",
                "kind": "DeleteOptions",
                "gracePeriodSeconds": 0,
                "preconditions": {"uid": uid_of(pod)},
            },
        )

    def _remove_orphans(self, live: dict[str, set[str]]) -> None:
        for node, uids in live.items():
            pods_dir = self._layout.kubelet_root(node) / "pods"
            if not pods_dir.is_dir():
                continue
            for entry in os.scandir(pods_dir):
                if entry.name not in uids:
                    shutil.rmtree(entry.path, ignore_errors=True)
