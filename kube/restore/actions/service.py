"""Services: addresses belong to the cluster that allocated them; node ports set on purpose stay.

A node port is either chosen by the user (written in the manifest) or picked by the API server's
allocator.  Auto-assigned ports are dropped, so the target allocates new ones: keeping them buys
nothing and fails in a cluster where they are taken (a restore into a mapped namespace of the
source cluster, whose services still hold them).  Explicit ports are kept: clients and load
balancers outside the cluster are configured with them.  ``preserve_node_ports`` keeps every port.

Which ports are explicit comes from two traces the user's tools leave on the object:

- ``kubectl.kubernetes.io/last-applied-configuration`` (client-side ``kubectl apply``): the
  applied manifest; a port entry there with a ``nodePort`` was set by the user;
- ``metadata.managedFields`` (server-side apply, Helm, any client that sent the port): a manager
  owns ``f:nodePort`` of the port entry.  The allocator runs after field ownership is recorded,
  so an auto-assigned port is owned by no manager.

The exporter drops managedFields (they are bookkeeping, and the generic restore action drops them
anyway, before this action runs), so it reads the second trace at backup time and records the
result in :data:`EXPLICIT_NODE_PORTS` (``80/TCP,443/TCP``) with :func:`record_explicit_node_ports`.
This keeps backups free of managedFields and the restore pipeline unchanged, and the action sees
the object as exported.  Backups taken before that annotation existed have last-applied only.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from kube.restore.actions.meta import copied
from kube.restore.context import ActionResult, RestoreContext

HEADLESS = "None"
NODE_PORT_TYPES = ("NodePort", "LoadBalancer")
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
EXPLICIT_NODE_PORTS = "backupcenter.io/explicit-node-ports"

PortKey = tuple[int, str]  # (port, protocol): how the API keys service ports (a list map)


def _key(port: dict[str, Any]) -> PortKey | None:
    number = port.get("port")
    if isinstance(number, str) and number.isdigit():
        number = int(number)
    if not isinstance(number, int) or isinstance(number, bool):
        return None
    return number, str(port.get("protocol") or "TCP")


def _format(keys: set[PortKey]) -> str:
    return ",".join(f"{port}/{protocol}" for port, protocol in sorted(keys))


def _parse(value: str) -> set[PortKey]:
    keys: set[PortKey] = set()
    for entry in value.split(","):
        port, _, protocol = entry.strip().partition("/")
        if port.isdigit():
            keys.add((int(port), protocol or "TCP"))
    return keys


def owned_node_ports(managed_fields: list[dict[str, Any]] | None) -> set[PortKey]:
    """The ports whose ``nodePort`` some field manager owns (``f:spec`` → ``f:ports`` →
    ``k:{"port":80,"protocol":"TCP"}`` → ``f:nodePort``)."""
    owned: set[PortKey] = set()
    for entry in managed_fields or []:
        ports = ((entry.get("fieldsV1") or {}).get("f:spec") or {}).get("f:ports") or {}
        if not isinstance(ports, dict):
            continue
        for element, fields in ports.items():
            if not element.startswith("k:") or not isinstance(fields, dict) or "f:nodePort" not in fields:
                continue
            try:
                key = json.loads(element[2:])
            except ValueError:
                continue
            parsed = _key(key) if isinstance(key, dict) else None
            if parsed is not None:
                owned.add(parsed)
    return owned


def record_explicit_node_ports(obj: dict[str, Any]) -> dict[str, Any]:
    """For the exporter, on a Service as listed (managedFields still there): note the node ports a
    field manager owns in :data:`EXPLICIT_NODE_PORTS`.  Modifies and returns ``obj``."""
    meta = obj.get("metadata") or {}
    ports = (obj.get("spec") or {}).get("ports") or []
    with_node_ports = {key for key in (_key(p) for p in ports if p.get("nodePort")) if key is not None}
    explicit = owned_node_ports(meta.get("managedFields")) & with_node_ports
    if explicit:
        meta["annotations"] = {**(meta.get("annotations") or {}), EXPLICIT_NODE_PORTS: _format(explicit)}
    return obj


def _applied_ports(annotations: dict[str, Any]) -> list[dict[str, Any]]:
    """The port entries of the last applied manifest that name a node port."""
    try:
        applied = json.loads(annotations.get(LAST_APPLIED) or "{}")
        ports = (applied.get("spec") or {}).get("ports") or []
    except (ValueError, AttributeError):
        return []  # not ours to judge: without a readable manifest, nothing is explicit by it
    return [p for p in ports if isinstance(p, dict) and p.get("nodePort")]


def _explicit(obj: dict[str, Any]) -> Callable[[dict[str, Any]], bool]:
    """A predicate: was this port entry's nodePort set by the user?"""
    meta = obj.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    keys = _parse(str(annotations.get(EXPLICIT_NODE_PORTS) or ""))
    # managedFields, when the object still has them (listed from a cluster rather than exported).
    keys |= owned_node_ports(meta.get("managedFields"))
    applied = _applied_ports(annotations)
    applied_keys = {key for key in map(_key, applied) if key is not None}
    applied_names = {p["name"] for p in applied if p.get("name")}

    def explicit(port: dict[str, Any]) -> bool:
        key = _key(port)
        by_key = key is not None and (key in keys or key in applied_keys)
        return by_key or bool(port.get("name") and port["name"] in applied_names)

    return explicit


# What an isolated restore (a drill's) drops from a NodePort or LoadBalancer service, and the
# annotation keys (any provider's load balancer settings, external-dns) that would claim the source's
# load balancer or names.
_LOAD_BALANCER_FIELDS = (
    "loadBalancerIP", "loadBalancerSourceRanges", "loadBalancerClass", "externalTrafficPolicy",
    "healthCheckNodePort", "allocateLoadBalancerNodePorts", "externalIPs",
)
_TRAFFIC_ANNOTATION_MARKS = ("loadbalancer", "load-balancer", "external-dns")


def service_action(obj: dict[str, Any], ctx: RestoreContext) -> ActionResult:
    obj = copied(obj)
    spec = obj.setdefault("spec", {})
    # A cluster IP of the source is from another service CIDR (or taken); "None" means headless
    # and must survive, since it changes what the service is.
    if spec.get("clusterIP") != HEADLESS:
        spec.pop("clusterIP", None)
        spec.pop("clusterIPs", None)

    kind = spec.get("type", "ClusterIP")
    if ctx.isolated and kind in NODE_PORT_TYPES:
        # Beside the running source: its node ports, load balancer and DNS names stay its own.
        spec["type"] = kind = "ClusterIP"
        for field in _LOAD_BALANCER_FIELDS:
            spec.pop(field, None)
        meta = obj.setdefault("metadata", {})
        meta["annotations"] = {
            k: v for k, v in (meta.get("annotations") or {}).items()
            if not any(mark in k.lower() for mark in _TRAFFIC_ANNOTATION_MARKS)
        }
    if kind in NODE_PORT_TYPES:
        explicit = _explicit(obj)
        for port in spec.get("ports") or []:
            if not (ctx.preserve_node_ports or explicit(port)):
                port.pop("nodePort", None)
    else:
        for port in spec.get("ports") or []:
            port.pop("nodePort", None)
    # The backup's bookkeeping; the restored object's own managedFields say what it was created with.
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    annotations.pop(EXPLICIT_NODE_PORTS, None)

    # healthCheckNodePort exists only for LoadBalancer + Local; elsewhere the API rejects it.
    local_lb = kind == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local"
    if not (local_lb and ctx.preserve_node_ports):
        spec.pop("healthCheckNodePort", None)
    # The load balancer's address is status, which the generic action already dropped; traffic
    # is never switched to the restored service automatically.
    return ActionResult.keep(obj)
