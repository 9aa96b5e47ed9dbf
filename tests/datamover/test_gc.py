"""Garbage collection keeps what live snapshots need, removes the rest, and never races a backup."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

import datamover.locks as locks
from datamover import SnapshotNotFound, VaultBusy, backup_tree, gc, restore_tree
from datamover.locks import VaultLock
from vault.filestore import FileStore

from .conftest import MIB, FaultyStore, assert_same_tree, keys, rand_bytes


def _volume(root: Path, seed: int, size: int = 2 * MIB) -> Path:
    root.mkdir()
    (root / "data.img").write_bytes(rand_bytes(size, seed))
    (root / "note.txt").write_text(f"volume {seed}\n")
    return root


def test_gc_removes_dead_and_keeps_live(store: FileStore, tmp_path: Path) -> None:
    a = backup_tree(store, _volume(tmp_path / "a", 1), volume_id="a", pack_size=MIB)
    b = backup_tree(store, _volume(tmp_path / "b", 2), volume_id="b", pack_size=MIB)
    packs_before = set(keys(store, "data/packs/"))

    dry = gc(store, [b.snapshot_id], grace_seconds=0, dry_run=True)
    assert dry.packs_deleted > 0 and set(keys(store, "data/packs/")) == packs_before

    summary = gc(store, [b.snapshot_id], grace_seconds=0)
    assert summary.blocked_by == [] and summary.missing_chunks == 0
    assert summary.snapshots_deleted == 1 and summary.packs_deleted == dry.packs_deleted
    assert summary.packs_referenced + summary.packs_deleted == summary.packs_total == len(packs_before)
    assert summary.bytes_deleted >= 2 * MIB
    assert keys(store, "data/snapshots/") == [b.manifest_key]
    # Every remaining pack still has its index; no index is left without its pack.
    assert {k.rsplit("/", 1)[1] for k in keys(store, "data/packs/")} == {
        k.rsplit("/", 1)[1] for k in keys(store, "data/index/")
    }
    restore_tree(store, b.snapshot_id, tmp_path / "rb")
    assert_same_tree(tmp_path / "b", tmp_path / "rb")
    with pytest.raises(SnapshotNotFound):
        restore_tree(store, a.snapshot_id, tmp_path / "ra")
    # The vault's chunks are gone for "a": backing it up again uploads everything.
    again = backup_tree(store, tmp_path / "a", volume_id="a")
    assert again.new_bytes == a.bytes


def test_shared_chunks_survive(store: FileStore, tmp_path: Path) -> None:
    a = backup_tree(store, _volume(tmp_path / "a", 1), volume_id="a")
    (tmp_path / "a" / "note.txt").write_text("changed\n")
    b = backup_tree(store, tmp_path / "a", volume_id="a", parent_snapshot=a.snapshot_id)
    summary = gc(store, [b.snapshot_id], grace_seconds=0)
    assert summary.missing_chunks == 0
    restore_tree(store, b.snapshot_id, tmp_path / "r")
    assert_same_tree(tmp_path / "a", tmp_path / "r")


def test_grace_period_protects_young_packs_and_snapshots(store: FileStore, tmp_path: Path) -> None:
    a = backup_tree(store, _volume(tmp_path / "a", 1), volume_id="a")
    # A backup that crashed after uploading: packs without a snapshot.
    faulty = FaultyStore(store)
    faulty.fail_put = lambda k: k.startswith("data/snapshots/")
    with pytest.raises(RuntimeError):
        backup_tree(faulty, _volume(tmp_path / "b", 2), volume_id="b")
    packs = set(keys(store, "data/packs/"))
    summary = gc(store, [], grace_seconds=3600)
    # "a" is not listed live, but its snapshot is younger than the grace period (its backup job
    # may not have committed yet), and the crashed run's packs wait for its resume.
    assert summary.snapshots_deleted == 0 and summary.live_snapshots == 1
    assert summary.packs_deleted == 0 and summary.packs_in_grace >= 1
    assert set(keys(store, "data/packs/")) == packs
    restore_tree(store, a.snapshot_id, tmp_path / "ra")


def test_unknown_live_snapshot_stops_gc(store: FileStore, tmp_path: Path) -> None:
    a = backup_tree(store, _volume(tmp_path / "a", 1), volume_id="a")
    with pytest.raises(SnapshotNotFound):
        gc(store, [a.snapshot_id, "lost-snapshot"], grace_seconds=0)
    assert keys(store, "data/packs/")
    assert keys(store, "data/locks/") == []


def test_gc_on_an_empty_vault(store: FileStore) -> None:
    assert gc(store, [], grace_seconds=0).packs_total == 0


def test_gc_deletes_nothing_while_a_backup_runs(store: FileStore, tmp_path: Path) -> None:
    a = backup_tree(store, _volume(tmp_path / "a", 1), volume_id="a")
    (tmp_path / "a" / "extra.img").write_bytes(rand_bytes(3 * MIB, 9))
    # A slow store keeps the second backup running while gc is called.
    slow = FaultyStore(store)
    started = threading.Event()

    def pause(key: str) -> None:
        if key.startswith("data/packs/"):
            started.set()
            time.sleep(0.5)

    slow.after_put = pause
    result: list[object] = []
    thread = threading.Thread(target=lambda: result.append(
        backup_tree(slow, tmp_path / "a", volume_id="a", pack_size=MIB)))
    thread.start()
    assert started.wait(30)
    # The running backup deduplicated against a's packs; a is not listed as live any more.
    blocked = gc(store, [], grace_seconds=0)
    assert blocked.blocked_by and blocked.blocked_by[0].startswith("data/locks/backup-")
    assert blocked.packs_deleted == 0 and keys(store, f"data/snapshots/{a.snapshot_id}")
    thread.join()
    b = result[0]
    summary = gc(store, [b.snapshot_id], grace_seconds=0)  # type: ignore[attr-defined]
    assert summary.blocked_by == [] and summary.missing_chunks == 0 and summary.snapshots_deleted == 1
    restore_tree(store, b.snapshot_id, tmp_path / "r")  # type: ignore[attr-defined]
    assert_same_tree(tmp_path / "a", tmp_path / "r")


def test_backup_waits_for_a_running_gc(store: FileStore, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    src = _volume(tmp_path / "a", 1)
    monkeypatch.setattr(locks, "POLL_SECONDS", 0.05)
    with VaultLock(store, "gc"), pytest.raises(VaultBusy, match="garbage collection") as err:
        backup_tree(store, src, volume_id="a", lock_wait_seconds=0.3)
    assert err.value.key is not None and err.value.key.startswith("data/locks/gc-")
    assert keys(store, "data/locks/") == []  # the waiting backup released its own lock

    gc_lock = VaultLock(store, "gc").acquire()
    timer = threading.Timer(0.3, gc_lock.release)
    timer.start()
    started = time.monotonic()
    summary = backup_tree(store, src, volume_id="a", lock_wait_seconds=30)
    assert time.monotonic() - started >= 0.25 and summary.files == 2
    timer.join()


def test_stale_gc_lock_does_not_block_backups(store: FileStore, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    lock = VaultLock(store, "gc").acquire()
    lock._stop.set()  # the gc process died: its lock is never refreshed or removed
    monkeypatch.setattr(locks, "STALE_SECONDS", 0.0)
    summary = backup_tree(store, _volume(tmp_path / "a", 1), volume_id="a", lock_wait_seconds=0)
    assert summary.files == 2
    lock.release()
