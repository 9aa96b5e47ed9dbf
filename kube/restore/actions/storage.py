"""PersistentVolumeClaims, PersistentVolumes and StatefulSet claim templates.

Storage classes are mapped, disk volumes are raised to the disk minimum (20 GiB), access modes
are converted when asked, and disk claims that need multi-node access fail with the reference
product's message unless converted.
"""

from __future__ import annotations

from typing import Any

from kube.restore.actions.meta import copied
from kube.restore.context import DISK_PROVISIONER, MULTI_NODE_MODES, ActionResult, RestoreContext
from kube.restore.quantity import GIB, format_gib, quantity_bytes

DISK_MINIMUM = 20 * GIB

# Written by the PV controller, the scheduler and the provisioner of the source cluster; stale
# values would stop the target from binding and provisioning the claim itself.
PVC_STALE_ANNOTATIONS = (
    "pv.kubernetes.io/bind-completed",
    "pv.kubernetes.io/bound-by-controller",
    "volume.kubernetes.io/selected-node",
    "volume.beta.kubernetes.io/storage-provisioner",
    "volume.kubernetes.io/storage-provisioner",
)
LEGACY_CLASS_ANNOTATION = "volume.beta.kubernetes.io/storage-class"


def _raise_size(holder: dict[str, Any], key: str, what: str, warnings: list[str]) -> None:
    raw = holder.get(key)
    if raw is None:
        return
    try:
        size = quantity_bytes(raw)
    except ValueError as exc:
        warnings.append(f"{what}: size left unchanged: {exc}")
        return
    if size < DISK_MINIMUM:
        holder[key] = format_gib(DISK_MINIMUM)
        minimum = format_gib(DISK_MINIMUM)
        warnings.append(f"{what}: disk volume raised from {raw} to {minimum} (the disk minimum)")


def _convert_modes(spec: dict[str, Any], what: str, ctx: RestoreContext, *, converting: bool,
                   disk: bool, warnings: list[str]) -> None:
    modes = list(spec.get("accessModes") or [])
    wanted = list(ctx.convert_to_access_modes)
    # Conversion applies to volumes moving to another class and to disk volumes that cannot
    # keep multi-node modes; other volumes keep what the application asked for.
    needed = converting or (disk and any(m in MULTI_NODE_MODES for m in modes))
    if wanted and needed and modes != wanted:
        spec["accessModes"] = wanted
        before, after = ", ".join(modes) or "none", ", ".join(wanted)
        warnings.append(f"{what}: access modes converted from {before} to {after}")


def rewrite_claim_spec(spec: dict[str, Any], what: str, ctx: RestoreContext, *,
                       provisioner_hint: str = "") -> tuple[list[str], str | None]:
    """Class mapping, access-mode conversion and disk size for a claim spec (a PVC's or a claim
    template's), in place.  Returns warnings and, for a disk claim that still needs multi-node
    access, the offending mode."""
    warnings: list[str] = []
    source_class = spec.get("storageClassName") or ""
    converting = source_class in ctx.storage_class_mapping
    if converting:
        spec["storageClassName"] = ctx.storage_class_mapping[source_class]
    # Absent means the target's default class; "" means none (a statically bound volume).
    target_class = spec.get("storageClassName") if "storageClassName" in spec else ctx.default_storage_class
    if ctx.knows_class(target_class) or converting:
        disk = ctx.is_disk_class(target_class)
    else:
        # A class the target lacks: the source's provisioner is the best knowledge left.
        disk = provisioner_hint == DISK_PROVISIONER
    _convert_modes(spec, what, ctx, converting=converting, disk=disk, warnings=warnings)
    if not disk:
        return warnings, None
    resources = spec.get("resources") or {}
    _raise_size(resources.get("requests") or {}, "storage", what, warnings)
    limit = (resources.get("limits") or {}).get("storage")
    if limit is not None:
        _raise_size(resources["limits"], "storage", f"{what} (limit)", [])
    if spec.get("volumeMode") != "Block":
        for mode in spec.get("accessModes") or []:
            if mode in MULTI_NODE_MODES:
                return warnings, mode
    return warnings, None


def pvc_action(obj: dict[str, Any], ctx: RestoreContext) -> ActionResult:
    obj = copied(obj)
    meta = obj.setdefault("metadata", {})
    spec = obj.setdefault("spec", {})
    annotations = meta.get("annotations") or {}
    hint = annotations.get("volume.kubernetes.io/storage-provisioner") or annotations.get(
        "volume.beta.kubernetes.io/storage-provisioner", "")
    for name in PVC_STALE_ANNOTATIONS:
        annotations.pop(name, None)
    legacy_class = annotations.get(LEGACY_CLASS_ANNOTATION)
    if legacy_class:
        # Old claims name their class only in this annotation; the field says the same to the
        # target and lets rewrite_claim_spec map and size it.
        annotations[LEGACY_CLASS_ANNOTATION] = ctx.storage_class_mapping.get(legacy_class, legacy_class)
        spec.setdefault("storageClassName", legacy_class)

    # A data source of the source cluster (its snapshot or claim) does not exist here; a claim
    # restored from the backup's snapshot gets its data source from the restore workflow.
    spec.pop("dataSource", None)
    spec.pop("dataSourceRef", None)

    # Keep the binding only to a PV this restore creates; otherwise the claim gets a new volume.
    volume = spec.get("volumeName")
    if volume:
        if volume in ctx.pv_renames:
            spec["volumeName"] = ctx.pv_renames[volume]
        else:
            del spec["volumeName"]

    pvc = f"{meta.get('namespace', '')}/{meta.get('name', '')}"
    converted = ctx.converted_access_modes.get(pvc)
    if converted and list(spec.get("accessModes") or []) != list(converted):
        # Its data comes from a conversion's snapshot, which fixed the modes of the new volume.
        spec["accessModes"] = list(converted)
    warnings, bad_mode = rewrite_claim_spec(spec, f"PVC {pvc}", ctx, provisioner_hint=hint)
    if bad_mode:
        return ActionResult.fail("DiskMultiNodeAccess", warnings, pvc=pvc, mode=bad_mode)
    return ActionResult.keep(obj, warnings)


def pv_action(obj: dict[str, Any], ctx: RestoreContext) -> ActionResult:
    obj = copied(obj)
    meta = obj.setdefault("metadata", {})
    name = meta.get("name", "")
    if name not in ctx.pv_renames:
        return ActionResult.skip(
            "not restored as an object: its claim is restored with a new volume "
            "(provisioned, from a snapshot, or filled from the backup)"
        )
    meta["name"] = ctx.pv_renames[name]
    spec = obj.setdefault("spec", {})
    claim = spec.get("claimRef")
    if claim:
        # The claim will be a new object: match it by namespace and name, not by the old uid.
        for stale in ("uid", "resourceVersion"):
            claim.pop(stale, None)
        if claim.get("namespace"):
            claim["namespace"] = ctx.map_namespace(claim["namespace"])

    warnings: list[str] = []
    source_class = spec.get("storageClassName") or ""
    converting = source_class in ctx.storage_class_mapping
    if converting:
        spec["storageClassName"] = ctx.storage_class_mapping[source_class]
    driver = (spec.get("csi") or {}).get("driver", "")
    disk = ctx.is_disk_class(spec.get("storageClassName")) or driver == DISK_PROVISIONER
    _convert_modes(spec, f"PV {meta['name']}", ctx, converting=converting, disk=disk, warnings=warnings)
    if disk:
        _raise_size(spec.get("capacity") or {}, "storage", f"PV {meta['name']}", warnings)
    return ActionResult.keep(obj, warnings)


def claim_templates_action(obj: dict[str, Any], ctx: RestoreContext) -> ActionResult:
    """StatefulSet volumeClaimTemplates get the same class, size and access-mode rules."""
    templates = (obj.get("spec") or {}).get("volumeClaimTemplates")
    if not templates:
        return ActionResult.keep(obj)
    obj = copied(obj)
    meta = obj.get("metadata") or {}
    namespace, owner = meta.get("namespace", ""), meta.get("name", "")
    warnings: list[str] = []
    for template in obj["spec"]["volumeClaimTemplates"]:
        t_meta = template.setdefault("metadata", {})
        for name in PVC_STALE_ANNOTATIONS:
            (t_meta.get("annotations") or {}).pop(name, None)
        template.pop("status", None)
        pvc = f"{namespace}/{t_meta.get('name', '')}-{owner}-*"
        found, bad_mode = rewrite_claim_spec(template.setdefault("spec", {}), f"PVC {pvc}", ctx)
        warnings += found
        if bad_mode:
            return ActionResult.fail("DiskMultiNodeAccess", warnings, pvc=pvc, mode=bad_mode)
    return ActionResult.keep(obj, warnings)
