"""A backup killed mid-upload and run again uploads only what is not stored yet."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from datamover import backup_tree, gc, restore_tree
from datamover.index import load_index
from datamover.packs import read_pack_index
from datamover.repo import Repo
from vault.filestore import FileStore

from .conftest import KEY, MIB, FaultyStore, assert_same_tree, keys, rand_bytes

REPO_ROOT = Path(__file__).resolve().parents[2]


def _tree(root: Path, files: int = 12) -> tuple[Path, int]:
    root.mkdir()
    for i in range(files):
        (root / f"f{i:02d}.img").write_bytes(rand_bytes(MIB + i * 1000, i))
    return root, sum(MIB + i * 1000 for i in range(files))


def _stored(store: FileStore, key: bytes | None = None) -> tuple[int, int]:
    """(plain bytes, blob count) of every chunk the vault holds, recovering orphan packs."""
    index = load_index(Repo.open(store, key), recover=True)
    return sum(e.raw_len for _, (_, e) in index.items()), len(index)


def _no_chunk_twice(store: FileStore, key: bytes | None = None) -> None:
    repo = Repo.open(store, key)
    ids: list[bytes] = []
    for pack in keys(store, "data/packs/"):
        ids.extend(e.chunk_id for e in read_pack_index(store, repo.crypto, pack)[1])
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("key", [None, KEY], ids=["plain", "encrypted"])
def test_rerun_after_failure_uploads_only_the_rest(store: FileStore, tmp_path: Path,
                                                   key: bytes | None) -> None:
    src, total = _tree(tmp_path / "src")
    faulty = FaultyStore(store)
    faulty.fail_put = lambda k: k.startswith("data/packs/") and faulty.count("data/packs/") >= 4
    with pytest.raises(RuntimeError, match="injected failure"):
        backup_tree(faulty, src, volume_id="v", key=key, pack_size=MIB)
    assert not keys(store, "data/snapshots/")  # nothing committed
    stored_bytes, _ = _stored(store, key)
    assert stored_bytes >= 4 * MIB

    counting = FaultyStore(store)
    summary = backup_tree(counting, src, volume_id="v", key=key, pack_size=MIB)
    assert summary.new_bytes == total - stored_bytes
    assert counting.count("data/packs/") == summary.packs_uploaded < 12
    _no_chunk_twice(store, key)
    restore_tree(store, summary.snapshot_id, tmp_path / "dst", key=key)
    assert_same_tree(src, tmp_path / "dst")


def test_crash_between_pack_and_index(store: FileStore, tmp_path: Path) -> None:
    src, total = _tree(tmp_path / "src")
    faulty = FaultyStore(store)
    faulty.fail_put = lambda k: k.startswith("data/index/") and faulty.count("data/index/") >= 2
    with pytest.raises(RuntimeError, match="injected failure"):
        backup_tree(faulty, src, volume_id="v", pack_size=MIB)
    orphans = {k.rsplit("/", 1)[1] for k in keys(store, "data/packs/")} - {
        k.rsplit("/", 1)[1] for k in keys(store, "data/index/")
    }
    assert orphans  # a pack whose index object was never written
    stored_bytes, _ = _stored(store)  # re-indexes the orphan from its trailer
    assert {k.rsplit("/", 1)[1] for k in keys(store, "data/index/")} >= orphans
    summary = backup_tree(store, src, volume_id="v", pack_size=MIB)
    assert summary.new_bytes == total - stored_bytes
    _no_chunk_twice(store)


def test_killed_process_resumes(store: FileStore, tmp_path: Path) -> None:
    src, total = _tree(tmp_path / "src", files=16)
    script = textwrap.dedent(f"""
        import time
        from vault.filestore import FileStore
        from datamover import backup_tree

        class SlowStore(FileStore):
            def put(self, key, data, *, if_absent=False):
                info = super().put(key, data, if_absent=if_absent)
                if key.startswith("data/index/"):
                    time.sleep(0.3)  # slow enough to be killed mid-run
                return info

        backup_tree(SlowStore({str(store.root)!r}), {str(src)!r}, volume_id="v", pack_size=1 << 20, workers=2)
    """)
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO_ROOT, env=env)
    try:
        deadline = time.monotonic() + 60
        while len(keys(store, "data/index/")) < 3:
            assert proc.poll() is None, "backup finished before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert not keys(store, "data/snapshots/")
    stale_locks = keys(store, "data/locks/")
    assert len(stale_locks) == 1  # the killed run's lock stays until it goes stale

    stored_bytes, _ = _stored(store)
    assert 3 * MIB <= stored_bytes < total
    summary = backup_tree(store, src, volume_id="v", pack_size=MIB)
    assert summary.new_bytes == total - stored_bytes
    _no_chunk_twice(store)
    restore_tree(store, summary.snapshot_id, tmp_path / "dst")
    assert_same_tree(src, tmp_path / "dst")

    # gc waits for the dead run's lock to go stale, then works.
    assert gc(store, [summary.snapshot_id], grace_seconds=0).blocked_by == stale_locks
    assert gc(store, [summary.snapshot_id], grace_seconds=0, stale_lock_seconds=0).blocked_by == []
