"""What a restore learns about its target cluster, and the plan of phases it follows there."""

from __future__ import annotations

from typing import Any

from kube.discovery import ApiResource
from kube.export import ResourceIndex
from kube.rest import Kube
from kube.restore.context import RestoreContext
from kube.restore.images import ImageRules, parse_image_rules
from kube.restore.kinds import canonical_resource, group_resource
from kube.restore.order import order_groups, phase_of
from kube.restore.selection import selected_bundles
from schemas.errors import BackupCenterError
from schemas.restore import GroupPlan
from schemas.specs import RestoreSpec

# Per-cluster image rewrite rules (requirements.md §8) live in this ConfigMap of the product's
# namespace; each data value is one rule, applied in key order.
IMAGE_RULES_CONFIGMAP = "image-rewrite-rules"
_DEFAULT_CLASS = ("storageclass.kubernetes.io/is-default-class",
                  "storageclass.beta.kubernetes.io/is-default-class")
STORAGE_CLASSES = "/apis/storage.k8s.io/v1/storageclasses"


class TargetClasses:
    """The target's storage classes: provisioner and binding mode by name, and the default."""

    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.provisioners: dict[str, str] = {}
        self.binding_modes: dict[str, str] = {}
        self.default: str | None = None
        for sc in items:
            name = sc["metadata"]["name"]
            self.provisioners[name] = str(sc.get("provisioner", ""))
            self.binding_modes[name] = str(sc.get("volumeBindingMode") or "Immediate")
            annotations = sc["metadata"].get("annotations") or {}
            if any(annotations.get(a) == "true" for a in _DEFAULT_CLASS):
                self.default = name

    @classmethod
    def read(cls, kube: Kube) -> TargetClasses:
        return cls(kube.list(STORAGE_CLASSES)[0])


def check_class_mapping(spec: RestoreSpec, classes: TargetClasses) -> None:
    missing = sorted({t for t in spec.storage_class_mapping.values() if t not in classes.provisioners})
    if missing:
        raise BackupCenterError("StorageClassMissing", name=", ".join(missing))


def image_rules(kube: Kube, namespace: str) -> ImageRules:
    """The cluster's rules; none when the ConfigMap (or the product's namespace) does not exist."""
    found = kube.get(f"/api/v1/namespaces/{namespace}/configmaps/{IMAGE_RULES_CONFIGMAP}")
    if found is None:
        return ImageRules()
    return parse_image_rules({str(k): str(v) for k, v in (found.get("data") or {}).items()})


def target_context(kube: Kube, spec: RestoreSpec, product_namespace: str) -> RestoreContext:
    classes = TargetClasses.read(kube)
    return RestoreContext.from_spec(
        spec,
        storage_classes=classes.provisioners,
        default_storage_class=classes.default,
        image_rules=image_rules(kube, product_namespace),
    )


def plan_groups(index: ResourceIndex, spec: RestoreSpec, target: list[ApiResource]) -> list[GroupPlan]:
    """The selected resources holding objects, grouped into restore phases, in order."""
    names = [canonical_resource(group_resource(b.group, b.plural))
             for b in selected_bundles(index, spec, target) if b.count]
    return [GroupPlan(phase=phase_of(group[0]), resources=group) for group in order_groups(names)]
