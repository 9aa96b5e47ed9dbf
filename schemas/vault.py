"""Vault specs, statuses and the record formats stored in a vault (the contract of issue 4).

A vault is a bucket + prefix (``oss://bucket/prefix``) or a directory (``file:///path``), shared by
many clusters.  Inside it:

``vault.json``                      identity marker, written once when the vault is first created
``backups/<name>/lock.json``        claim: written put-if-absent when a backup starts
``backups/<name>/...``              the backup's own objects (manifests etc.), in subfolders
``backups/<name>/failed.json``      the backup failed (optional; absence of backup.json suffices)
``backups/<name>/backup.json``      commit record, written put-if-absent LAST: the backup is usable
``backups/<name>/deleted.json``     deleted from a cluster that is not its source: hidden, kept

A backup name exists in the vault as soon as its claim does, in whatever state, so a second
backup of that name fails with BackupExistsInVault.  Other clusters list only committed,
non-deleted backups.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from schemas.common import Duration, K8sName, K8sObjectName
from schemas.errors import ErrorInfo

FORMAT_VERSION = 1

# Alibaba Cloud regions with OSS (region ids as used in endpoints oss-<region>[-internal].aliyuncs.com).
OSS_REGIONS: frozenset[str] = frozenset({
    # Chinese mainland
    "cn-hangzhou", "cn-shanghai", "cn-nanjing", "cn-fuzhou", "cn-wuhan-lr", "cn-qingdao", "cn-beijing",
    "cn-zhangjiakou", "cn-huhehaote", "cn-wulanchabu", "cn-shenzhen", "cn-heyuan", "cn-guangzhou",
    "cn-chengdu",
    # finance and government clouds
    "cn-hangzhou-finance", "cn-shanghai-finance-1", "cn-shenzhen-finance-1", "cn-beijing-finance-1",
    "cn-north-2-gov-1",
    # elsewhere
    "cn-hongkong", "ap-northeast-1", "ap-northeast-2", "ap-southeast-1", "ap-southeast-2", "ap-southeast-3",
    "ap-southeast-5", "ap-southeast-6", "ap-southeast-7", "ap-south-1", "us-east-1", "us-west-1",
    "eu-west-1", "eu-central-1", "me-east-1", "me-central-1", "na-south-1",
})
ARCHIVE_STORAGE_CLASSES = frozenset({"Archive", "ColdArchive", "DeepColdArchive"})

_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
_ENDPOINT_RE = re.compile(r"^https?://[A-Za-z0-9.\-\[\]:]+/?$")
VAULT_MARKER_KEY = "vault.json"
BACKUPS_PREFIX = "backups/"


def check_bucket_name(name: str) -> str:
    """OSS bucket naming rules: 3-63 characters, lowercase letters, digits and '-', no '-' at either end."""
    if not _BUCKET_RE.match(name):
        raise ValueError(
            f"bucket name {name!r} is not valid: use 3-63 lowercase letters, digits and '-', "
            "starting and ending with a letter or digit"
        )
    return name


def parse_vault_url(url: str) -> tuple[str, str, str]:
    """``(scheme, location, prefix)``: ("oss", bucket, "a/b") or ("file", "/abs/path", "")."""
    if not isinstance(url, str) or not url.strip():
        raise ValueError("must be a URL like oss://bucket/prefix or file:///absolute/path")
    parts = urlsplit(url.strip())
    if parts.query or parts.fragment:
        raise ValueError(f"{url!r} must not have a query or fragment")
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ValueError(f"{url!r} is not a file URL of an absolute path (use file:///absolute/path)")
        path = unquote(parts.path)
        if not path.startswith("/") or "\x00" in path:
            raise ValueError(f"{url!r} is not a file URL of an absolute path (use file:///absolute/path)")
        if any(seg in (".", "..") for seg in path.split("/")):
            raise ValueError(f"{url!r}: the path must not contain '.' or '..' segments")
        return "file", path.rstrip("/") or "/", ""
    if parts.scheme == "oss":
        if not parts.netloc:
            raise ValueError(f"{url!r} has no bucket (use oss://bucket/prefix)")
        check_bucket_name(parts.netloc)
        prefix = unquote(parts.path).strip("/")
        if prefix and any(seg in ("", ".", "..") for seg in prefix.split("/")):
            raise ValueError(f"{url!r}: the prefix must not contain empty, '.' or '..' segments")
        if len(prefix.encode()) > 512:
            raise ValueError(f"{url!r}: the prefix is longer than 512 bytes")
        return "oss", parts.netloc, prefix
    raise ValueError(f"{url!r} has an unsupported scheme (use oss://bucket/prefix or file:///absolute/path)")


class VaultNetwork(StrEnum):
    internal = "internal"  # the in-region (VPC) endpoint: oss-<region>-internal.aliyuncs.com
    public = "public"  # the internet endpoint: other regions, edge clusters, outside the VPC


class VaultEncryption(StrEnum):
    none = "none"
    oss_managed = "oss-managed"  # SSE with OSS-managed keys (AES256)
    kms = "kms"  # SSE with a KMS key (kms_key_id, or the account's default key)


class SecretRef(BaseModel):
    """Where the OSS credentials live: a Kubernetes Secret (never the values themselves)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: K8sObjectName
    namespace: K8sName | None = Field(default=None, description="Default: the product's namespace")

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name


class StoreSpec(BaseModel):
    """Where a vault's objects live and how to reach them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str = Field(description="oss://bucket/prefix or file:///absolute/path")
    endpoint: str | None = Field(default=None, description="Explicit endpoint, overriding region + network")
    region: str | None = Field(default=None, validate_default=True, description="e.g. cn-hangzhou")
    network: VaultNetwork = Field(default=VaultNetwork.internal, validate_default=True)
    encryption: VaultEncryption = Field(default=VaultEncryption.none, validate_default=True)
    kms_key_id: str | None = Field(default=None, validate_default=True)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        scheme, location, prefix = parse_vault_url(value)
        # One spelling per location, so "the same spec" compares equal.
        return f"oss://{location}/{prefix}" if scheme == "oss" else f"file://{location}"

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        if value is not None and not _ENDPOINT_RE.match(value):
            raise ValueError(f"{value!r} is not an endpoint URL like https://oss-cn-hangzhou.aliyuncs.com")
        return value.rstrip("/") if value else value

    @field_validator("region")
    @classmethod
    def _region(cls, value: str | None, info: ValidationInfo) -> str | None:
        url = info.data.get("url", "")
        if value is None:
            if url.startswith("oss://") and not info.data.get("endpoint"):
                raise ValueError("is required for oss:// vaults (e.g. cn-hangzhou)")
            return None
        if url.startswith("file://"):
            raise ValueError("applies to oss:// vaults only")
        if value.startswith("oss-"):
            value = value[4:]  # accept the endpoint spelling oss-cn-hangzhou
        if value not in OSS_REGIONS:
            raise ValueError(f"{value!r} is not an Alibaba Cloud region with OSS "
                             "(e.g. cn-hangzhou, ap-southeast-1)")
        return value

    @field_validator("network")
    @classmethod
    def _network(cls, value: VaultNetwork, info: ValidationInfo) -> VaultNetwork:
        if value != VaultNetwork.internal and info.data.get("url", "").startswith("file://"):
            raise ValueError("applies to oss:// vaults only")
        return value

    @field_validator("encryption")
    @classmethod
    def _encryption(cls, value: VaultEncryption, info: ValidationInfo) -> VaultEncryption:
        if value != VaultEncryption.none and info.data.get("url", "").startswith("file://"):
            raise ValueError("server-side encryption applies to oss:// vaults only")
        return value

    @field_validator("kms_key_id")
    @classmethod
    def _kms_key(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and info.data.get("encryption") != VaultEncryption.kms:
            raise ValueError("is only valid with encryption 'kms'")
        if value is not None and not value.strip():
            raise ValueError("must not be empty")
        return value

    @property
    def scheme(self) -> str:
        return self.url.split("://", 1)[0]

    @property
    def location(self) -> tuple[str, str]:
        """(bucket, prefix) for oss, (path, "") for file."""
        _, location, prefix = parse_vault_url(self.url)
        return location, prefix


class VaultSpec(StoreSpec):
    """A backup vault as created by ``backupctl vault create``; immutable afterwards."""

    name: K8sName
    credentials: SecretRef | None = Field(
        default=None, description="Secret with the AccessKey; default: the worker's environment / RAM role"
    )
    description: str = ""

    def store_spec(self) -> StoreSpec:
        return StoreSpec(**self.model_dump(include=set(StoreSpec.model_fields)))

    def differences(self, other: VaultSpec) -> list[str]:
        """Human-readable field changes from self to other (for the immutability refusal)."""
        mine, theirs = self.model_dump(mode="json"), other.model_dump(mode="json")
        return [f"{k}: {mine[k]!r} -> {theirs[k]!r}" for k in mine if mine[k] != theirs[k]]


class VaultPhase(StrEnum):
    unknown = "Unknown"  # never checked
    available = "Available"
    unavailable = "Unavailable"


class VaultStatus(BaseModel):
    phase: VaultPhase = VaultPhase.unknown
    last_check_time: datetime | None = None
    last_success_time: datetime | None = None
    cause: str | None = Field(default=None, description="Why the last check failed, one line")
    error: ErrorInfo | None = Field(default=None, description="The full error: code, causes, fixes")
    storage_class: str | None = None


class VaultEntry(BaseModel):
    """A vault as a cluster's registry keeps it.  ``deleted_at`` set: a tombstone, the name is spent."""

    spec: VaultSpec
    vault_id: str = Field(description="The id in the bucket's vault.json, shared by all clusters")
    created_at: datetime
    created_by_cluster: str
    marker: VaultMarker | None = Field(
        default=None, description="The location's vault.json as found at creation (it may predate this entry)"
    )
    status: VaultStatus = Field(default_factory=VaultStatus)
    deleted_at: datetime | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def deleted(self) -> bool:
        return self.deleted_at is not None


# --- records inside the vault ----------------------------------------------------------------
class _Record(BaseModel):
    # Newer writers may add fields; older readers keep working.
    model_config = ConfigDict(extra="allow")

    format_version: int = FORMAT_VERSION


class VaultMarker(_Record):
    """``vault.json``: whose vault this location is."""

    vault_name: str
    vault_id: str
    created_at: datetime
    created_by_cluster: str


class BackupClaim(_Record):
    """``backups/<name>/lock.json``: the name is taken, by this backup run."""

    name: str
    uid: str = Field(description="Unique id of the backup run (e.g. its workflow id); retries reuse it")
    cluster_id: str
    claimed_at: datetime


class BackupOutcome(StrEnum):
    completed = "Completed"
    partially_failed = "PartiallyFailed"


class BackupRecord(_Record):
    """``backups/<name>/backup.json``: the commit record, written last."""

    name: str
    uid: str
    source_cluster: str
    phase: BackupOutcome
    started_at: datetime
    completed_at: datetime
    mode: str | None = None
    namespaces: list[str] = Field(default_factory=list)
    resource_count: int = 0
    volume_count: int = 0
    item_errors: int = 0
    size_bytes: int = Field(default=0, description="Logical bytes of volume data backed up")
    stored_bytes: int = Field(default=0, description="Bytes newly written to the vault")
    object_count: int = 0
    expires_at: datetime | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    details: dict[str, Any] = Field(default_factory=dict, description="Writer-specific summary")


class BackupFailure(_Record):
    """``backups/<name>/failed.json``: the run ended without a commit."""

    name: str
    uid: str
    cluster_id: str
    failed_at: datetime
    error: ErrorInfo | None = None


class DeletionMarker(_Record):
    """``backups/<name>/deleted.json``: deleted from a cluster other than the source."""

    name: str
    uid: str | None = None
    deleted_by_cluster: str
    deleted_at: datetime
    reason: str | None = None


class BackupState(StrEnum):
    in_progress = "InProgress"
    failed = "Failed"
    committed = "Committed"
    deleted = "Deleted"  # marked deleted by a non-source cluster


class VaultBackup(BaseModel):
    """One backup name in a vault, with whatever records it has."""

    name: str
    state: BackupState
    claim: BackupClaim | None = None
    record: BackupRecord | None = None
    failure: BackupFailure | None = None
    deletion: DeletionMarker | None = None

    @property
    def source_cluster(self) -> str | None:
        if self.record is not None:
            return self.record.source_cluster
        return self.claim.cluster_id if self.claim is not None else None


# --- periodic availability checks (workflow and activity payloads) ---------------------------
class VaultCheckRequest(BaseModel):
    names: list[str] | None = Field(default=None, description="None: every live vault of the cluster")


class VaultCheckResult(BaseModel):
    name: str
    phase: VaultPhase
    checked_at: datetime | None = None
    cause: str | None = None


class VaultAvailabilityInput(BaseModel):
    vault_names: list[str] | None = Field(default=None, description="None: every live vault")
    interval: Duration = Field(default=timedelta(minutes=5), description="Time between checks")
    checks_per_run: int = Field(default=100, ge=1, description="Checks before continue-as-new")
