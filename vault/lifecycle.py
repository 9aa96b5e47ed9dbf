"""Vault lifecycle: create, list, describe, check, delete, against a small registry abstraction.

Rules (requirements §2):

* A vault is immutable: creating it again with the same spec is a no-op, with a different spec
  it is refused with the fields that differ.  To change a vault, delete it and create a new one
  under a new name (the new vault may use the same bucket: it adopts its backups).
* A deleted vault's name is never reused: the registry keeps a tombstone.
* A bucket of an archive storage class cannot host a vault (metadata must be rewritable).
* ``check`` records Available/Unavailable, the check time, the last success and the cause, which
  reads ``VaultError: backup vault is unavailable: <cause>``.

The registry is per cluster (a JSON file per vault here; a ConfigMap in the cluster).  The bucket
holds ``vault.json``, the vault's identity shared by every cluster: a later check that finds it
gone or different reports the vault unavailable (the location was emptied or replaced).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from pydantic import ValidationError

from schemas.common import check_dns_label
from schemas.errors import BackupCenterError
from schemas.vault import (
    ARCHIVE_STORAGE_CLASSES,
    VaultEntry,
    VaultMarker,
    VaultPhase,
    VaultSpec,
    VaultStatus,
)
from vault.catalog import init_vault_marker, read_vault_marker
from vault.credentials import CredentialsError, OssCredentials, credentials_from_secret
from vault.open import from_validation_error, invalid, open_store
from vault.store import ObjectStore, ObjectStoreError, as_product_error

log = logging.getLogger(__name__)


# --- the registry ---------------------------------------------------------------------------
@runtime_checkable
class VaultRegistry(Protocol):
    """Where a cluster keeps its vaults.  Entries with ``deleted_at`` are tombstones."""

    def get(self, name: str) -> VaultEntry | None:
        """The entry (live or tombstone), or None."""
        ...

    def list(self) -> list[VaultEntry]:
        """All entries, tombstones included, by name."""
        ...

    def add(self, entry: VaultEntry) -> bool:
        """Store a new entry; False (and no change) if the name has an entry already."""
        ...

    def set_status(self, name: str, status: VaultStatus) -> VaultEntry | None:
        """Replace a live entry's status; None if there is no live entry of that name."""
        ...

    def tombstone(self, name: str, deleted_at: datetime) -> VaultEntry | None:
        """Mark an entry deleted (idempotent); None if there is no entry of that name."""
        ...


class FileVaultRegistry:
    """A JSON file per vault under ``directory`` (the CLI's local state)."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def _path(self, name: str) -> Path:
        return self.directory / f"{check_dns_label(name)}.json"

    @contextmanager
    def _locked(self) -> Iterator[None]:
        # Read-modify-write of one entry must not interleave with another (status vs tombstone).
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / ".lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read(self, path: Path) -> VaultEntry | None:
        try:
            return VaultEntry.model_validate_json(path.read_text())
        except FileNotFoundError:
            return None
        except (ValidationError, ValueError) as err:
            raise BackupCenterError("InvalidSpec", field=f"vault registry file {path}",
                                    reason=f"unreadable: {err}") from None

    def _write(self, entry: VaultEntry, *, exclusive: bool) -> bool:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self._path(entry.name)
        tmp = self.directory / f".{entry.name}.{uuid.uuid4().hex}.tmp"
        tmp.write_text(entry.model_dump_json(indent=2))
        try:
            if exclusive:
                try:
                    os.link(tmp, path)
                except FileExistsError:
                    return False
            else:
                os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return True

    def get(self, name: str) -> VaultEntry | None:
        try:
            path = self._path(name)
        except ValueError:
            return None  # not a valid vault name: no such vault
        return self._read(path)

    def list(self) -> list[VaultEntry]:
        if not self.directory.is_dir():
            return []
        entries = (self._read(p) for p in sorted(self.directory.glob("*.json")))
        return [e for e in entries if e is not None]

    def add(self, entry: VaultEntry) -> bool:
        return self._write(entry, exclusive=True)

    def set_status(self, name: str, status: VaultStatus) -> VaultEntry | None:
        with self._locked():
            entry = self.get(name)
            if entry is None or entry.deleted:
                return None
            entry = entry.model_copy(update={"status": status})
            self._write(entry, exclusive=False)
            return entry

    def tombstone(self, name: str, deleted_at: datetime) -> VaultEntry | None:
        with self._locked():
            entry = self.get(name)
            if entry is None or entry.deleted:
                return entry
            entry = entry.model_copy(update={"deleted_at": deleted_at})
            self._write(entry, exclusive=False)
            return entry


# --- credentials ----------------------------------------------------------------------------
CredentialsResolver = Callable[[VaultSpec], OssCredentials | None]


def env_credentials(spec: VaultSpec) -> OssCredentials | None:
    """Resolver without Kubernetes: the environment's credentials; a Secret reference is an error."""
    if spec.credentials is not None:
        raise invalid("credentials", f"vault {spec.name} names Secret {spec.credentials}, but this process "
                                     "has no Kubernetes access to read it")
    return None  # open_store falls back to ALIBABA_CLOUD_* variables


def kube_secret_resolver(core_api: Any, default_namespace: str) -> CredentialsResolver:
    """Resolver reading the vault's Secret through a kubernetes ``CoreV1Api``."""

    def resolve(spec: VaultSpec) -> OssCredentials | None:
        ref = spec.credentials
        if ref is None:
            return None
        namespace = ref.namespace or default_namespace
        try:
            secret = core_api.read_namespaced_secret(ref.name, namespace)
        except Exception as err:  # ApiException and transport errors: the status is what matters
            status = getattr(err, "status", None)
            why = "does not exist" if status == 404 else f"cannot be read ({status or type(err).__name__})"
            raise invalid("credentials", f"Secret {namespace}/{ref.name} {why}") from None
        try:
            return credentials_from_secret(secret.data or {}, secret_name=f"Secret {namespace}/{ref.name}")
        except CredentialsError as err:
            raise invalid("credentials", str(err)) from None

    return resolve


# --- the lifecycle --------------------------------------------------------------------------
def _utcnow() -> datetime:
    return datetime.now(UTC)


def unavailable_status(err: BackupCenterError, *, now: datetime, previous: VaultStatus) -> VaultStatus:
    cause = err.params.get("cause") if err.code == "VaultUnavailable" else err.message
    return VaultStatus(phase=VaultPhase.unavailable, last_check_time=now,
                       last_success_time=previous.last_success_time, cause=cause, error=err.info(),
                       storage_class=previous.storage_class)


@dataclass
class VaultManager:
    """Create/list/describe/check/delete vaults of one cluster."""

    registry: VaultRegistry
    cluster_id: str
    resolve_credentials: CredentialsResolver = env_credentials
    store_options: dict[str, Any] = field(default_factory=dict)
    clock: Callable[[], datetime] = _utcnow

    # --- stores ---------------------------------------------------------------------------
    def open_spec(self, spec: VaultSpec, *, create: bool = False) -> ObjectStore:
        credentials = self.resolve_credentials(spec)
        return open_store(spec, credentials=credentials, create=create, **self.store_options)

    def store(self, name: str) -> ObjectStore:
        """The object store of a live vault (for backup, restore and delete activities)."""
        return self.open_spec(self.describe(name).spec)

    # --- operations ------------------------------------------------------------------------
    def create(self, spec: VaultSpec | dict[str, Any]) -> VaultEntry:
        if not isinstance(spec, VaultSpec):
            try:
                spec = VaultSpec.model_validate(spec)
            except ValidationError as err:
                raise from_validation_error(err) from None
        existing = self.registry.get(spec.name)
        if existing is not None:
            return self._same_or_refuse(existing, spec)
        now = self.clock()
        try:
            store = self.open_spec(spec, create=True)
            store.check()
            storage_class = _storage_class(store)
            if storage_class in ARCHIVE_STORAGE_CLASSES:
                bucket = spec.location[0]
                raise BackupCenterError("VaultArchiveBucket", bucket=bucket, storage_class=storage_class)
            fresh = VaultMarker(vault_name=spec.name, vault_id=uuid.uuid4().hex, created_at=now,
                                created_by_cluster=self.cluster_id)
            marker, _ = init_vault_marker(store, fresh)
        except ObjectStoreError as err:
            raise as_product_error(err) from err
        except OSError as err:  # e.g. the parent of a file:// directory cannot be created
            raise BackupCenterError("VaultUnavailable", cause=f"{spec.url}: {err.strerror or err}") from err
        entry = VaultEntry(
            spec=spec, vault_id=marker.vault_id, created_at=now, created_by_cluster=self.cluster_id,
            marker=marker,
            status=VaultStatus(phase=VaultPhase.available, last_check_time=now, last_success_time=now,
                               storage_class=storage_class),
        )
        if not self.registry.add(entry):
            # Someone created the same name meanwhile: answer as if we had come second.
            raced = self.registry.get(spec.name)
            assert raced is not None
            return self._same_or_refuse(raced, spec)
        return entry

    def _same_or_refuse(self, existing: VaultEntry, spec: VaultSpec) -> VaultEntry:
        if existing.deleted:
            raise BackupCenterError("VaultNameReused", name=spec.name)
        changes = existing.spec.differences(spec)
        if changes:
            raise BackupCenterError("VaultImmutable", name=spec.name,
                                    reason="it exists with a different spec (" + "; ".join(changes) + ")")
        return existing

    def list(self, *, include_deleted: bool = False) -> list[VaultEntry]:
        return [e for e in self.registry.list() if include_deleted or not e.deleted]

    def describe(self, name: str) -> VaultEntry:
        entry = self.registry.get(name)
        if entry is None or entry.deleted:
            raise BackupCenterError("NotFound", kind="vault", name=name)
        return entry

    def check(self, name: str) -> VaultStatus:
        """Check that the vault can be used now; record and return the status."""
        entry = self.describe(name)
        now = self.clock()
        try:
            status = self._probe(entry, now)
        except BackupCenterError as err:
            status = unavailable_status(err, now=now, previous=entry.status)
        self.registry.set_status(name, status)
        return status

    def _probe(self, entry: VaultEntry, now: datetime) -> VaultStatus:
        try:
            store = self.open_spec(entry.spec)
            store.check()
            storage_class = _storage_class(store)
            marker = read_vault_marker(store)
        except ObjectStoreError as err:
            raise as_product_error(err) from err
        if storage_class in ARCHIVE_STORAGE_CLASSES:
            raise BackupCenterError("VaultArchiveBucket", bucket=entry.spec.location[0],
                                    storage_class=storage_class)
        if marker is None:
            raise BackupCenterError("VaultUnavailable", cause=f"{entry.spec.url} has no vault.json: the "
                                    "location was emptied or replaced since the vault was created")
        if marker.vault_id != entry.vault_id:
            raise BackupCenterError("VaultUnavailable", cause=f"{entry.spec.url} now holds another vault "
                                                              f"({marker.vault_name}, id {marker.vault_id})")
        _remove_dead_uploads(store, entry.name)
        return VaultStatus(phase=VaultPhase.available, last_check_time=now, last_success_time=now,
                           storage_class=storage_class)

    def check_all(self, names: Sequence[str] | None = None) -> dict[str, VaultStatus]:
        """Check the named vaults, or every live one; a vanished name is skipped."""
        result: dict[str, VaultStatus] = {}
        for name in names if names is not None else [e.name for e in self.list()]:
            try:
                result[name] = self.check(name)
            except BackupCenterError as err:
                if err.code != "NotFound":
                    raise
        return result

    def delete(self, name: str) -> VaultEntry:
        """Forget the vault on this cluster (its bucket and backups stay); the name is spent."""
        entry = self.registry.tombstone(name, self.clock())
        if entry is None:
            raise BackupCenterError("NotFound", kind="vault", name=name)
        return entry


def _remove_dead_uploads(store: ObjectStore, name: str) -> None:
    """What writers that died mid-upload left (a file store's temporary files, an OSS bucket's
    incomplete multipart uploads, whose parts OSS keeps and bills until aborted): removed once old
    enough that no live writer can own them (each store's own threshold).  The availability check
    runs every few minutes, so leftovers last that threshold and no longer.  Best effort: a
    failure here says nothing about whether the vault can be used."""
    cleanup = getattr(store, "cleanup_incomplete_uploads", None)
    if not callable(cleanup):
        return
    try:
        removed = int(cleanup())
    except ObjectStoreError as err:
        log.warning("vault %s: leftovers of interrupted uploads not removed: %s", name, err)
        return
    if removed:
        log.info("vault %s: removed %d leftover(s) of interrupted uploads", name, removed)


def _storage_class(store: ObjectStore) -> str:
    getter = getattr(store, "storage_class", None)
    return str(getter()) if callable(getter) else "Standard"


def registry_dir(state_dir: str | Path) -> Path:
    """Where the file registry lives inside a state directory."""
    return Path(state_dir) / "vaults"


def load_registry_file(path: Path) -> dict[str, Any]:
    """Raw JSON of one registry entry (for tooling and tests)."""
    return dict(json.loads(path.read_text()))
