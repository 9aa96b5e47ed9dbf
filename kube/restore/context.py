"""What item actions know about the restore, and what they return."""

from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator

from kube.restore.images import ImageRules
from schemas.errors import BackupCenterError, ErrorInfo
from schemas.specs import RestoreSpec

DISK_PROVISIONER = "diskplugin.csi.alibabacloud.com"
NAS_PROVISIONER = "nasplugin.csi.alibabacloud.com"
ACCESS_MODES = ("ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod")
MULTI_NODE_MODES = ("ReadWriteMany", "ReadOnlyMany")

RESTORE_LABEL = "backupcenter.io/restore"
BACKUP_ANNOTATION = "backupcenter.io/backup"


class RestoreContext(BaseModel):
    """Everything an action may consult; built once per restore (and passed to activities)."""

    model_config = ConfigDict(frozen=True)

    restore_name: str
    backup_name: str
    namespace_mapping: dict[str, str] = Field(default_factory=dict)
    storage_class_mapping: dict[str, str] = Field(default_factory=dict)
    image_registry_mapping: dict[str, str] = Field(default_factory=dict)
    image_rules: ImageRules = Field(default_factory=ImageRules)
    convert_to_access_modes: tuple[str, ...] = ()
    preserve_node_ports: bool = False  # False: keep explicitly set node ports only (RestoreSpec)
    isolated: bool = False  # beside the running source: take none of its traffic (RestoreSpec)
    storage_classes: dict[str, str] = Field(
        default_factory=dict, description="The target cluster's storage classes: name -> provisioner"
    )
    default_storage_class: str | None = Field(
        default=None, description="The target's default class, used by PVCs that name none"
    )
    pv_renames: dict[str, str] = Field(
        default_factory=dict,
        description="PVs this restore creates from their YAML: backup name -> target name (often the "
        "same). A PV not listed is not restored as an object: its claim gets a new volume.",
    )
    converted_access_modes: dict[str, tuple[str, ...]] = Field(
        default_factory=dict,
        description="Claims restored from a storage-class conversion's snapshot: '<ns>/<pvc>' in the "
        "target -> the access modes the conversion gave the volume",
    )
    owner_uids: dict[str, str] = Field(
        default_factory=dict,
        description="Owners already restored: 'Kind/namespace/name' (namespace empty for cluster-scoped "
        "owners) -> their new uid, so ownerReferences can point at them",
    )

    @field_validator("convert_to_access_modes")
    @classmethod
    def _known_modes(cls, modes: tuple[str, ...]) -> tuple[str, ...]:
        for mode in modes:
            if mode not in ACCESS_MODES:
                raise ValueError(f"{mode!r} is not an access mode (one of {', '.join(ACCESS_MODES)})")
        return modes

    @classmethod
    def from_spec(cls, spec: RestoreSpec, **cluster: Any) -> Self:
        """The spec's choices plus what the workflow learnt about the target (storage_classes,
        default_storage_class, image_rules, pv_renames, owner_uids)."""
        return cls(
            restore_name=spec.name,
            backup_name=spec.backup,
            namespace_mapping=dict(spec.namespace_mapping),
            storage_class_mapping=dict(spec.storage_class_mapping),
            image_registry_mapping=dict(spec.image_registry_mapping),
            convert_to_access_modes=tuple(spec.convert_to_access_modes),
            preserve_node_ports=spec.preserve_node_ports,
            isolated=spec.isolated,
            **cluster,
        )

    def map_namespace(self, namespace: str) -> str:
        return self.namespace_mapping.get(namespace, namespace)

    def is_disk_class(self, name: str | None) -> bool:
        return bool(name) and self.storage_classes.get(name or "") == DISK_PROVISIONER

    def knows_class(self, name: str | None) -> bool:
        return bool(name) and (name or "") in self.storage_classes


class ActionResult(BaseModel):
    """The outcome of one action on one object: the objects to create (none to drop it), warnings
    for ``describe``, and either a reason it was skipped or the error that fails the item."""

    objects: list[dict[str, Any]] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    skip_reason: str | None = None
    error: ErrorInfo | None = None

    @classmethod
    def keep(cls, obj: dict[str, Any], warnings: list[str] | None = None) -> ActionResult:
        return cls(objects=[obj], warnings=list(warnings or []))

    @classmethod
    def skip(cls, reason: str) -> ActionResult:
        return cls(skip_reason=reason)

    @classmethod
    def fail(cls, code: str, warnings: list[str] | None = None, **params: Any) -> ActionResult:
        return cls(error=BackupCenterError(code, **params).info(), warnings=list(warnings or []))

    @property
    def failed(self) -> bool:
        return self.error is not None
