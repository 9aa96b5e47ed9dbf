"""Manifests written before version 2 (JSON frames) still restore, check and serve as parents."""

from __future__ import annotations

from pathlib import Path

import pytest

from datamover import DataCorrupt, backup_tree, restore_tree
from datamover.check import check_snapshot, open_index
from datamover.manifest import ManifestReader, ManifestWriter, read_footer
from datamover.repo import Repo, snapshot_key
from vault.filestore import FileStore

from .conftest import KEY, assert_same_tree, make_tree


def _rewrite_as_v1(store: FileStore, snapshot_id: str, new_id: str) -> None:
    """The same snapshot, written as a version-1 manifest (what earlier releases wrote)."""
    crypto = Repo.open(store, KEY).crypto
    footer = read_footer(store, crypto, snapshot_id)
    footer["snapshot_id"], footer["manifest_key"] = new_id, snapshot_key(new_id)
    with ManifestReader(store, crypto, snapshot_id) as reader:
        assert reader.version == 2
        header = {**reader.header, "snapshot_id": new_id, "version": 1}
        writer = ManifestWriter(crypto, new_id, header, version=1)
        for entry in reader.entries():
            writer.add(entry)
    body, size = writer.finish(footer)
    store.put_stream(snapshot_key(new_id), body, size=size)
    writer.close()


def test_a_version_1_snapshot_restores_checks_and_is_a_parent(store: FileStore, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src")
    first = backup_tree(store, src, volume_id="v", key=KEY)
    _rewrite_as_v1(store, first.snapshot_id, "old-format")
    with ManifestReader(store, Repo.open(store, KEY).crypto, "old-format") as reader:
        assert reader.version == 1
        assert reader.footer()["files"] == first.files

    restore_tree(store, "old-format", tmp_path / "dst1", key=KEY)
    assert_same_tree(src, tmp_path / "dst1")

    repo, index = open_index(store, KEY)
    result = check_snapshot(store, "old-format", repo=repo, index=index, read_data=True)
    assert result.problems == [] and result.chunks == first.chunks

    # As the parent of a version-2 backup: nothing is read again.
    second = backup_tree(store, src, volume_id="v", key=KEY, parent_snapshot="old-format")
    assert second.parent_snapshot == "old-format"
    assert second.files_unmodified == first.files and second.bytes_read == 0 and second.new_chunks == 0
    restore_tree(store, second.snapshot_id, tmp_path / "dst2", key=KEY)
    assert_same_tree(src, tmp_path / "dst2")


@pytest.mark.parametrize("row", [(1, 2), ("a", "f", 0o644, 0, 0, 1, 1), ("a", "f") + (0,) * 20])
def test_a_malformed_row_is_corruption_naming_the_manifest(store: FileStore, tmp_path: Path,
                                                           row: tuple[object, ...]) -> None:
    crypto = Repo.open(store, KEY).crypto
    writer = ManifestWriter(crypto, "bad", {"kind": "kbc-snapshot", "snapshot_id": "bad"})
    writer.add_row((".", "d", 0o755, 0, 0, 1, 1))
    writer.add_row(row)
    body, size = writer.finish({"files": 1, "bytes": 0})
    store.put_stream(snapshot_key("bad"), body, size=size)
    writer.close()
    with pytest.raises(DataCorrupt, match="malformed entry") as err:
        restore_tree(store, "bad", tmp_path / "dst", key=KEY)
    assert err.value.key == snapshot_key("bad")
    src = tmp_path / "src"
    (src / "a").parent.mkdir()
    (src / "a").write_bytes(b"x")
    with pytest.raises(DataCorrupt, match="malformed entry") as err:
        backup_tree(store, src, volume_id="v", key=KEY, parent_snapshot="bad")
    assert err.value.key == snapshot_key("bad")
