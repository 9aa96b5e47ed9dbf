"""Services: addresses belong to the cluster that allocated them; node ports may be kept."""

from __future__ import annotations

from typing import Any

from kube.restore.actions_meta import copied
from kube.restore.context import ActionResult, RestoreContext

HEADLESS = "None"


def service_action(obj: dict[str, Any], ctx: RestoreContext) -> ActionResult:
    obj = copied(obj)
    spec = obj.setdefault("spec", {})
    # A cluster IP of the source is from another service CIDR (or taken); "None" means headless
    # and must survive, since it changes what the service is.
    if spec.get("clusterIP") != HEADLESS:
        spec.pop("clusterIP", None)
        spec.pop("clusterIPs", None)

    kind = spec.get("type", "ClusterIP")
    keep_node_ports = ctx.preserve_node_ports and kind in ("NodePort", "LoadBalancer")
    if not keep_node_ports:
        for port in spec.get("ports") or []:
            port.pop("nodePort", None)

    # healthCheckNodePort exists only for LoadBalancer + Local; elsewhere the API rejects it.
    local_lb = kind == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local"
    if not (local_lb and ctx.preserve_node_ports):
        spec.pop("healthCheckNodePort", None)
    # The load balancer's address is status, which the generic action already dropped; traffic
    # is never switched to the restored service automatically.
    return ActionResult.keep(obj)
