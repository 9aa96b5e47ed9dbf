"""Job specs: what an operator asks for.  Backup, restore, convert, delete, verify, drill, file
restore and plan (schedule)."""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from typing import Annotated, ClassVar, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from schemas.common import Cycle, Duration, K8sName, K8sObjectName, check_dns_label, check_dns_subdomain

# Never backed up unless named explicitly (requirements.md §3); the product's own namespace is
# added from settings at resolve time.
DEFAULT_EXCLUDED_NAMESPACES: tuple[str, ...] = (
    "kube-system",
    "kube-public",
    "kube-node-lease",
    "csdr",
    "ack-csi-fuse",
)


class JobKind(StrEnum):
    backup = "backup"
    restore = "restore"
    convert = "convert"
    delete = "delete"
    verify = "verify"
    drill = "drill"
    files = "files"  # a file restore: chosen paths of a volume copy into a live PVC


class BackupMode(StrEnum):
    application = "application"  # resources + data of volumes mounted by the selection's pods
    data_protection = "data-protection"  # PVCs/PVs and their data only, mounted or not


class ClusterResources(StrEnum):
    related = "related"  # the cluster-scoped objects the selection uses
    all = "all"
    none = "none"


def _resource_name(value: str) -> str:
    # Resource types are given as plural names, optionally group-qualified: pvc, deployments.apps
    if not value or any(c.isspace() or c == "/" for c in value):
        raise ValueError(f"{value!r} is not a resource type (use forms like pvc, deployments.apps)")
    return value.lower()


ResourceType = Annotated[str, AfterValidator(_resource_name)]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # What the model validators below check, as CEL rules on the custom resource's spec
    # (schemas/resources.py), so the API server refuses the same mistakes at admission.  Each class
    # lists its own; the resource gathers them along the class hierarchy.
    CEL_RULES: ClassVar[tuple[tuple[str, str], ...]] = ()


def _not_both(a: str, b: str) -> tuple[str, str]:
    return (
        f"!(has(self.{a}) && size(self.{a}) > 0 && has(self.{b}) && size(self.{b}) > 0)",
        f"give {a} or {b}, not both",
    )


class NamespaceSelection(_Spec):
    CEL_RULES = (_not_both("includeNamespaces", "excludeNamespaces"),)

    include_namespaces: list[K8sName] = Field(default_factory=list)
    exclude_namespaces: list[K8sName] = Field(default_factory=list)

    @model_validator(mode="after")
    def _include_or_exclude(self) -> Self:
        if self.include_namespaces and self.exclude_namespaces:
            raise ValueError("give include_namespaces or exclude_namespaces, not both")
        return self


class BackupTemplate(NamespaceSelection):
    """Everything of a backup but its name; plans hold one."""

    CEL_RULES = (_not_both("includeResources", "excludeResources"),)

    vault: K8sName
    mode: BackupMode = BackupMode.application
    label_selector: str | None = None
    include_resources: list[ResourceType] = Field(default_factory=list)
    exclude_resources: list[ResourceType] = Field(default_factory=list)
    cluster_resources: ClusterResources = ClusterResources.related
    volume_data: bool = True
    ttl: Duration = timedelta(days=30)

    @model_validator(mode="after")
    def _resources_include_or_exclude(self) -> Self:
        if self.include_resources and self.exclude_resources:
            raise ValueError("give include_resources or exclude_resources, not both")
        return self


class BackupSpec(BackupTemplate):
    name: K8sName
    plan: K8sName | None = Field(default=None, description="The plan that started this backup, if any")


class ExistingResourcePolicy(StrEnum):
    none = "none"  # keep what exists, report it as skipped
    update = "update"  # patch the existing object to the backed-up state


class RestoreSpec(NamespaceSelection):
    name: K8sName
    backup: K8sName
    vault: K8sName
    include_resources: list[ResourceType] = Field(default_factory=list)
    exclude_resources: list[ResourceType] = Field(default_factory=list)
    namespace_mapping: dict[K8sName, K8sName] = Field(default_factory=dict)
    storage_class_mapping: dict[K8sObjectName, K8sObjectName] = Field(default_factory=dict)
    image_registry_mapping: dict[str, str] = Field(default_factory=dict)
    convert_to_access_modes: list[str] = Field(default_factory=list)
    preserve_node_ports: bool = Field(
        default=False,
        description="Keep every node port of NodePort and LoadBalancer services (and healthCheckNodePort "
        "of LoadBalancer/Local ones); by default only node ports set explicitly are kept, auto-assigned "
        "ones are allocated anew",
    )
    isolated: bool = Field(
        default=False,
        description="A restore beside the running source (a restore drill's) that must not take its "
        "traffic: Services become ClusterIP (node ports, load balancer fields and annotations dropped), "
        "Ingresses are not restored, CronJobs are suspended; overrides preserveNodePorts",
    )
    existing_resource_policy: ExistingResourcePolicy = ExistingResourcePolicy.none
    volume_data: bool = True
    unattended: bool = Field(
        default=False,
        description="Nobody steers this restore (a restore drill's): a failed per-volume or per-phase step "
        "counts its objects as failed instead of waiting for an operator; any other failed step fails it",
    )


class ConvertSpec(_Spec):
    CEL_RULES = (
        (
            "size(self.storageClassMapping) > 0",
            "storageClassMapping must name at least one source → target class",
        ),
    )

    name: K8sName
    backup: K8sName
    vault: K8sName
    storage_class_mapping: dict[K8sObjectName, K8sObjectName]
    convert_to_access_modes: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _has_mapping(self) -> Self:
        if not self.storage_class_mapping:
            raise ValueError("storage_class_mapping must name at least one source → target class")
        return self


class DeleteSpec(_Spec):
    name: K8sName
    target_kind: JobKind
    target: K8sName
    vault: K8sName | None = None


class VerifySpec(_Spec):
    """Check that a backup is restorable without restoring it (``backupctl backup verify``)."""

    name: K8sName
    backup: K8sName
    vault: K8sName
    read_data: bool = Field(default=False, description="read every pack and check every chunk "
                                                       "(like restic check --read-data)")


class DrillSpec(_Spec):
    """Prove a backup restorable by restoring it (``backupctl backup drill``): into scratch
    namespaces of this cluster, checked against the backup, then removed."""

    name: K8sName
    backup: K8sName
    vault: K8sName


def _volume_ref(value: str) -> str:
    namespace, _, pvc = value.partition("/")
    try:
        check_dns_label(namespace)
        check_dns_subdomain(pvc)
    except ValueError:
        raise ValueError(f"{value!r} is not <namespace>/<pvc>") from None
    return value


def _subdir(value: str) -> str:
    """A directory inside the target volume, from its root: "" is the root itself."""
    rel = value.strip("/")
    parts = rel.split("/") if rel else []
    if any(p in ("", ".", "..") or "\0" in p for p in parts):
        raise ValueError(f"{value!r} leaves the volume or is not normalised (no '..', '.' or empty parts)")
    return "/".join(parts)


VolumeRef = Annotated[str, AfterValidator(_volume_ref)]


class FileRestoreSpec(_Spec):
    """Restore chosen paths of a volume's file-level copy into a live PVC (``backupctl restore files
    --to-pvc``), through the node worker of the node that mounts it; the rest of the PVC is untouched."""

    CEL_RULES = (("size(self.paths) > 0", "paths must name at least one file or directory"),)

    name: K8sName
    backup: K8sName
    vault: K8sName
    volume: VolumeRef = Field(description="The backed-up volume, <namespace>/<pvc> as in the backup")
    paths: list[str] = Field(description="Files or directories inside the volume, from its root")
    target_namespace: K8sName
    target_pvc: K8sObjectName
    subdir: Annotated[str, AfterValidator(_subdir)] = Field(
        default="", description="A directory of the target PVC to restore under (created if missing)"
    )
    overwrite: bool = Field(default=False, description="Replace files that are already there")

    @model_validator(mode="after")
    def _has_paths(self) -> Self:
        if not self.paths:
            raise ValueError("paths must name at least one file or directory")
        return self

    @property
    def target(self) -> str:
        return f"{self.target_namespace}/{self.target_pvc}" + (f":{self.subdir}" if self.subdir else "")


class PlanSpec(_Spec):
    name: K8sName
    cycle: Cycle = Field(description="5-field cron expression or an interval such as 6h30m")
    template: BackupTemplate
    paused: bool = False
    drill_every: Duration | None = Field(
        default=None,
        description="Restore-drill the plan's newest backup when the last drill of its backups is at least "
        "this old (checked after each run, so at most once per run); none by default",
    )
