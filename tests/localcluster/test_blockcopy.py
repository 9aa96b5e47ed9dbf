"""The local disk driver copies volumes the way a block-level disk snapshot keeps them: hard links
stay one file, sparse files keep their holes, modes, owners, times and extended attributes stay
(localdev/kube/agent/blockcopy.py, used on every disk-snapshot path)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from localdev.kube.agent.blockcopy import copy_volume

SPARSE = 256 * 1024 * 1024


def _volume(root: Path) -> None:
    (root / "db").mkdir(parents=True)
    (root / "db" / "rows").write_bytes(b"row\n" * 1000)
    os.link(root / "db" / "rows", root / "db" / "rows.hardlink")
    with open(root / "db" / "sparse.img", "wb") as f:
        f.truncate(SPARSE)
        f.seek(SPARSE // 2)
        f.write(b"middle")
    os.symlink("rows", root / "db" / "rows.symlink")
    (root / "secret").write_text("s")
    os.chmod(root / "secret", 0o600)
    os.chown(root / "secret", 1234, 4321)
    os.utime(root / "secret", ns=(1_600_000_000_000_000_000, 1_600_000_000_123_456_789))
    os.setxattr(root / "secret", "user.origin", b"cluster-a")
    os.chmod(root / "db", 0o750)
    os.utime(root / "db", ns=(1_500_000_000_000_000_000, 1_500_000_000_000_000_000))


@pytest.fixture
def volume(tmp_path: Path) -> Path:
    if os.geteuid() != 0:
        pytest.fail("the local cluster runs its agent as root; this test sets owners like it")
    root = tmp_path / "volume"
    _volume(root)
    return root


def test_links_holes_and_metadata_survive(volume: Path, tmp_path: Path) -> None:
    copy = tmp_path / "snapshot"
    copy_volume(volume, copy)
    rows, twin = copy / "db" / "rows", copy / "db" / "rows.hardlink"
    assert rows.read_bytes() == (volume / "db" / "rows").read_bytes()
    assert os.stat(rows).st_ino == os.stat(twin).st_ino and os.stat(rows).st_nlink == 2
    sparse = os.stat(copy / "db" / "sparse.img")
    assert sparse.st_size == SPARSE and sparse.st_blocks * 512 < 1024 * 1024  # holes kept: < 1 MiB used
    with open(copy / "db" / "sparse.img", "rb") as f:
        f.seek(SPARSE // 2)
        assert f.read(6) == b"middle"
    assert os.readlink(copy / "db" / "rows.symlink") == "rows"
    secret = os.stat(copy / "secret")
    assert (secret.st_mode & 0o777, secret.st_uid, secret.st_gid) == (0o600, 1234, 4321)
    assert secret.st_mtime_ns == 1_600_000_000_123_456_789
    assert os.getxattr(copy / "secret", "user.origin") == b"cluster-a"
    db = os.stat(copy / "db")
    assert (db.st_mode & 0o777, db.st_mtime_ns) == (0o750, 1_500_000_000_000_000_000)


def test_copytree_would_lose_them(volume: Path, tmp_path: Path) -> None:
    # Why the driver does not use shutil.copytree: the same checks fail with it.
    copy = tmp_path / "copytree"
    shutil.copytree(volume, copy, symlinks=True)
    assert os.stat(copy / "db" / "rows").st_nlink == 1
    assert os.stat(copy / "db" / "sparse.img").st_blocks * 512 >= SPARSE


def test_the_target_must_be_new(volume: Path, tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    with pytest.raises(FileExistsError):
        copy_volume(volume, tmp_path / "taken")
