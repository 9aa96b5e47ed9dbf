"""Backup records in the vault, on both backends: claims, commits, deletion, and what another
cluster sees."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from schemas.errors import BackupCenterError
from schemas.vault import BackupOutcome, BackupRecord, BackupState, VaultSpec
from tests.vault.conftest import CREDENTIALS, SMALL_PARTS
from vault.catalog import (
    backup_prefix,
    claim_backup,
    commit_backup,
    delete_backup,
    delete_backup_records,
    fail_backup,
    get_backup,
    list_backups,
    mark_deleted,
)
from vault.lifecycle import FileVaultRegistry, VaultManager
from vault.store import ObjectStore

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def record(name: str, uid: str, cluster: str = "cluster-a") -> BackupRecord:
    return BackupRecord(name=name, uid=uid, source_cluster=cluster, phase=BackupOutcome.completed,
                        started_at=T0, completed_at=T0, resource_count=12, volume_count=2, size_bytes=2048)


def committed(store: ObjectStore, name: str, cluster: str = "cluster-a") -> BackupRecord:
    claim_backup(store, name, cluster_id=cluster, uid=f"run-{name}")
    store.put(backup_prefix(name) + "resources/manifests.json.zst", b"manifests")
    return commit_backup(store, record(name, f"run-{name}", cluster))


def error_code(call: Callable[[], object]) -> str:
    with pytest.raises(BackupCenterError) as err:
        call()
    return err.value.code


def test_a_name_is_taken_in_every_state(store: ObjectStore) -> None:
    committed(store, "done")
    claim_backup(store, "running", cluster_id="cluster-b", uid="run-running")
    claim_backup(store, "broken", cluster_id="cluster-a", uid="run-broken")
    fail_backup(store, "broken", uid="run-broken", cluster_id="cluster-a")
    committed(store, "hidden")
    mark_deleted(store, "hidden", by_cluster="cluster-b")
    store.put(backup_prefix("orphan") + "resources/x", b"left behind without a claim")
    for name in ("done", "running", "broken", "hidden", "orphan"):
        with pytest.raises(BackupCenterError) as err:
            claim_backup(store, name, cluster_id="cluster-c", uid="new")
        assert err.value.code == "BackupExistsInVault"
    with pytest.raises(BackupCenterError, match="backup already exists in OSS bucket: done"):
        claim_backup(store, "done", cluster_id="cluster-c", uid="new")


def test_claim_and_commit_are_idempotent_per_run(store: ObjectStore) -> None:
    first = claim_backup(store, "b1", cluster_id="cluster-a", uid="run-1")
    assert claim_backup(store, "b1", cluster_id="cluster-a", uid="run-1") == first  # activity retry
    rec = commit_backup(store, record("b1", "run-1"))
    assert commit_backup(store, record("b1", "run-1")) == rec
    assert error_code(lambda: commit_backup(store, record("b1", "run-2"))) == "BackupExistsInVault"


def test_commit_needs_the_claim(store: ObjectStore) -> None:
    assert error_code(lambda: commit_backup(store, record("nobody", "run-1"))) == "BackupClaimLost"
    claim_backup(store, "taken", cluster_id="cluster-b", uid="run-b")
    assert error_code(lambda: commit_backup(store, record("taken", "run-a"))) == "BackupClaimLost"
    failing = lambda: fail_backup(store, "taken", uid="run-a", cluster_id="cluster-a")  # noqa: E731
    assert error_code(failing) == "BackupClaimLost"


def test_states_and_listing(store: ObjectStore) -> None:
    committed(store, "done")
    claim_backup(store, "running", cluster_id="cluster-a", uid="run-running")
    claim_backup(store, "broken", cluster_id="cluster-a", uid="run-broken")
    fail_backup(store, "broken", uid="run-broken", cluster_id="cluster-a")
    committed(store, "hidden")
    mark_deleted(store, "hidden", by_cluster="cluster-b", reason="not needed here")
    assert [b.name for b in list_backups(store)] == ["done"]
    every = {b.name: b.state for b in list_backups(store, include_incomplete=True, include_deleted=True)}
    assert every == {"done": BackupState.committed, "running": BackupState.in_progress,
                     "broken": BackupState.failed, "hidden": BackupState.deleted}
    done = get_backup(store, "done")
    assert done.record is not None and done.record.resource_count == 12 and done.source_cluster == "cluster-a"
    hidden = get_backup(store, "hidden")
    assert hidden.deletion is not None and hidden.deletion.deleted_by_cluster == "cluster-b"
    assert error_code(lambda: get_backup(store, "never")) == "NotFound"


def test_delete_from_source_removes_and_frees_the_name(store: ObjectStore) -> None:
    committed(store, "b1")
    assert delete_backup(store, "b1", by_cluster="cluster-a") == "deleted"
    assert list(store.list(backup_prefix("b1"))) == []
    claim_backup(store, "b1", cluster_id="cluster-a", uid="run-again")  # the name is free again


def test_delete_from_another_cluster_only_marks(store: ObjectStore) -> None:
    committed(store, "b1")
    assert delete_backup(store, "b1", by_cluster="cluster-b") == "marked"
    assert delete_backup(store, "b1", by_cluster="cluster-b") == "marked"  # idempotent
    assert store.exists(backup_prefix("b1") + "backup.json")
    assert list_backups(store) == []
    assert error_code(lambda: claim_backup(store, "b1", cluster_id="cluster-b", uid="x")) == \
        "BackupExistsInVault"
    # Its source can still delete it for good.
    assert delete_backup(store, "b1", by_cluster="cluster-a") == "deleted"


def test_a_backup_in_progress_elsewhere_cannot_be_deleted_here(store: ObjectStore) -> None:
    claim_backup(store, "running", cluster_id="cluster-a", uid="run-1")
    assert error_code(lambda: delete_backup(store, "running", by_cluster="cluster-b")) == "BackupNotInVault"
    assert error_code(lambda: mark_deleted(store, "running", by_cluster="cluster-b")) == "BackupNotInVault"


def test_interrupted_delete_keeps_the_name_until_retried(store: ObjectStore) -> None:
    committed(store, "b1")
    # A delete that died after uncommitting: the backup is gone from listings, the name still held.
    store.delete(backup_prefix("b1") + "backup.json")
    assert list_backups(store) == []
    assert error_code(lambda: claim_backup(store, "b1", cluster_id="cluster-a", uid="new")) == \
        "BackupExistsInVault"
    assert delete_backup_records(store, "b1") == 2  # the manifests and the claim
    claim_backup(store, "b1", cluster_id="cluster-a", uid="new")


def test_corrupted_record_is_reported(store: ObjectStore) -> None:
    committed(store, "b1")
    store.put(backup_prefix("b1") + "backup.json", b"{not json")
    with pytest.raises(BackupCenterError) as err:
        get_backup(store, "b1")
    assert err.value.code == "VaultObjectCorrupt" and "backups/b1/backup.json" in str(err.value)


def test_one_damaged_backup_hides_no_other_and_stops_no_walk(store: ObjectStore) -> None:
    from vault.catalog import live_file_snapshots, readable_parts

    committed(store, "b1")
    committed(store, "b2")
    store.put(backup_prefix("b2") + "volumes.json", b'{"files": {"ns/data": "snap-2"}}')
    store.put(backup_prefix("b1") + "backup.json", b"{not json")
    store.put(backup_prefix("b1") + "volumes.json", b"{not json")
    # Listing leaves the damaged one out (it is reported by name where it is used) ...
    assert [b.name for b in list_backups(store)] == ["b2"]
    # ... the walk for live data reports it instead of failing: nothing may be collected then.
    live = live_file_snapshots(store)
    assert live.ids == {"snap-2"} and live.unreadable == ["b1"]
    # Deleting it needs only what can be read: its claim still names its cluster.
    found, corrupt = readable_parts(store, "b1")
    assert found is not None and found.source_cluster == "cluster-a" and found.record is None
    assert corrupt == [backup_prefix("b1") + "backup.json"]
    assert readable_parts(store, "never") == (None, [])


def test_backup_names_are_validated(store: ObjectStore) -> None:
    with pytest.raises(BackupCenterError, match="invalid backup name"):
        claim_backup(store, "Not/A/Name", cluster_id="c", uid="u")


def test_second_cluster_sees_exactly_the_committed_non_deleted_backups(
        backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    # Cluster A: its own registry, its own client of the shared location.
    if backend == "file":
        spec = {"name": "shared", "url": f"file://{tmp_path / 'vault'}"}
        options: dict[str, object] = {}
    else:
        server = request.getfixturevalue("oss_server")
        bucket = request.getfixturevalue("bucket")
        spec = {"name": "shared", "url": f"oss://{bucket}/vault", "endpoint": server.endpoint,
                "region": "cn-hangzhou"}
        options = dict(SMALL_PARTS)

    def resolver(_: VaultSpec) -> object:
        return CREDENTIALS if backend == "oss" else None

    cluster_a = VaultManager(FileVaultRegistry(tmp_path / "a-state"), "cluster-a", resolver,  # type: ignore[arg-type]
                             store_options=options)
    cluster_b = VaultManager(FileVaultRegistry(tmp_path / "b-state"), "cluster-b", resolver,  # type: ignore[arg-type]
                             store_options=options)
    a_entry = cluster_a.create(spec)
    a = cluster_a.store("shared")
    committed(a, "app-daily-1")
    committed(a, "app-daily-2")
    committed(a, "deleted-by-b-earlier")
    mark_deleted(a, "deleted-by-b-earlier", by_cluster="cluster-b")
    claim_backup(a, "app-daily-3", cluster_id="cluster-a", uid="run-3")  # still running
    claim_backup(a, "app-failed", cluster_id="cluster-a", uid="run-f")
    fail_backup(a, "app-failed", uid="run-f", cluster_id="cluster-a")
    a.put(backup_prefix("app-daily-3") + "resources/partial", b"half written")

    # Cluster B attaches to the same vault: same identity, the committed non-deleted backups only.
    b_entry = cluster_b.create(spec)
    assert b_entry.vault_id == a_entry.vault_id and b_entry.marker is not None
    assert b_entry.marker.created_by_cluster == "cluster-a"
    b = cluster_b.store("shared")
    offered = list_backups(b)
    assert [x.name for x in offered] == ["app-daily-1", "app-daily-2"]
    assert {x.source_cluster for x in offered} == {"cluster-a"}

    # A deletion on B only marks; A no longer offers it either, and the name stays taken.
    assert delete_backup(b, "app-daily-1", by_cluster="cluster-b") == "marked"
    assert [x.name for x in list_backups(a)] == ["app-daily-2"]
    assert [x.name for x in list_backups(b)] == ["app-daily-2"]
    # A commit on A shows up on B.
    commit_backup(a, record("app-daily-3", "run-3"))
    assert [x.name for x in list_backups(b)] == ["app-daily-2", "app-daily-3"]
