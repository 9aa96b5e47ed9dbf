"""The native scan (kbc_fastwalk.Scan: the walk merged with the parent snapshot in native code)
against the Python merge it replaces: the same manifests and the same counts, round after round of
changes to an awkward tree, and restores identical to the source."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import msgpack

from datamover import backup_tree, gc, restore_tree
from datamover import walk as walk_mod
from datamover.manifest import ManifestReader, ManifestWriter
from datamover.repo import Repo
from vault.filestore import FileStore

from .conftest import KEY, MIB, assert_same_tree, rand_bytes

COUNTS = ("files", "dirs", "symlinks", "hardlinks", "bytes", "chunks", "files_new", "files_changed",
          "files_unmodified", "bytes_read")


def awkward_tree(root: Path) -> Path:
    """Names that sort differently by component than as strings, names that are not UTF-8, empty
    directories and files, links of both kinds, and files of several chunks."""
    for rel in ("a/b/c.txt", "a.txt", "a-b/x", "ä/ö.txt", "z/deep/er/still/file", "empty-file"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(rel.encode() * 3 if rel != "empty-file" else b"")
    (root / "empty-dir").mkdir()
    os.mkdir(os.path.join(os.fsencode(root), b"bytes-\xff-dir"))
    with open(os.path.join(os.fsencode(root), b"bytes-\xff-dir", b"\xfe\xfd"), "wb") as out:
        out.write(b"not utf-8")
    (root / "big.bin").write_bytes(rand_bytes(3 * MIB, 1))
    (root / "link").symlink_to("a/b/c.txt")
    os.link(root / "a.txt", root / "a-hard")
    for i in range(300):  # more than one walk batch, so rows arrive in several runs
        (root / "many" / f"f{i:03}").parent.mkdir(exist_ok=True)
        (root / "many" / f"f{i:03}").write_bytes(b"%d" % i)
    return root


def rows(store: FileStore, snapshot_id: str) -> list[tuple[Any, ...]]:
    """The manifest's rows, atime left out (reading a file moves it between the two runs)."""
    with ManifestReader(store, Repo.open(store, KEY).crypto, snapshot_id) as reader:
        return [row[:6] + row[7:] for frame in reader.row_frames() for row in frame]


def both(store: FileStore, src: Path, parent: str | None) -> tuple[Any, Any]:
    """The same backup by the native scan and by the Python merge, each on the vault as it is now
    (the Python one on a copy); their rows and counts agree."""
    Repo.open(store, KEY, create=True)  # one repository (its keys) for both
    copy = store.root.with_name(store.root.name + "-copy")
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(store.root, copy)
    python_store = FileStore(copy)
    python = backup_tree(python_store, src, volume_id="v", key=KEY, parent_snapshot=parent, native=False)
    native = backup_tree(store, src, volume_id="v", key=KEY, parent_snapshot=parent)
    assert rows(store, native.snapshot_id) == rows(python_store, python.snapshot_id)
    assert {k: getattr(native, k) for k in COUNTS} == {k: getattr(python, k) for k in COUNTS}
    assert native.errors == python.errors
    return native, python


def test_native_scan_installed() -> None:
    assert walk_mod.NativeScan is not None, "kbc_fastwalk is not installed: run `make venv`"


def test_native_scan_writes_what_the_python_merge_writes(store: FileStore, tmp_path: Path) -> None:
    src = awkward_tree(tmp_path / "src")
    first, _ = both(store, src, None)
    assert first.files_new == first.files

    unchanged, _ = both(store, src, first.snapshot_id)
    assert unchanged.files_unmodified == unchanged.files and unchanged.bytes_read == 0

    # A round of every kind of change.
    (src / "a" / "b" / "c.txt").write_bytes(b"edited")
    (src / "many" / "f007").unlink()
    (src / "many" / "f007b").write_bytes(b"new beside a deleted one")
    (src / "a-b" / "x").chmod(0o600)  # ctime only
    os.utime(src / "many" / "f100", ns=(1, 2))  # mtime only
    shutil.rmtree(src / "z" / "deep" / "er")
    (src / "z" / "deep" / "er").write_bytes(b"a file where a directory was")
    (src / "empty-dir").rmdir()
    (src / "empty-dir").mkdir()
    (src / "zz-last").write_bytes(b"after every parent row")
    changed, _ = both(store, src, unchanged.snapshot_id)
    assert changed.files_changed == 3 and changed.files_new == 3, changed
    assert changed.files_unmodified == changed.files - 6

    restore_tree(store, changed.snapshot_id, tmp_path / "dst", key=KEY)
    assert_same_tree(src, tmp_path / "dst")


def test_parent_chunks_gone_are_not_reused(store: FileStore, tmp_path: Path) -> None:
    """Only chunks the vault still holds are reused (the index the scan tests ids against)."""
    src = awkward_tree(tmp_path / "src")
    first = backup_tree(store, src, volume_id="v", key=KEY)
    # The parent deleted and collected while its manifest object survived.
    manifest = store.get(first.manifest_key)
    gc(store, [], grace_seconds=0, key=KEY)
    store.put(first.manifest_key, manifest)
    native, python = both(store, src, first.snapshot_id)
    assert native.files_unmodified == python.files_unmodified == 1  # only the empty file needs no chunk
    restore_tree(store, native.snapshot_id, tmp_path / "dst", key=KEY)
    assert_same_tree(src, tmp_path / "dst")


def test_rows_of_both_kinds_in_one_frame_decode(store: FileStore) -> None:
    """A frame of rows encoded elsewhere (add_raw) and rows packed here decodes to all of them, in
    order, past the 15 and 65,535 elements where msgpack's array header grows."""
    crypto = Repo.open(store, KEY, create=True).crypto
    for count in (3, 20, 70_000):
        writer = ManifestWriter(crypto, f"s{count}", {"kind": "kbc-snapshot", "snapshot_id": f"s{count}"})
        writer.add_row((".", "d", 0o755, 0, 0, 1, 1))
        packer = msgpack.Packer()
        encoded = [(f"r{i:06}", "d", 0o700, 0, 0, i, i) for i in range(count)]
        writer.add_raw(b"".join(packer.pack(r) for r in encoded), count, 0)
        writer.add_row(("zzz", "d", 0o700, 0, 0, 5, 5))
        body, size = writer.finish({"files": 0})
        store.put_stream(f"data/snapshots/s{count}", body, size=size)
        writer.close()
        with ManifestReader(store, crypto, f"s{count}") as reader:
            got = [r for frame in reader.row_frames() for r in frame]
        assert got == [(".", "d", 0o755, 0, 0, 1, 1), *encoded, ("zzz", "d", 0o700, 0, 0, 5, 5)]
