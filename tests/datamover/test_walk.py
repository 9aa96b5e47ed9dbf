"""The native walk (native/fastwalk) yields exactly what the Python walk yields, in the same order."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import datamover.walk as walk_mod
from datamover.walk import walk

from .test_partial import NO_OVERRIDE

# Every field of os.stat_result, named and positional, so a field filled wrong is seen.
FIELDS = ("st_mode", "st_ino", "st_dev", "st_nlink", "st_uid", "st_gid", "st_size", "st_atime", "st_mtime",
          "st_ctime", "st_atime_ns", "st_mtime_ns", "st_ctime_ns", "st_blksize", "st_blocks", "st_rdev")


def _items(root: Path | str, native: bool) -> list[tuple[Any, ...]]:
    # Listing a directory the first time after it changed moves its atime (relatime): walk once
    # before, so both walks compared see the same times.
    for _ in walk(str(root), native=False):
        pass
    out = []
    for rel, path, st, error in walk(str(root), native=native):
        fields = None if st is None else (tuple(getattr(st, f) for f in FIELDS), tuple(st))
        err = None if error is None else (type(error), error.errno, error.strerror, error.filename)
        out.append((rel, path, fields, err))
    return out


def test_the_native_walk_is_built() -> None:
    # `make venv` builds it; without it every backup would walk in Python, slower, unnoticed.
    assert walk_mod.NATIVE, "kbc_fastwalk is not installed: run `make venv`"


def _awkward_tree(root: Path) -> None:
    (root / "a" / "b" / "c").mkdir(parents=True)
    for name in ("a.txt", "a", "a-b", "a b", "A", "Z", "_x", "é", "ü", "日本", "\U0001F600", "z~"):
        target = root / "a" / "b" / name
        if not target.exists():
            target.write_bytes(name.encode())
    # Names that are not UTF-8: Python decodes them with surrogateescape and sorts the result by
    # code point, not by byte (an undecodable \xe9 sorts after "é", which is \xc3\xa9 in bytes).
    for raw in (b"\xe9t\xe9", b"caf\xe9", b"\xff", b"\xc3", b"mixed-\xc3\xa9-\xe9"):
        with open(os.path.join(os.fsencode(root / "a"), raw), "wb") as f:
            f.write(raw)
    os.mkdir(os.path.join(os.fsencode(root), b"dir-\xfe"))
    (root / "a" / "b" / "c" / "deep.bin").write_bytes(os.urandom(5000))
    os.symlink("a/b", root / "link-to-dir")
    os.symlink("missing", root / "dangling")
    os.mkfifo(root / "fifo")
    os.link(root / "a" / "b" / "c" / "deep.bin", root / "hard")
    os.utime(root / "a" / "b" / "a.txt", ns=(1, 10**19))  # after 2262: beyond an i64 of nanoseconds
    (root / "empty").mkdir()
    os.chmod(root / "a" / "b" / "a.txt", 0o4751)


def test_the_same_items_in_the_same_order(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    _awkward_tree(root)
    native = _items(root, True)
    assert native == _items(root, False)
    rels = [item[0] for item in native]
    assert rels[0] == "." and "a/b/c/deep.bin" in rels and os.fsdecode(b"a/caf\xe9") in rels
    assert rels.index("a/b/é") < rels.index(os.fsdecode(b"a/\xe9t\xe9"))  # code point order
    # Symlinks are not followed: nothing under link-to-dir.
    assert not any(r.startswith("link-to-dir/") for r in rels)


def test_a_root_given_with_a_trailing_slash(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    _awkward_tree(root)
    assert _items(f"{root}/", True) == _items(f"{root}/", False)


def test_a_big_directory_spans_batches(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    for d in range(3):
        (root / f"d{d}").mkdir(parents=True)
        for i in range(700):
            (root / f"d{d}" / f"f{i}").touch()
    native = _items(root, True)
    assert len(native) == 1 + 3 + 2100 and native == _items(root, False)


def _walk_threads() -> int:
    out = subprocess.run(["ps", "-L", "-o", "comm=", "-p", str(os.getpid())], capture_output=True, text=True)
    return out.stdout.split().count("kbc-walk")


def test_stopping_early_leaves_no_walk_running(tmp_path: Path) -> None:
    # More entries than the walk may have in flight: its thread is blocked handing over a batch.
    # (Hard links to one file: cheap to make, unlike 10,000 files.)
    root = tmp_path / "tree"
    root.mkdir()
    (tmp_path / "one").touch()
    for d in range(25):
        (root / f"d{d}").mkdir()
        for i in range(400):
            os.link(tmp_path / "one", root / f"d{d}" / f"f{i}")
    walks = [walk(str(root)) for _ in range(5)]
    for it in walks:
        assert next(it)[0] == "." and next(it)[0] == "d0"
    time.sleep(0.2)
    assert _walk_threads() == 5
    for it in walks:
        it.close()  # the native thread sees the channel closed and ends
    deadline = time.monotonic() + 10
    while _walk_threads():
        assert time.monotonic() < deadline, "a stopped walk's thread is still running"
        time.sleep(0.05)


_UNLISTABLE = """
import json, sys
sys.path.insert(0, sys.argv[2])
from datamover.walk import walk
items = {}
for native in (True, False):
    items[native] = [(rel, path, st is None, None if e is None else [type(e).__name__, e.errno, e.filename])
                     for rel, path, st, e in walk(sys.argv[1], native=native)]
print(json.dumps([items[True] == items[False], items[True]]))
"""


def test_an_unlistable_directory_and_an_unlistable_root(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    (root / "locked").mkdir(parents=True)
    (root / "locked" / "inside").touch()
    (root / "open").mkdir()
    (root / "open" / "x").touch()
    repo = str(Path(__file__).resolve().parents[2])
    prefix = NO_OVERRIDE if os.geteuid() == 0 else []
    os.chmod(root / "locked", 0)
    try:
        done = subprocess.run([*prefix, sys.executable, "-c", _UNLISTABLE, str(root), repo],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        same, items = json.loads(done.stdout)
        assert same
        locked = str(root / "locked")
        # The directory comes with its lstat, then with the error; the walk goes on past it.
        assert ["locked", locked, False, None] in items
        assert ["locked", locked, True, ["PermissionError", 13, locked]] in items
        assert items[-1][0] == "open/x"
        os.chmod(root, 0)
        done = subprocess.run([*prefix, sys.executable, "-c", _UNLISTABLE, str(root), repo],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        same, items = json.loads(done.stdout)
        assert same and items == [[".", str(root), False, None],
                                  [".", str(root), True, ["PermissionError", 13, str(root)]]]
    finally:
        os.chmod(root, 0o755)
        os.chmod(root / "locked", 0o755)


@pytest.mark.parametrize("native", [True, False], ids=["native", "python"])
def test_a_missing_root_raises(tmp_path: Path, native: bool) -> None:
    with pytest.raises(FileNotFoundError):
        next(walk(str(tmp_path / "nope"), native=native))
