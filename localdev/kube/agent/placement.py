"""Label selectors, node affinity and taints, as the scheduler and the volume binder evaluate them."""

from __future__ import annotations

from typing import Any

from kube.rest import Obj
from localdev.kube.agent.util import labels_of, name_of


def _match_expression(expr: dict[str, Any], values_of: dict[str, str]) -> bool:
    key, op, values = expr.get("key", ""), expr.get("operator", ""), expr.get("values") or []
    present = key in values_of
    if op == "In":
        return present and values_of[key] in values
    if op == "NotIn":
        return not present or values_of[key] not in values
    if op == "Exists":
        return present
    if op == "DoesNotExist":
        return not present
    if op in ("Gt", "Lt") and present and values:
        try:
            actual, bound = int(values_of[key]), int(values[0])
        except ValueError:
            return False
        return actual > bound if op == "Gt" else actual < bound
    return False


def term_matches(term: dict[str, Any], node: Obj) -> bool:
    """A NodeSelectorTerm: all its label and field expressions hold (an empty term matches nothing)."""
    exprs = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not exprs and not fields:
        return False
    node_labels = labels_of(node)
    node_fields = {"metadata.name": name_of(node)}
    return all(_match_expression(e, node_labels) for e in exprs) and all(
        _match_expression(f, node_fields) for f in fields
    )


def node_selector_matches(selector: dict[str, Any] | None, node: Obj) -> bool:
    """A NodeSelector (terms ORed); no selector matches every node."""
    if not selector:
        return True
    terms = selector.get("nodeSelectorTerms") or []
    return not terms or any(term_matches(t, node) for t in terms)


def tolerates(tolerations: list[dict[str, Any]], taint: dict[str, Any]) -> bool:
    for tol in tolerations:
        if tol.get("effect") and tol.get("effect") != taint.get("effect"):
            continue
        op = tol.get("operator") or "Equal"
        if op == "Exists" and (not tol.get("key") or tol.get("key") == taint.get("key")):
            return True
        if (
            op == "Equal"
            and tol.get("key") == taint.get("key")
            and (tol.get("value") or "") == (taint.get("value") or "")
        ):
            return True
    return False


def pod_fits_node(pod: Obj, node: Obj) -> str | None:
    """None when the pod may run on the node, else why not (in the scheduler's words)."""
    spec = pod.get("spec") or {}
    node_labels = labels_of(node)
    if (node.get("spec") or {}).get("unschedulable"):
        return "node(s) were unschedulable"
    for k, v in (spec.get("nodeSelector") or {}).items():
        if node_labels.get(k) != v:
            return "node(s) didn't match Pod's node affinity/selector"
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    )
    if not node_selector_matches(required, node):
        return "node(s) didn't match Pod's node affinity/selector"
    tolerations = spec.get("tolerations") or []
    for taint in (node.get("spec") or {}).get("taints") or []:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not tolerates(tolerations, taint):
            return f"node(s) had untolerated taint {{{taint.get('key')}: {taint.get('value', '')}}}"
    return None


def pod_claims(pod: Obj) -> list[str]:
    """Names of the PVCs a pod uses, generic ephemeral volumes included (named <pod>-<volume>)."""
    out = []
    for vol in (pod.get("spec") or {}).get("volumes") or []:
        if vol.get("persistentVolumeClaim"):
            out.append(str(vol["persistentVolumeClaim"].get("claimName", "")))
        elif vol.get("ephemeral"):
            out.append(f"{name_of(pod)}-{vol.get('name')}")
    return out
