"""Pods and everything that holds a pod template: images, node binding, injected token volumes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from kube.restore.actions.meta import copied
from kube.restore.context import ActionResult, RestoreContext
from kube.restore.images import map_registry

CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")
_TOKEN_VOLUME_PREFIX = "kube-api-access-"


def pod_specs(obj: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The pod specs inside an object: a Pod's own, a workload's template (any kind with
    spec.template.spec.containers, custom resources included) and a CronJob's job template."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    if obj.get("kind") == "Pod":
        yield spec
    for path in (("template", "spec"), ("jobTemplate", "spec", "template", "spec")):
        node: Any = spec
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict) and isinstance(node.get("containers"), list):
            yield node


def has_pod_spec(obj: dict[str, Any]) -> bool:
    return next(pod_specs(obj), None) is not None


def rewrite_image(image: str, ctx: RestoreContext) -> tuple[str, list[str]]:
    """Registry mapping of the restore spec first, then the cluster's rewrite rules."""
    return ctx.image_rules.rewrite(map_registry(image, ctx.image_registry_mapping))


def images_action(obj: dict[str, Any], ctx: RestoreContext) -> ActionResult:
    if not ctx.image_registry_mapping and not ctx.image_rules.rules:
        return ActionResult.keep(obj)
    obj = copied(obj)
    warnings: list[str] = []
    for spec in pod_specs(obj):
        for list_name in CONTAINER_LISTS:
            for container in spec.get(list_name) or []:
                if isinstance(container.get("image"), str):
                    container["image"], found = rewrite_image(container["image"], ctx)
                    warnings += found
    return ActionResult.keep(obj, warnings)


def _is_injected_token_volume(volume: dict[str, Any], service_account: str) -> bool:
    # Added by the ServiceAccount admission of the source cluster: the projected
    # kube-api-access-* volume (1.22+) or the legacy <sa>-token-* secret volume.  The target's
    # admission injects its own; an old secret volume would name a secret that is not restored.
    name = volume.get("name", "")
    if name.startswith(_TOKEN_VOLUME_PREFIX) and "projected" in volume:
        return True
    secret = (volume.get("secret") or {}).get("secretName", "")
    return secret.startswith(f"{service_account}-token-") and name == secret


def pod_action(obj: dict[str, Any], ctx: RestoreContext) -> ActionResult:
    obj = copied(obj)
    spec = obj.setdefault("spec", {})
    # The source's node; the target's scheduler picks one.
    spec.pop("nodeName", None)
    account = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
    injected = {v.get("name") for v in spec.get("volumes") or [] if _is_injected_token_volume(v, account)}
    if injected:
        spec["volumes"] = [v for v in spec["volumes"] if v.get("name") not in injected]
        for list_name in CONTAINER_LISTS:
            for container in spec.get(list_name) or []:
                if container.get("volumeMounts"):
                    container["volumeMounts"] = [m for m in container["volumeMounts"]
                                                 if m.get("name") not in injected]
    return ActionResult.keep(obj)


# Labels the Job controller derives from the Job's uid; with the old uid the API server rejects
# the restored Job ("selector not auto-generated") and the pods would not match.
_JOB_UID_LABELS = ("controller-uid", "batch.kubernetes.io/controller-uid")


def job_action(obj: dict[str, Any], ctx: RestoreContext) -> ActionResult:
    obj = copied(obj)
    spec = obj.setdefault("spec", {})
    if spec.get("manualSelector"):
        return ActionResult.keep(obj)
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    for name in _JOB_UID_LABELS:
        labels.pop(name, None)
    selector = spec.get("selector") or {}
    for name in _JOB_UID_LABELS:
        (selector.get("matchLabels") or {}).pop(name, None)
    if not selector.get("matchLabels") and not selector.get("matchExpressions"):
        spec.pop("selector", None)  # generated anew from the new uid
    return ActionResult.keep(obj)
