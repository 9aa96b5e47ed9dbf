"""Deduplication across files, volumes and backups; incremental runs."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from datamover import backup_tree, gc, restore_tree
from vault.filestore import FileStore

from .conftest import MIB, FaultyStore, assert_same_tree, make_tree, rand_bytes, text_bytes


def test_unchanged_tree_uploads_nothing_new(store: FileStore, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src")
    first = backup_tree(store, src, volume_id="v")
    # Without a parent every file is read again, but every chunk is already in the vault.
    counting = FaultyStore(store)
    second = backup_tree(counting, src, volume_id="v")
    assert second.bytes_read == first.bytes and second.new_bytes == 0 and second.packs_uploaded == 0
    assert counting.count("data/packs/") == 0
    assert second.files_new == second.files


def test_incremental_skips_unchanged_files(store: FileStore, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src")
    first = backup_tree(store, src, volume_id="v")
    second = backup_tree(store, src, volume_id="v", parent_snapshot=first.snapshot_id)
    assert second.parent_snapshot == first.snapshot_id
    assert second.files_unmodified == second.files and second.bytes_read == 0 and second.new_bytes == 0
    restore_tree(store, second.snapshot_id, tmp_path / "dst")
    assert_same_tree(src, tmp_path / "dst")


def test_incremental_with_one_percent_changed(store: FileStore, tmp_path: Path) -> None:
    src = tmp_path / "src"
    for i in range(200):
        d = src / f"d{i // 50}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i:03d}").write_bytes(text_bytes(2000 + i, i) if i % 2 else rand_bytes(3000 + i, i))
    (src / "big.img").write_bytes(rand_bytes(6 * MIB, 99))
    first = backup_tree(store, src, volume_id="v")
    # Change 1% of the files: two small ones and a few bytes in the middle of the big one.
    (src / "d0" / "f007").write_bytes(b"changed content")
    (src / "d3" / "f180").write_bytes(b"other new content")
    with open(src / "big.img", "r+b") as f:
        f.seek(3 * MIB)
        f.write(b"an edit in the middle of a big file")
    (src / "d1" / "new-file").write_bytes(b"brand new")
    os.unlink(src / "d2" / "f100")
    second = backup_tree(store, src, volume_id="v", parent_snapshot=first.snapshot_id)
    assert second.files_changed == 3 and second.files_new == 1
    assert second.files_unmodified == 200 - 3
    # Only the edited chunk of the big file (at most max chunk size) plus the small files are new.
    assert 0 < second.new_bytes <= 4 * MIB + 100
    # Only the changed and new files were read.
    small = len(b"changed content") + len(b"other new content") + len(b"brand new")
    assert second.bytes_read == 6 * MIB + small
    restore_tree(store, second.snapshot_id, tmp_path / "dst")
    assert_same_tree(src, tmp_path / "dst")


def test_dedup_across_volumes_and_files(store: FileStore, tmp_path: Path) -> None:
    shared = rand_bytes(4 * MIB, 5)
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "one.img").write_bytes(shared)
    (a / "two.img").write_bytes(shared)  # same content twice in one volume
    (b / "copy.img").write_bytes(shared)  # and in another volume
    (b / "own.txt").write_bytes(b"b's own file\n")
    first = backup_tree(store, a, volume_id="pvc-a")
    assert first.new_bytes == len(shared)
    second = backup_tree(store, b, volume_id="pvc-b")
    assert second.new_bytes == len(b"b's own file\n")
    restore_tree(store, second.snapshot_id, tmp_path / "rb")
    assert_same_tree(b, tmp_path / "rb")


def test_missing_parent_falls_back_to_full_backup(store: FileStore, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", big=False)
    summary = backup_tree(store, src, volume_id="v", parent_snapshot="no-such-snapshot")
    assert summary.parent_snapshot is None and summary.files_new == summary.files


def test_parent_chunks_collected_by_gc_are_uploaded_again(store: FileStore, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", big=False)
    first = backup_tree(store, src, volume_id="v")
    # Pretend the parent was deleted and collected while its manifest object survived.
    manifest = store.get(first.manifest_key)
    gc(store, [], grace_seconds=0)
    store.put(first.manifest_key, manifest)
    second = backup_tree(store, src, volume_id="v", parent_snapshot=first.snapshot_id)
    assert second.files_unmodified == 1  # only the empty file: it needs no chunks
    assert second.new_bytes == first.bytes
    shutil.rmtree(tmp_path / "dst", ignore_errors=True)
    restore_tree(store, second.snapshot_id, tmp_path / "dst")
    assert_same_tree(src, tmp_path / "dst")


def test_local_index_cache(store: FileStore, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src")
    cache = tmp_path / "cache"
    backup_tree(store, src, volume_id="v", cache_dir=cache)
    (tmp_path / "src" / "new.txt").write_text("a new file makes a new pack")
    counting = FaultyStore(store)
    second = backup_tree(counting, src, volume_id="v", cache_dir=cache)
    assert second.packs_uploaded == 1
    # The first run cached the index of the pack it uploaded: the second fetched no index.
    assert [k for k in counting.gets if k.startswith("data/index/")] == []
    third = FaultyStore(store)
    last = backup_tree(third, src, volume_id="v", cache_dir=cache)
    assert [k for k in third.gets if k.startswith("data/index/")] == []
    restore_tree(store, last.snapshot_id, tmp_path / "dst", cache_dir=cache)
    assert_same_tree(src, tmp_path / "dst")
