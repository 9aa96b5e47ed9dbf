"""Small files read by reader processes: the same snapshot as reader threads make, errors included."""

from __future__ import annotations

import multiprocessing
import os
import signal
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pytest

import datamover.backup as backup_mod
from datamover import backup_tree, restore_tree
from datamover.manifest import ManifestReader
from datamover.models import Progress
from datamover.repo import Repo
from vault.filestore import FileStore

from .conftest import KEY, assert_same_tree, keys, make_tree, rand_bytes


def _many_small(root: Path, count: int) -> Path:
    make_tree(root)
    for i in range(count):
        d = root / "small" / f"d{i // 100:03d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i:05d}").write_bytes(rand_bytes(1 + i % 5000, i))
    return root


def _entries(store: FileStore, snapshot_id: str) -> list[dict[str, object]]:
    with ManifestReader(store, Repo.open(store, KEY).crypto, snapshot_id) as reader:
        return list(reader.entries())


def test_processes_make_the_snapshot_threads_make(tmp_path: Path) -> None:
    src = _many_small(tmp_path / "src", 600)
    threads, procs = FileStore(tmp_path / "v1", create=True), FileStore(tmp_path / "v2", create=True)
    by_threads = backup_tree(threads, src, volume_id="v", key=KEY, processes=0)
    by_procs = backup_tree(procs, src, volume_id="v", key=KEY, processes=2, processes_after=0)
    # (Chunk counts differ: each vault's salt seeds its own chunk boundaries for big files.)
    for field in ("files", "bytes", "dirs", "symlinks", "hardlinks", "bytes_read", "files_new"):
        assert getattr(by_procs, field) == getattr(by_threads, field), field
    assert by_procs.errors.count == 0
    # Chunk ids are keyed by each vault's salt, and the first run's listing moved directories'
    # atimes: compare everything else of every entry.
    a, b = _entries(threads, by_threads.snapshot_id), _entries(procs, by_procs.snapshot_id)
    assert [{k: v for k, v in e.items() if k not in ("c", "h", "at")} for e in a] == [
        {k: v for k, v in e.items() if k not in ("c", "h", "at")} for e in b
    ]
    restore_tree(procs, by_procs.snapshot_id, tmp_path / "dst", key=KEY)
    assert_same_tree(src, tmp_path / "dst")

    # Dedup against what processes stored, and incremental on top of it.
    again = backup_tree(procs, src, volume_id="v", key=KEY, processes=2, processes_after=0)
    assert again.new_chunks == 0
    (src / "small" / "d000" / "f00007").write_bytes(b"changed")
    inc = backup_tree(procs, src, volume_id="v", key=KEY, parent_snapshot=again.snapshot_id,
                      processes=2, processes_after=0)
    assert inc.files_changed == 1 and inc.files_unmodified == inc.files - 1 and inc.new_chunks == 1
    restore_tree(procs, inc.snapshot_id, tmp_path / "dst2", key=KEY)
    assert_same_tree(src, tmp_path / "dst2")


def test_a_killed_reader_process_fails_the_backup_and_commits_nothing(tmp_path: Path) -> None:
    src = _many_small(tmp_path / "src", 4000)
    store = FileStore(tmp_path / "vault", create=True)
    killed: list[int] = []

    def kill_a_reader(_: Progress) -> None:
        for child in multiprocessing.active_children():
            if not killed and child.pid is not None:
                os.kill(child.pid, signal.SIGKILL)
                killed.append(child.pid)

    with pytest.raises(BrokenProcessPool, match=r"reader process died .* can be retried"):
        backup_tree(store, src, volume_id="v", key=KEY, processes=2, processes_after=0,
                    progress=kill_a_reader)
    assert killed and keys(store, "data/snapshots/") == []
    # The retry (what the activity does) completes, without the packs stored before the kill again.
    summary = backup_tree(store, src, volume_id="v", key=KEY, processes=2, processes_after=0)
    restore_tree(store, summary.snapshot_id, tmp_path / "dst", key=KEY)
    assert_same_tree(src, tmp_path / "dst")


def test_without_reader_processes_threads_read_everything(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # A container without /dev/shm cannot make the pool's semaphores.
    def no_semaphores(*args: object, **kwargs: object) -> None:
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr(backup_mod, "ProcessPoolExecutor", no_semaphores)
    src = _many_small(tmp_path / "src", 300)
    store = FileStore(tmp_path / "vault", create=True)
    summary = backup_tree(store, src, volume_id="v", key=KEY, processes=2, processes_after=0)
    assert summary.errors.count == 0 and summary.files_new == summary.files
    restore_tree(store, summary.snapshot_id, tmp_path / "dst", key=KEY)
    assert_same_tree(src, tmp_path / "dst")
