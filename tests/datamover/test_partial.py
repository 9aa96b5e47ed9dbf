"""Honest partial results: changed, vanished, unreadable and special files are reported per path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import datamover.reader as reader_mod
import datamover.walk as walk_mod
from datamover import backup_tree, restore_tree
from datamover.manifest import ManifestReader
from datamover.repo import Repo
from vault.filestore import FileStore

from .conftest import MIB, rand_bytes

REPO = Path(__file__).resolve().parents[2]


def _tree(root: Path) -> Path:
    root.mkdir()
    for name in ("a.txt", "b.txt", "c.txt"):
        (root / name).write_text(f"content of {name}\n")
    (root / "big.img").write_bytes(rand_bytes(3 * MIB, 1))
    (root / "sub").mkdir()
    (root / "sub" / "d.txt").write_text("d\n")
    return root


def _reasons(summary: object) -> dict[str, str]:
    return {e.path: e.reason for e in summary.errors.paths}  # type: ignore[attr-defined]


def test_special_files_are_reported_and_skipped(store: FileStore, tmp_path: Path) -> None:
    src = _tree(tmp_path / "src")
    os.mkfifo(src / "pipe")
    summary = backup_tree(store, src, volume_id="v")
    assert summary.partial and summary.errors.count == 1
    assert summary.errors.paths[0].path == "pipe" and summary.errors.paths[0].reason == "special"
    assert "fifo" in summary.errors.paths[0].detail
    assert summary.files == 5
    restore_tree(store, summary.snapshot_id, tmp_path / "dst")
    assert not (tmp_path / "dst" / "pipe").exists() and (tmp_path / "dst" / "a.txt").exists()


def test_file_changed_while_read(store: FileStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = _tree(tmp_path / "src")
    original = reader_mod.Reader._chunk

    def chunk_then_append(self: reader_mod.Reader, fd: int, size: int, job: reader_mod.FileJob,
                          tid: int) -> int:
        total = original(self, fd, size, job, tid)
        if job.rel == "big.img":
            with open(job.path, "ab") as f:  # the application writes while we read
                f.write(b"appended during backup")
        return total

    monkeypatch.setattr(reader_mod.Reader, "_chunk", chunk_then_append)
    summary = backup_tree(store, src, volume_id="v")
    assert _reasons(summary) == {"big.img": "changed"}
    assert summary.files == 5  # still stored (what was read), flagged
    monkeypatch.undo()
    # The flagged file is never trusted as an incremental parent: the next run reads it again.
    again = backup_tree(store, src, volume_id="v", parent_snapshot=summary.snapshot_id)
    assert again.errors.count == 0 and again.files_changed == 1 and again.files_unmodified == 4
    restore_tree(store, again.snapshot_id, tmp_path / "dst")
    assert (tmp_path / "dst" / "big.img").read_bytes() == (src / "big.img").read_bytes()


def test_vanished_file(store: FileStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = _tree(tmp_path / "src")
    original = reader_mod.Reader._read

    def delete_then_read(self: reader_mod.Reader, job: reader_mod.FileJob, tid: int) -> None:
        if job.rel == "b.txt":
            os.unlink(job.path)
        original(self, job, tid)

    monkeypatch.setattr(reader_mod.Reader, "_read", delete_then_read)
    summary = backup_tree(store, src, volume_id="v")
    assert _reasons(summary) == {"b.txt": "vanished"} and summary.files == 4
    with ManifestReader(store, Repo.open(store, None).crypto, summary.snapshot_id) as reader:
        assert "b.txt" not in {e["p"] for e in reader.entries()}


def test_unreadable_file_and_directory(store: FileStore, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    src = _tree(tmp_path / "src")
    original_open = reader_mod.Reader._open
    original_scandir = os.scandir

    def deny_open(self: reader_mod.Reader, path: str) -> int:
        if path.endswith("c.txt"):
            raise PermissionError(13, "Permission denied", path)
        return original_open(self, path)

    def deny_scandir(path: str) -> object:
        if str(path).endswith("sub"):
            raise PermissionError(13, "Permission denied", path)
        return original_scandir(path)

    # As root, chmod 000 does not stop reads: inject the errors the kernel would give. That takes
    # the Python walk (the native one lists in native code); the real chmod 000 test below runs
    # the native walk without root's capabilities.
    monkeypatch.setattr(reader_mod.Reader, "_open", deny_open)
    monkeypatch.setattr(walk_mod, "_NativeWalker", None)
    monkeypatch.setattr(walk_mod.os, "scandir", deny_scandir)
    summary = backup_tree(store, src, volume_id="v", native=False)
    assert _reasons(summary) == {"c.txt": "unreadable", "sub": "unreadable"}
    assert "Permission denied" in summary.errors.paths[0].detail
    assert summary.files == 3 and summary.dirs == 2  # the unreadable directory itself is kept


_CHILD = """
import json, sys
sys.path.insert(0, sys.argv[3])
from datamover import backup_tree
from vault.filestore import FileStore
summary = backup_tree(FileStore(sys.argv[1], create=True), sys.argv[2], volume_id="v",
                      processes=int(sys.argv[4]), processes_after=0)
print(json.dumps({e.path: e.reason for e in summary.errors.paths}))
"""
# Root reads any file through these two capabilities; without them chmod 000 holds, as for
# the node worker reading a volume whose files it may not open.
NO_OVERRIDE = ["setpriv", "--bounding-set=-dac_override,-dac_read_search",
               "--inh-caps=-dac_override,-dac_read_search"]


@pytest.mark.parametrize("processes", [0, 2], ids=["reader-threads", "reader-processes"])
def test_unreadable_file_for_real(store: FileStore, tmp_path: Path, processes: int) -> None:
    """A file the reader may not open and a directory the walk may not list, for real (as root:
    in a process without the override); the walk is the native one, as in the product."""
    src = _tree(tmp_path / "src")
    os.chmod(src / "a.txt", 0)
    os.chmod(src / "sub", 0)
    vault = tmp_path / "vault"
    prefix = NO_OVERRIDE if os.geteuid() == 0 else []
    args = [str(vault), str(src), str(REPO), str(processes)]
    try:
        done = subprocess.run([*prefix, sys.executable, "-c", _CHILD, *args],
                              capture_output=True, text=True, timeout=120)
    finally:
        os.chmod(src / "sub", 0o755)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"a.txt": "unreadable", "sub": "unreadable"}


def test_hard_link_to_unreadable_file_is_reported(store: FileStore, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    src = _tree(tmp_path / "src")
    os.link(src / "a.txt", src / "z-link")
    original_open = reader_mod.Reader._open

    def deny_open(self: reader_mod.Reader, path: str) -> int:
        if path.endswith("a.txt"):
            raise PermissionError(13, "Permission denied", path)
        return original_open(self, path)

    monkeypatch.setattr(reader_mod.Reader, "_open", deny_open)
    summary = backup_tree(store, src, volume_id="v")
    assert _reasons(summary) == {"a.txt": "unreadable", "z-link": "unreadable"}
    restore_tree(store, summary.snapshot_id, tmp_path / "dst")


def test_error_paths_are_capped_but_counted(store: FileStore, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(130):
        os.mkfifo(src / f"fifo{i:03d}")
    summary = backup_tree(store, src, volume_id="v")
    assert summary.errors.count == 130 and len(summary.errors.paths) == 100
    assert summary.errors.by_reason == {"special": 130}
    assert len(summary.model_dump_json()) < 20_000


def test_file_replaced_by_fifo_or_directory(store: FileStore, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    src = _tree(tmp_path / "src")
    original = reader_mod.Reader._read

    def swap_then_read(self: reader_mod.Reader, job: reader_mod.FileJob, tid: int) -> None:
        if job.rel == "a.txt":
            os.unlink(job.path)
            os.mkfifo(job.path)  # opening this for reading must not hang
        if job.rel == "b.txt":
            os.unlink(job.path)
            os.mkdir(job.path)
        original(self, job, tid)

    monkeypatch.setattr(reader_mod.Reader, "_read", swap_then_read)
    summary = backup_tree(store, src, volume_id="v")
    assert _reasons(summary) == {"a.txt": "changed", "b.txt": "changed"}


def test_small_file_growing_while_read(store: FileStore, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    src = _tree(tmp_path / "src")
    original = reader_mod.read_small

    def grow_then_read(fd: int, size: int) -> bytes:
        if size == len("content of a.txt\n"):
            with open(src / "a.txt", "ab") as f:
                f.write(b"more lines written during the backup\n")
        return original(fd, size)

    monkeypatch.setattr(reader_mod, "read_small", grow_then_read)
    summary = backup_tree(store, src, volume_id="v")
    assert _reasons(summary) == {"a.txt": "changed"}
    monkeypatch.undo()
    restore_tree(store, summary.snapshot_id, tmp_path / "dst")
    # What was read is restored consistently: the original bytes and one more (the growth probe).
    expected = (src / "a.txt").read_bytes()[: len("content of a.txt\n") + 1]
    assert (tmp_path / "dst" / "a.txt").read_bytes() == expected
