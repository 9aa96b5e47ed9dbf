"""Namespaces, service accounts, secrets and the kinds restore leaves to the cluster."""

from __future__ import annotations

from typing import Any

from kube.restore.actions.meta import copied
from kube.restore.context import ActionResult, RestoreContext

SA_TOKEN_TYPE = "kubernetes.io/service-account-token"
_NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


def namespace_action(obj: dict[str, Any], ctx: RestoreContext) -> ActionResult:
    obj = copied(obj)
    meta = obj.setdefault("metadata", {})
    meta["name"] = ctx.map_namespace(meta.get("name", ""))
    # The API server sets this label to the name; a renamed namespace must not carry the old one.
    (meta.get("labels") or {}).pop(_NAMESPACE_NAME_LABEL, None)
    # spec.finalizers ("kubernetes") is added by the target itself.
    spec = obj.get("spec") or {}
    spec.pop("finalizers", None)
    if not spec:
        obj.pop("spec", None)
    return ActionResult.keep(obj)


def service_account_action(obj: dict[str, Any], ctx: RestoreContext) -> ActionResult:
    """Drop references to the token secrets the source cluster generated for the account."""
    secrets = obj.get("secrets")
    if not secrets:
        return ActionResult.keep(obj)
    obj = copied(obj)
    prefix = f"{(obj.get('metadata') or {}).get('name', '')}-token-"
    kept = [s for s in obj["secrets"] if not str(s.get("name", "")).startswith(prefix)]
    if kept:
        obj["secrets"] = kept
    else:
        obj.pop("secrets")
    return ActionResult.keep(obj)


def secret_action(obj: dict[str, Any], ctx: RestoreContext) -> ActionResult:
    if obj.get("type") == SA_TOKEN_TYPE:
        return ActionResult.skip(
            "service account token: the target cluster issues its own tokens (a token of the source "
            "cluster would not authenticate there)"
        )
    return ActionResult.keep(obj)


def skip_cluster_managed(obj: dict[str, Any], ctx: RestoreContext) -> ActionResult:
    return ActionResult.skip(f"{obj.get('kind')} objects are recreated by the target cluster")


def pass_through(obj: dict[str, Any], ctx: RestoreContext) -> ActionResult:
    """CRDs: restored as captured; the version to restore at is chosen by kube.restore.versions."""
    return ActionResult.keep(obj)


def isolate_action(obj: dict[str, Any], ctx: RestoreContext) -> ActionResult:
    """An isolated restore (a drill's, beside the running source) takes none of the source's work:
    Ingresses would claim its hosts (skipped), CronJobs would run its schedules (suspended)."""
    if not ctx.isolated:
        return ActionResult.keep(obj)
    kind = obj.get("kind")
    if kind == "Ingress":
        return ActionResult.skip("isolated restore: an Ingress beside the source would claim its hosts")
    if kind == "CronJob":
        out = copied(obj)
        out.setdefault("spec", {})["suspend"] = True
        return ActionResult.keep(out, ["isolated restore: suspended (the source runs its schedule)"])
    return ActionResult.keep(obj)
