"""The cloud controller's part: LoadBalancer Services get an external address, as an SLB would give them."""

from __future__ import annotations

import hashlib

from kube.rest import Kube, KubeError
from localdev.kube.agent.util import log, name_of, ns_of, uid_of
from localdev.kube.agent.world import World


class CloudLoadBalancers:
    def __init__(self, kube: Kube) -> None:
        self._kube = kube

    def reconcile(self, world: World) -> None:
        for svc in world.services:
            if (svc.get("spec") or {}).get("type") != "LoadBalancer":
                continue
            if ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress"):
                continue
            digest = hashlib.sha256(uid_of(svc).encode()).digest()
            # 198.51.100.0/24 is a documentation range: never a real address someone could reach by mistake.
            address = f"198.51.100.{1 + digest[0] % 254}"
            try:
                self._kube.patch(
                    f"/api/v1/namespaces/{ns_of(svc)}/services/{name_of(svc)}/status",
                    {"status": {"loadBalancer": {"ingress": [{"ip": address, "ipMode": "VIP"}]}}},
                )
            except KubeError as exc:
                log.warning("load balancer for %s/%s: %s", ns_of(svc), name_of(svc), exc)
