"""Restore refuses manifests that would write outside the target."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from datamover import UnsafePath, backup_tree, restore_tree
from datamover.manifest import ManifestWriter
from datamover.repo import Repo, snapshot_key
from vault.filestore import FileStore

from .conftest import KEY, make_tree

T0 = 1_600_000_000_000_000_000
META = {"m": 0o644, "u": os.getuid(), "g": os.getgid(), "mt": T0, "at": T0}


def _entry(path: str, kind: str, **extra: Any) -> dict[str, Any]:
    entry = {"p": path, "t": kind, **META, **extra}
    if kind == "f":
        entry.update(s=0, i=1, ct=0, c=[], h="")
    return entry


def _write_snapshot(store: FileStore, snapshot_id: str, entries: list[dict[str, Any]],
                    key: bytes | None = None) -> None:
    repo = Repo.open(store, key)
    writer = ManifestWriter(repo.crypto, snapshot_id, {"kind": "kbc-snapshot", "snapshot_id": snapshot_id})
    for entry in [_entry(".", "d"), *entries]:
        writer.add(entry)
    body, size = writer.finish({"files": 0, "bytes": 0})
    store.put_stream(snapshot_key(snapshot_id), body, size=size)
    writer.close()


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    path = tmp_path / "outside"
    path.mkdir()
    return path


def _assert_untouched(outside: Path) -> None:
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize(
    "entries",
    [
        [_entry("../outside/evil", "f")],
        [_entry("/tmp/evil-absolute", "f")],
        [_entry("a", "d"), _entry("a/../../outside/evil", "f")],
        [_entry("a/./b", "f")],
        [_entry("a//b", "f")],
        [_entry("nul\0byte", "f")],
        [_entry("b", "f"), _entry("a", "f")],  # out of order
        [_entry("a", "f"), _entry("a", "f")],  # duplicate
        [_entry("sub/file", "f")],  # parent directory not in the snapshot
        [_entry("h", "h", lt="../outside/x")],
        [_entry("h", "h", lt="z-later")],
    ],
    ids=["dotdot", "absolute", "dotdot-inside", "dot", "empty-part", "nul", "order", "duplicate",
         "no-parent", "hardlink-escape", "hardlink-forward"],
)
def test_bad_paths_are_refused(store: FileStore, tmp_path: Path, outside: Path,
                               entries: list[dict[str, Any]]) -> None:
    _write_snapshot(store, "evil", entries)
    with pytest.raises(UnsafePath):
        restore_tree(store, "evil", tmp_path / "dst")
    _assert_untouched(outside)


def test_writing_through_a_snapshot_symlink_is_refused(store: FileStore, tmp_path: Path,
                                                       outside: Path) -> None:
    _write_snapshot(store, "evil", [_entry("a", "l", lt=str(outside)), _entry("a/evil", "f")])
    with pytest.raises(UnsafePath, match="below a symlink"):
        restore_tree(store, "evil", tmp_path / "dst")
    _assert_untouched(outside)


def test_writing_through_an_existing_symlink_is_refused(store: FileStore, tmp_path: Path,
                                                        outside: Path) -> None:
    dst = tmp_path / "dst"
    dst.mkdir()
    os.symlink(outside, dst / "escape")
    _write_snapshot(store, "evil", [_entry("escape/evil", "f")])
    with pytest.raises(UnsafePath, match="not a directory inside the target"):
        restore_tree(store, "evil", dst)
    _assert_untouched(outside)


def test_existing_symlink_replaced_by_snapshot_directory(store: FileStore, tmp_path: Path,
                                                         outside: Path) -> None:
    dst = tmp_path / "dst"
    dst.mkdir()
    os.symlink(outside, dst / "escape")
    _write_snapshot(store, "ok", [_entry("escape", "d"), _entry("escape/file", "f")])
    restore_tree(store, "ok", dst)
    assert (dst / "escape").is_dir() and not (dst / "escape").is_symlink()
    assert (dst / "escape" / "file").is_file()
    _assert_untouched(outside)


def test_hard_link_to_existing_outside_file_is_refused(store: FileStore, tmp_path: Path,
                                                       outside: Path) -> None:
    dst = tmp_path / "dst"
    dst.mkdir()
    os.symlink(outside, dst / "a")
    (outside / "precious").write_text("x")
    _write_snapshot(store, "evil", [_entry("z", "h", lt="a/precious")])
    with pytest.raises(UnsafePath):
        restore_tree(store, "evil", dst)
    assert [p.name for p in outside.iterdir()] == ["precious"]
    assert os.stat(outside / "precious").st_nlink == 1


def test_symlinks_pointing_outside_are_data_not_a_threat(store: FileStore, tmp_path: Path) -> None:
    # A symlink to /etc/passwd is restored as a symlink; nothing is written through it.
    src = make_tree(tmp_path / "src", big=False)
    summary = backup_tree(store, src, volume_id="v", key=KEY)
    restore_tree(store, summary.snapshot_id, tmp_path / "dst", key=KEY)
    assert os.readlink(tmp_path / "dst" / "abs-link") == "/etc/passwd"


def test_root_entry_must_be_a_directory(store: FileStore, tmp_path: Path) -> None:
    repo = Repo.open(store, None)
    writer = ManifestWriter(repo.crypto, "evil", {"kind": "kbc-snapshot", "snapshot_id": "evil"})
    writer.add(_entry(".", "f"))
    body, size = writer.finish({"files": 0, "bytes": 0})
    store.put_stream(snapshot_key("evil"), body, size=size)
    writer.close()
    dst = tmp_path / "dst"
    dst.mkdir()
    (dst / "keep.txt").write_text("must survive")
    with pytest.raises(UnsafePath, match="root"):
        restore_tree(store, "evil", dst)
    assert (dst / "keep.txt").read_text() == "must survive"
