"""Restoring chosen paths of a snapshot (``backupctl restore files``): only those, with the
directories above them; existing files kept unless asked; paths that leave the volume or that
the snapshot does not hold refused before anything is written."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from datamover import backup_tree, restore_tree
from datamover.errors import PathNotInSnapshot, UnsafeChoice
from vault.filestore import FileStore

from .conftest import MIB, rand_bytes


def _tree(root: Path) -> Path:
    (root / "app" / "data").mkdir(parents=True)
    (root / "app" / "data" / "one.db").write_bytes(rand_bytes(2 * MIB, 1))
    (root / "app" / "data" / "two.db").write_bytes(b"small")
    (root / "app" / "logs").mkdir()
    (root / "app" / "logs" / "today.log").write_text("log\n")
    (root / "top.txt").write_text("top\n")
    os.link(root / "app" / "data" / "two.db", root / "app" / "logs" / "two.link")
    return root


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def snapshot(store: FileStore, tmp_path: Path) -> tuple[str, Path]:
    src = _tree(tmp_path / "src")
    return backup_tree(store, src, volume_id="v").snapshot_id, src


def test_only_the_chosen_paths_come_back(store: FileStore, snapshot: tuple[str, Path],
                                         tmp_path: Path) -> None:
    sid, src = snapshot
    dst = tmp_path / "dst"
    summary = restore_tree(store, sid, dst, paths=["app/data", "./top.txt"])
    chosen = {k: v for k, v in _files(src).items() if k.startswith("app/data/") or k == "top.txt"}
    assert _files(dst) == chosen
    assert not (dst / "app" / "logs").exists()
    assert summary.files == 3 and summary.files_verified == 3

    # A hard link whose data lives at an unchosen path: said so, the rest restored.
    other = tmp_path / "links"
    summary = restore_tree(store, sid, other, paths=["app/logs"])
    assert _files(other) == {"app/logs/today.log": b"log\n"}
    assert summary.warning_paths == ["app/logs/two.link: hard link to app/data/two.db, which was not chosen"]


def test_existing_files_are_kept_unless_overwrite(store: FileStore, snapshot: tuple[str, Path],
                                                  tmp_path: Path) -> None:
    sid, src = snapshot
    dst = tmp_path / "live"
    (dst / "app" / "data").mkdir(parents=True)
    (dst / "app" / "data" / "two.db").write_bytes(b"changed since")
    (dst / "unrelated").write_text("mine\n")
    before = os.stat(dst).st_mtime_ns
    summary = restore_tree(store, sid, dst, paths=["app/data"], overwrite=False)
    assert (dst / "app" / "data" / "two.db").read_bytes() == b"changed since"
    assert (dst / "app" / "data" / "one.db").read_bytes() == (src / "app" / "data" / "one.db").read_bytes()
    assert summary.kept_existing == 1 and (dst / "unrelated").read_text() == "mine\n"
    assert os.stat(dst).st_mtime_ns == before  # the target directory itself is left alone
    restore_tree(store, sid, dst, paths=["/app/data/two.db"], overwrite=True)  # "/": the volume's root
    assert (dst / "app" / "data" / "two.db").read_bytes() == b"small"
    assert os.stat(dst).st_mtime_ns == before  # overwriting files does not re-stamp the directory


def test_a_hard_link_to_a_kept_file_is_not_linked_to_it(store: FileStore, snapshot: tuple[str, Path],
                                                        tmp_path: Path) -> None:
    sid, _ = snapshot
    dst = tmp_path / "live"
    (dst / "app" / "data").mkdir(parents=True)
    (dst / "app" / "data" / "two.db").write_bytes(b"someone else's")
    summary = restore_tree(store, sid, dst, paths=["app"], overwrite=False)
    assert not (dst / "app" / "logs" / "two.link").exists()
    assert (dst / "app" / "data" / "two.db").read_bytes() == b"someone else's"
    assert summary.warning_paths == [
        "app/logs/two.link: hard link to app/data/two.db, which was already there and kept: not linked to it"
    ]


@pytest.mark.parametrize("bad", ["../etc/passwd", "app/./data", "app/../../x", "app//data"])
def test_paths_leaving_the_volume_are_refused(store: FileStore, snapshot: tuple[str, Path], tmp_path: Path,
                                              bad: str) -> None:
    sid, _ = snapshot
    with pytest.raises(UnsafeChoice, match="leaves the volume"):
        restore_tree(store, sid, tmp_path / "dst", paths=[bad])
    assert not (tmp_path / "dst").exists()


def test_a_path_the_snapshot_lacks_is_refused_before_writing(store: FileStore, snapshot: tuple[str, Path],
                                                             tmp_path: Path) -> None:
    sid, _ = snapshot
    with pytest.raises(PathNotInSnapshot, match="app/nothing"):
        restore_tree(store, sid, tmp_path / "dst", paths=["top.txt", "app/nothing"])
    assert not (tmp_path / "dst").exists()
