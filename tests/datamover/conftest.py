"""Fixtures for the data mover tests: a file:// vault, sample trees, tree comparison, fault injection."""

from __future__ import annotations

import os
import random
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from vault.filestore import FileStore
from vault.store import ObjectInfo, ObjectStore

KEY = b"0123456789abcdef0123456789abcdef"
MIB = 1024 * 1024


@pytest.fixture
def store(tmp_path: Path) -> FileStore:
    return FileStore(tmp_path / "vault", create=True)


def rand_bytes(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


def text_bytes(n: int, seed: int) -> bytes:
    rng = random.Random(seed)
    words = [b"alpha", b"beta", b"gamma", b"delta", b"backup", b"volume", b"chunk", b"vault"]
    out = bytearray()
    while len(out) < n:
        out += b" ".join(rng.choices(words, k=12)) + b"\n"
    return bytes(out[:n])


def make_tree(root: Path, *, big: bool = True) -> Path:
    """A tree with every kind of entry the data mover must keep."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "docs").mkdir()
    (root / "docs" / "readme.txt").write_bytes(text_bytes(10_000, 1))
    (root / "docs" / "empty.txt").write_bytes(b"")
    (root / "docs" / "secret.key").write_bytes(b"not really secret\n")
    os.chmod(root / "docs" / "secret.key", 0o600)
    (root / "bin").mkdir()
    (root / "bin" / "tool").write_bytes(rand_bytes(300_000, 2))
    os.chmod(root / "bin" / "tool", 0o755)
    if big:
        # Several chunks (min 256 KiB, ~1.25 MiB average), half compressible.
        (root / "data").mkdir()
        (root / "data" / "random.img").write_bytes(rand_bytes(5 * MIB, 3))
        (root / "data" / "log.txt").write_bytes(text_bytes(3 * MIB, 4))
    (root / "empty-dir" / "nested-empty").mkdir(parents=True)
    os.symlink("docs/readme.txt", root / "rel-link")
    os.symlink("/etc/passwd", root / "abs-link")
    os.symlink("does/not/exist", root / "dangling-link")
    os.link(root / "docs" / "readme.txt", root / "hard-readme")
    os.link(root / "docs" / "readme.txt", root / "docs" / "hard-readme-2")
    (root / "ro-dir").mkdir()
    (root / "ro-dir" / "inside.txt").write_bytes(b"inside a read-only directory\n")
    os.chmod(root / "ro-dir", 0o555)
    (root / "unicode-ñämé.txt").write_bytes("ünïcödé\n".encode())
    (root.joinpath(os.fsdecode(b"latin1-\xe9.bin"))).write_bytes(b"non utf-8 name\n")
    if os.geteuid() == 0:
        os.chown(root / "docs" / "secret.key", 1234, 5678)
        os.chown(root / "rel-link", 1234, 5678, follow_symlinks=False)
    # Distinct, old times (ns precision) on everything, directories last.
    t = 1_600_000_000_123_456_789
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for name in filenames + dirnames:
            t += 1_000_000_007
            os.utime(os.path.join(dirpath, name), ns=(t, t), follow_symlinks=False)
    os.utime(root, ns=(t + 5, t + 5))
    return root


def snapshot_of(root: Path) -> dict[str, tuple[Any, ...]]:
    """Everything restore must reproduce, per relative path."""
    out: dict[str, tuple[Any, ...]] = {}
    inodes: dict[int, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [".", *dirnames, *filenames] if dirpath == str(root) else [*dirnames, *filenames]:
            path = os.path.join(dirpath, name) if name != "." else dirpath
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            common = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = (*common, st.st_mtime_ns, os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = (*common, st.st_mtime_ns)
            else:
                first = inodes.setdefault(st.st_ino, rel) if st.st_nlink > 1 else rel
                out[rel] = (*common, st.st_mtime_ns, Path(path).read_bytes(), first)
    return out


def assert_same_tree(a: Path, b: Path) -> None:
    sa, sb = snapshot_of(a), snapshot_of(b)
    assert sorted(sa) == sorted(sb)
    for rel in sa:
        assert sa[rel] == sb[rel], rel


class FaultyStore:
    """Wraps a store: counts writes per prefix, and can fail or tamper on demand."""

    def __init__(self, inner: ObjectStore) -> None:
        self.inner = inner
        self.url = inner.url
        self.puts: list[str] = []
        self.gets: list[str] = []
        self.fail_put: Callable[[str], bool] = lambda key: False
        self.after_put: Callable[[str], None] = lambda key: None
        self.tamper_get: Callable[[str, bytes], bytes] = lambda key, data: data

    def put(self, key: str, data: bytes, *, if_absent: bool = False) -> ObjectInfo:
        if self.fail_put(key):
            raise RuntimeError(f"injected failure writing {key}")
        info = self.inner.put(key, data, if_absent=if_absent)
        self.puts.append(key)
        self.after_put(key)
        return info

    def put_stream(self, key: str, stream: BinaryIO, *, size: int | None = None,
                   if_absent: bool = False) -> ObjectInfo:
        if self.fail_put(key):
            raise RuntimeError(f"injected failure writing {key}")
        info = self.inner.put_stream(key, stream, size=size, if_absent=if_absent)
        self.puts.append(key)
        return info

    def get(self, key: str, *, start: int | None = None, end: int | None = None) -> bytes:
        self.gets.append(key)
        return self.tamper_get(key, self.inner.get(key, start=start, end=end))

    def get_stream(self, key: str, out: BinaryIO) -> int:
        return self.inner.get_stream(key, out)

    def head(self, key: str) -> ObjectInfo:
        return self.inner.head(key)

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)

    def list(self, prefix: str = "", *, delimiter: str | None = None,
             page_size: int = 1000) -> Iterator[ObjectInfo | str]:
        return self.inner.list(prefix, delimiter=delimiter, page_size=page_size)

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def check(self) -> None:
        self.inner.check()

    def count(self, prefix: str) -> int:
        return sum(1 for k in self.puts if k.startswith(prefix))


def keys(store: ObjectStore, prefix: str) -> list[str]:
    return [o.key for o in store.list(prefix) if isinstance(o, ObjectInfo)]


@pytest.fixture(autouse=True)
def _restore_permissions(tmp_path: Path) -> Iterator[None]:
    # Read-only directories in sample trees would make tmp_path cleanup fail for non-root users.
    yield
    for dirpath, dirnames, _ in os.walk(tmp_path):
        for name in dirnames:
            p = os.path.join(dirpath, name)
            if not os.path.islink(p):
                os.chmod(p, 0o755)
