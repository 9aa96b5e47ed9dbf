"""Which API group a kind lives in, across the group moves of Kubernetes' history.

Deployments, DaemonSets and ReplicaSets moved from ``extensions`` to ``apps``; Ingresses and
NetworkPolicies to ``networking.k8s.io``; PodSecurityPolicies to ``policy``.  A backup of an old
cluster captures the same objects under both groups, so restore treats them as one resource,
named by the newer group ("canonical").
"""

from __future__ import annotations

from typing import Any

# (legacy group, plural) -> canonical group_resource
_MOVED: dict[tuple[str, str], str] = {
    ("extensions", "deployments"): "deployments.apps",
    ("extensions", "daemonsets"): "daemonsets.apps",
    ("extensions", "replicasets"): "replicasets.apps",
    ("extensions", "ingresses"): "ingresses.networking.k8s.io",
    ("extensions", "networkpolicies"): "networkpolicies.networking.k8s.io",
    ("extensions", "podsecuritypolicies"): "podsecuritypolicies.policy",
}

_MOVED_KINDS: dict[tuple[str, str], str] = {
    ("extensions", "Deployment"): "apps",
    ("extensions", "DaemonSet"): "apps",
    ("extensions", "ReplicaSet"): "apps",
    ("extensions", "Ingress"): "networking.k8s.io",
    ("extensions", "NetworkPolicy"): "networking.k8s.io",
    ("extensions", "PodSecurityPolicy"): "policy",
}


def group_resource(group: str, plural: str) -> str:
    return f"{plural}.{group}" if group else plural


def canonical_resource(group_resource_name: str) -> str:
    """``deployments.extensions`` -> ``deployments.apps``; anything else unchanged."""
    plural, _, group = group_resource_name.partition(".")
    return _MOVED.get((group, plural), group_resource_name)


def is_legacy_group(group: str, plural: str) -> bool:
    return (group, plural) in _MOVED


def group_of(api_version: str) -> str:
    """``apps/v1`` -> ``apps``; ``v1`` -> the core group ``""``."""
    group, sep, _ = api_version.rpartition("/")
    return group if sep else ""


def group_kind(obj: dict[str, Any]) -> tuple[str, str]:
    """(canonical group, kind) of an object, the key of the action registry."""
    group = group_of(str(obj.get("apiVersion", "")))
    kind = str(obj.get("kind", ""))
    return _MOVED_KINDS.get((group, kind), group), kind


def describe(obj: dict[str, Any]) -> str:
    """``Deployment shop/web`` or ``Namespace shop``: how messages name an object."""
    meta = obj.get("metadata") or {}
    ns, name = meta.get("namespace"), meta.get("name", "")
    return f"{obj.get('kind', 'object')} {ns}/{name}" if ns else f"{obj.get('kind', 'object')} {name}"
