"""Temporary pods that mount a volume nobody mounts, so a node worker can read it.

Data-protection backups cover unmounted PVCs too.  A file-level volume must be read where the
kubelet mounted it, so the backup starts a small pod (the pause image) that mounts the claim read
only on a node the scheduling policy allows, and removes it afterwards — also on cancel.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from kube.rest import Kube
from kube.snapshots import BACKUP_LABEL
from schemas.errors import BackupCenterError
from schemas.settings import NodeSchedulePolicy, Settings
from schemas.volumes import Mount, VolumePlan

TEMP_POD_LABEL = "backupcenter.io/temporary"
PAUSE_IMAGE = "registry.k8s.io/pause:3.10"


def pod_name(backup: str, plan: VolumePlan) -> str:
    digest = hashlib.sha256(f"{backup}/{plan.ref}".encode()).hexdigest()[:10]
    return f"bc-mount-{digest}"


def _node_terms(settings: Settings) -> list[dict[str, Any]]:
    expressions = [{"key": "type", "operator": "NotIn", "values": ["virtual-kubelet"]}]
    if settings.node_schedule_policy is NodeSchedulePolicy.exclude:
        expressions.append({"key": settings.agent_excluded_label, "operator": "NotIn", "values": ["true"]})
    elif settings.node_schedule_policy is NodeSchedulePolicy.include:
        expressions.append({"key": settings.agent_included_label, "operator": "In", "values": ["true"]})
    return [{"matchExpressions": expressions}]


def mount_temporarily(kube: Kube, backup: str, plan: VolumePlan, settings: Settings, timeout: float) -> Mount:
    name = pod_name(backup, plan)
    body = {
        "metadata": {"name": name, "labels": {BACKUP_LABEL: backup, TEMP_POD_LABEL: "true"}},
        "spec": {
            "restartPolicy": "Never",
            "priorityClassName": "",
            "affinity": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": _node_terms(settings)
                    }
                }
            },
            "containers": [
                {
                    "name": "mount",
                    "image": PAUSE_IMAGE,
                    "volumeMounts": [{"name": "data", "mountPath": "/data", "readOnly": True}],
                }
            ],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": plan.pvc, "readOnly": True}}],
        },
    }
    path = f"/api/v1/namespaces/{plan.namespace}/pods"
    kube.create(path, body, exist_ok=True)
    deadline = time.monotonic() + timeout
    while True:
        pod = kube.get(f"{path}/{name}") or {}
        if (pod.get("status") or {}).get("phase") == "Running" and pod["spec"].get("nodeName"):
            return Mount(node=pod["spec"]["nodeName"], pod=name, pod_uid=pod["metadata"]["uid"])
        if time.monotonic() > deadline:
            raise BackupCenterError(
                "ResourceTimeout",
                what=f"temporary pod {plan.namespace}/{name} mounting PVC {plan.ref} did not start "
                f"within {int(timeout)}s",
            )
        time.sleep(0.5)


def remove(kube: Kube, backup: str, namespaces: list[str]) -> int:
    removed = 0
    for ns in namespaces:
        pods, _ = kube.list(
            f"/api/v1/namespaces/{ns}/pods", labelSelector=f"{BACKUP_LABEL}={backup},{TEMP_POD_LABEL}"
        )
        for pod in pods:
            if kube.delete(f"/api/v1/namespaces/{ns}/pods/{pod['metadata']['name']}"):
                removed += 1
    return removed
