"""Backup then restore gives the same tree: content, modes, owners, times, links, empty dirs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from datamover import Progress, backup_tree, read_footer, restore_tree
from datamover.repo import Repo
from vault.filestore import FileStore

from .conftest import KEY, FaultyStore, assert_same_tree, make_tree


@pytest.mark.parametrize("key", [None, KEY], ids=["plain", "encrypted"])
def test_round_trip_is_identical(store: FileStore, tmp_path: Path, key: bytes | None) -> None:
    src = make_tree(tmp_path / "src")
    summary = backup_tree(store, src, volume_id="pvc-1", key=key)
    assert summary.errors.count == 0 and not summary.partial
    assert summary.files == 9 and summary.hardlinks == 2 and summary.symlinks == 3
    assert summary.dirs == 7  # ".", docs, bin, data, empty-dir, nested-empty, ro-dir
    assert summary.encrypted is (key is not None)
    assert summary.new_bytes == summary.bytes  # nothing to dedup against in a fresh vault
    assert summary.manifest_key == f"data/snapshots/{summary.snapshot_id}"

    result = restore_tree(store, summary.snapshot_id, tmp_path / "dst", key=key)
    assert result.files == summary.files and result.bytes == summary.bytes
    assert result.files_verified == result.files
    assert result.hardlinks == 2 and result.symlinks == 3
    assert_same_tree(src, tmp_path / "dst")
    st = os.stat(tmp_path / "dst" / "hard-readme")
    assert st.st_nlink == 3 and st.st_ino == os.stat(tmp_path / "dst" / "docs" / "readme.txt").st_ino


def test_restore_replaces_what_is_in_the_way(store: FileStore, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", big=False)
    summary = backup_tree(store, src, volume_id="v")
    dst = tmp_path / "dst"
    (dst / "docs" / "readme.txt").mkdir(parents=True)  # a directory where a file goes
    (dst / "docs" / "readme.txt" / "junk").write_text("x")
    (dst / "bin").mkdir()
    os.symlink("/etc/hostname", dst / "bin" / "tool")  # a symlink where a file goes
    (dst / "rel-link").write_text("a file where a symlink goes")
    (dst / "extra.txt").write_text("not in the snapshot: left alone")
    restore_tree(store, summary.snapshot_id, dst)
    assert (dst / "extra.txt").read_text() == "not in the snapshot: left alone"
    os.unlink(dst / "extra.txt")
    st = os.stat(src)
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))  # the unlink above touched it
    assert_same_tree(src, dst)


def test_progress_is_reported(store: FileStore, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src")
    seen: list[Progress] = []
    summary = backup_tree(store, src, volume_id="v", progress=seen.append)
    assert seen and seen[-1].files_done == seen[-1].files_total == summary.files
    assert seen[-1].bytes_done == seen[-1].bytes_total == summary.bytes and not seen[-1].scanning
    # With a parent, the estimate comes from the parent's totals.
    seen.clear()
    backup_tree(store, src, volume_id="v", parent_snapshot=summary.snapshot_id, progress=seen.append)
    assert seen[0].estimated_files == summary.files and seen[0].estimated_bytes == summary.bytes

    restored: list[Progress] = []
    restore_tree(store, summary.snapshot_id, tmp_path / "dst", progress=restored.append)
    assert restored[-1].files_done == restored[-1].files_total == summary.files
    assert restored[-1].bytes_done == summary.bytes


def test_retried_backup_with_same_snapshot_id_is_idempotent(store: FileStore, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", big=False)
    first = backup_tree(store, src, volume_id="v", snapshot_id="backup-1-pvc-a")
    counting = FaultyStore(store)
    again = backup_tree(counting, src, volume_id="v", snapshot_id="backup-1-pvc-a")
    assert again == first
    assert counting.puts == []
    assert read_footer(store, Repo.open(store, None).crypto, "backup-1-pvc-a")["files"] == first.files


def test_backup_root_must_be_a_directory(store: FileStore, tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(NotADirectoryError):
        backup_tree(store, tmp_path / "f", volume_id="v")


def test_invalid_snapshot_id_is_refused(store: FileStore, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", big=False)
    with pytest.raises(ValueError, match="invalid snapshot id"):
        backup_tree(store, src, volume_id="v", snapshot_id="../escape")


def test_sparse_and_zero_files(store: FileStore, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    with open(src / "sparse.img", "wb") as f:
        f.truncate(64 * 1024 * 1024)
        f.seek(20 * 1024 * 1024)
        f.write(b"data in the middle of a hole")
    (src / "zeros.bin").write_bytes(bytes(100_000))
    summary = backup_tree(store, src, volume_id="v")
    assert summary.new_bytes < 10 * 1024 * 1024  # the zero chunks deduplicate
    assert summary.uploaded_bytes < 1024 * 1024  # and compress to almost nothing
    restore_tree(store, summary.snapshot_id, tmp_path / "dst")
    assert_same_tree(src, tmp_path / "dst")
    # Holes are not written: the restored image takes little disk space.
    assert os.stat(tmp_path / "dst" / "sparse.img").st_blocks * 512 < 16 * 1024 * 1024
