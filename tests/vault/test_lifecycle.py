"""Vault lifecycle: immutability, name reuse, archive buckets, availability checks."""

from __future__ import annotations

import os
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import oss2
import pytest

from localdev.oss_server import LocalOssServer
from schemas.errors import BackupCenterError
from schemas.vault import VAULT_MARKER_KEY, SecretRef, VaultEntry, VaultPhase, VaultSpec, VaultStatus
from tests.vault.conftest import ACCESS_KEY_ID, ACCESS_KEY_SECRET, CREDENTIALS, SMALL_PARTS
from vault.credentials import OssCredentials
from vault.lifecycle import FileVaultRegistry, VaultManager, VaultRegistry, kube_secret_resolver
from vault.ossstore import OssStore


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, minutes: int = 5) -> None:
        self.now += timedelta(minutes=minutes)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def registry(tmp_path: Path) -> FileVaultRegistry:
    return FileVaultRegistry(tmp_path / "state" / "vaults")


def manager(registry: VaultRegistry, clock: Clock, credentials: OssCredentials | None = CREDENTIALS,
            cluster: str = "cluster-a") -> VaultManager:
    return VaultManager(registry, cluster, lambda _spec: credentials, store_options=dict(SMALL_PARTS),
                        clock=clock)


def oss_spec(server: LocalOssServer, bucket: str, name: str = "vault-1", **extra: Any) -> dict[str, Any]:
    return {"name": name, "url": f"oss://{bucket}/backups-root", "region": "cn-hangzhou",
            "endpoint": server.endpoint, **extra}


def error_of(call: Any) -> BackupCenterError:
    with pytest.raises(BackupCenterError) as err:
        call()
    return err.value


def test_registry_is_a_vault_registry(registry: FileVaultRegistry) -> None:
    assert isinstance(registry, VaultRegistry)


def test_create_file_vault(registry: FileVaultRegistry, clock: Clock, tmp_path: Path) -> None:
    mgr = manager(registry, clock, credentials=None)
    entry = mgr.create({"name": "local", "url": f"file://{tmp_path / 'data' / 'vault'}"})
    assert entry.status.phase == VaultPhase.available
    assert entry.status.last_check_time == entry.status.last_success_time == clock.now
    assert (tmp_path / "data" / "vault" / (VAULT_MARKER_KEY + "%o")).is_file()  # FileStore layout
    assert [e.name for e in mgr.list()] == ["local"]
    assert mgr.describe("local") == entry


def test_immutable_after_creation(oss_server: LocalOssServer, bucket: str, registry: FileVaultRegistry,
                                  clock: Clock) -> None:
    mgr = manager(registry, clock)
    entry = mgr.create(oss_spec(oss_server, bucket))
    assert mgr.create(oss_spec(oss_server, bucket)) == entry  # same spec: nothing to do
    changed = oss_spec(oss_server, bucket, network="public", encryption="oss-managed")
    err = error_of(lambda: mgr.create(changed))
    assert err.code == "VaultImmutable"
    assert "network: 'internal' -> 'public'" in err.message
    assert "encryption: 'none' -> 'oss-managed'" in err.message
    assert err.short().startswith("VaultError: backup vault 'vault-1' cannot be modified")
    assert "Delete the vault and create a new one with a new name." in err.info().fixes


def test_deleted_name_cannot_be_reused(oss_server: LocalOssServer, bucket: str, registry: FileVaultRegistry,
                                       clock: Clock) -> None:
    mgr = manager(registry, clock)
    first = mgr.create(oss_spec(oss_server, bucket))
    deleted = mgr.delete("vault-1")
    assert deleted.deleted and mgr.delete("vault-1").deleted_at == deleted.deleted_at  # idempotent
    assert mgr.list() == [] and [e.name for e in mgr.list(include_deleted=True)] == ["vault-1"]
    assert error_of(lambda: mgr.create(oss_spec(oss_server, bucket))).code == "VaultNameReused"
    assert error_of(lambda: mgr.describe("vault-1")).code == "NotFound"
    # The change the rules ask for: a new name on the same bucket adopts the vault and its backups.
    renamed = mgr.create(oss_spec(oss_server, bucket, name="vault-2", network="public"))
    assert renamed.vault_id == first.vault_id
    assert renamed.marker is not None and renamed.marker.vault_name == "vault-1"


@pytest.mark.parametrize("storage_class", ["Archive", "ColdArchive", "DeepColdArchive"])
def test_archive_buckets_are_refused(oss_server: LocalOssServer, registry: FileVaultRegistry, clock: Clock,
                                     storage_class: str) -> None:
    name = f"archive-{storage_class.lower()}"
    oss_server.create_bucket(name, storage_class=storage_class)
    err = error_of(lambda: manager(registry, clock).create(oss_spec(oss_server, name)))
    assert err.code == "VaultArchiveBucket"
    assert err.message == f"bucket '{name}' has storage class {storage_class} and cannot host a backup vault"
    assert registry.get("vault-1") is None


def test_ia_bucket_is_fine(oss_server: LocalOssServer, registry: FileVaultRegistry, clock: Clock) -> None:
    oss_server.create_bucket("infrequent-access", storage_class="IA")
    entry = manager(registry, clock).create(oss_spec(oss_server, "infrequent-access"))
    assert entry.status.storage_class == "IA"


def test_wrong_keys_refuse_creation(oss_server: LocalOssServer, bucket: str, registry: FileVaultRegistry,
                                    clock: Clock) -> None:
    mgr = manager(registry, clock, credentials=OssCredentials(ACCESS_KEY_ID, "wrong-secret-123"))
    err = error_of(lambda: mgr.create(oss_spec(oss_server, bucket)))
    assert err.code == "VaultUnavailable"
    assert err.short() == ("VaultError: backup vault is unavailable: the AccessKey secret does not match the "
                           "AccessKey id")
    assert "wrong-secret-123" not in err.short() and registry.get("vault-1") is None


def test_missing_bucket_refuses_creation(oss_server: LocalOssServer, registry: FileVaultRegistry,
                                         clock: Clock) -> None:
    err = error_of(lambda: manager(registry, clock).create(oss_spec(oss_server, "not-created")))
    assert err.short() == ("VaultError: backup vault is unavailable: bucket not-created in region "
                           "cn-hangzhou does not exist")


def test_check_tracks_availability(oss_server: LocalOssServer, bucket: str, registry: FileVaultRegistry,
                                   clock: Clock) -> None:
    mgr = manager(registry, clock)
    mgr.create(oss_spec(oss_server, bucket))
    created_at = clock.now
    clock.advance()
    assert mgr.check("vault-1").phase == VaultPhase.available

    clock.advance()
    oss_server.set_faults(missing_buckets=[bucket])
    status = mgr.check("vault-1")
    assert status.phase == VaultPhase.unavailable
    assert status.cause == f"bucket {bucket} in region cn-hangzhou does not exist"
    assert status.last_check_time == clock.now
    assert status.last_success_time == created_at + timedelta(minutes=5)
    assert status.error is not None and status.error.code == "VaultUnavailable" and status.error.fixes
    assert registry.get("vault-1").status == status  # type: ignore[union-attr]

    clock.advance()
    oss_server.set_faults(missing_buckets=[], access_denied=True)
    assert mgr.check("vault-1").cause.startswith(f"no permission on bucket {bucket}")  # type: ignore[union-attr]

    clock.advance()
    oss_server.clear_faults()
    recovered = mgr.check("vault-1")
    assert recovered.phase == VaultPhase.available and recovered.cause is None
    assert recovered.last_success_time == clock.now


def test_unreachable_network_is_reported(registry: FileVaultRegistry, clock: Clock, tmp_path: Path) -> None:
    server = LocalOssServer(tmp_path / "oss", keys={ACCESS_KEY_ID: ACCESS_KEY_SECRET})
    server.start()
    server.create_bucket("far-away")
    mgr = VaultManager(registry, "cluster-a", lambda _spec: CREDENTIALS,
                       store_options={"attempts": 2, "backoff": 0.01, "timeout": 2}, clock=clock)
    mgr.create(oss_spec(server, "far-away"))
    server.stop()  # the endpoint stops answering: like an internal endpoint used from another region
    status = mgr.check("vault-1")
    assert status.phase == VaultPhase.unavailable
    assert (status.cause or "").startswith("cannot reach OSS endpoint http://127.0.0.1:")


def test_emptied_location_is_reported(registry: FileVaultRegistry, clock: Clock, tmp_path: Path) -> None:
    mgr = manager(registry, clock, credentials=None)
    mgr.create({"name": "local", "url": f"file://{tmp_path / 'v'}"})
    shutil.rmtree(tmp_path / "v")
    (tmp_path / "v").mkdir()
    status = mgr.check("local")
    assert status.phase == VaultPhase.unavailable and "has no vault.json" in (status.cause or "")
    shutil.rmtree(tmp_path / "v")
    assert "does not exist" in (mgr.check("local").cause or "")


def test_check_all_and_unknown_names(registry: FileVaultRegistry, clock: Clock, tmp_path: Path) -> None:
    mgr = manager(registry, clock, credentials=None)
    mgr.create({"name": "one", "url": f"file://{tmp_path / 'one'}"})
    mgr.create({"name": "two", "url": f"file://{tmp_path / 'two'}"})
    mgr.delete("two")
    assert set(mgr.check_all()) == {"one"}
    assert set(mgr.check_all(["one", "two", "ghost"])) == {"one"}  # deleted or unknown: skipped
    assert error_of(lambda: mgr.check("ghost")).code == "NotFound"


def test_registry_add_is_exclusive_and_tombstones_stick(registry: FileVaultRegistry, clock: Clock,
                                                         tmp_path: Path) -> None:
    mgr = manager(registry, clock, credentials=None)
    entry = mgr.create({"name": "one", "url": f"file://{tmp_path / 'one'}"})
    assert registry.add(entry) is False
    registry.tombstone("one", clock.now)
    assert registry.set_status("one", VaultStatus(phase=VaultPhase.available)) is None  # no resurrection
    assert registry.get("one").deleted  # type: ignore[union-attr]


def test_secret_reference_needs_a_resolver(registry: FileVaultRegistry, clock: Clock) -> None:
    mgr = VaultManager(registry, "cluster-a", clock=clock)
    spec = {"name": "v", "url": "oss://bucket-x/p", "region": "cn-hangzhou",
            "credentials": {"name": "oss-keys"}}
    err = error_of(lambda: mgr.create(spec))
    assert err.code == "InvalidSpec" and err.params["field"] == "credentials"


def test_kube_secret_resolver() -> None:
    import base64

    class FakeCore:
        def read_namespaced_secret(self, name: str, namespace: str) -> Any:
            if (namespace, name) != ("backup-center", "oss-keys"):
                raise type("ApiException", (Exception,), {"status": 404})()
            encode = lambda v: base64.b64encode(v.encode()).decode()  # noqa: E731
            return SimpleNamespace(data={"access-key-id": encode("LTAI-k8s"),
                                         "access-key-secret": encode("k8s-s")})

    resolve = kube_secret_resolver(FakeCore(), "backup-center")
    spec = VaultSpec(name="v", url="oss://bucket-x/p", region="cn-hangzhou",
                     credentials=SecretRef(name="oss-keys"))
    assert resolve(spec) == OssCredentials("LTAI-k8s", "k8s-s")
    assert resolve(spec.model_copy(update={"credentials": None})) is None
    missing = VaultSpec(name="v", url="oss://bucket-x/p", region="cn-hangzhou",
                        credentials=SecretRef(name="other", namespace="ns"))
    err = error_of(lambda: resolve(missing))
    assert err.params == {"field": "credentials", "reason": "Secret ns/other does not exist"}


def test_registry_files_survive_a_new_process(registry: FileVaultRegistry, clock: Clock,
                                              tmp_path: Path) -> None:
    manager(registry, clock, credentials=None).create({"name": "one", "url": f"file://{tmp_path / 'one'}"})
    again = FileVaultRegistry(registry.directory)
    entry = again.get("one")
    assert isinstance(entry, VaultEntry) and entry.spec.url == f"file://{tmp_path / 'one'}"


def test_names_that_cannot_exist_are_not_found(registry: FileVaultRegistry, clock: Clock) -> None:
    mgr = manager(registry, clock, credentials=None)
    for name in ("Bad_Name", "../../etc", ""):
        assert error_of(lambda n=name: mgr.describe(n)).code == "NotFound"
        assert error_of(lambda n=name: mgr.delete(n)).code == "NotFound"


def test_the_check_removes_what_dead_writers_left(oss_server: LocalOssServer, bucket: str,
                                                 registry: FileVaultRegistry, clock: Clock, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Temporary files and incomplete multipart uploads of writers killed mid-upload are removed by
    the periodic availability check once older than the store's threshold; younger ones (a live
    writer's) stay."""
    mgr = manager(registry, clock, credentials=None)
    mgr.create({"name": "local", "url": f"file://{tmp_path / 'v'}"})
    leftovers = tmp_path / "v" / "%tmp"
    dead, live = leftovers / "dead.tmp", leftovers / "live.tmp"
    dead.write_bytes(b"half a pack")
    live.write_bytes(b"being written")
    two_hours_ago = time.time() - 2 * 3600
    os.utime(dead, (two_hours_ago, two_hours_ago))
    assert mgr.check("local").phase == VaultPhase.available
    assert not dead.exists() and live.exists()

    oss = manager(registry, clock)
    oss.create(oss_spec(oss_server, bucket))
    raw = oss2.Bucket(oss2.Auth(ACCESS_KEY_ID, ACCESS_KEY_SECRET), oss_server.endpoint, bucket)
    raw.init_multipart_upload("backups-root/data/packs/killed-mid-upload")
    assert oss.check("vault-1").phase == VaultPhase.available
    assert len(list(oss2.MultipartUploadIterator(raw))) == 1  # younger than 6 hours: may be live
    real = OssStore.cleanup_incomplete_uploads
    monkeypatch.setattr(OssStore, "cleanup_incomplete_uploads", lambda self: real(self, older_than=0))
    assert oss.check("vault-1").phase == VaultPhase.available
    assert list(oss2.MultipartUploadIterator(raw)) == []
