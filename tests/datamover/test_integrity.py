"""A corrupted or missing vault object fails the restore loudly, naming the object."""

from __future__ import annotations

from pathlib import Path

import pytest

from datamover import DataCorrupt, ObjectMissing, SnapshotNotFound, backup_tree, restore_tree
from vault.filestore import FileStore

from .conftest import KEY, FaultyStore, keys, make_tree


def _flip_byte(store: FileStore, key: str, offset: int) -> None:
    path = store._path(key)  # the file holding the object (layout private to the file store)
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x40
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("key", [None, KEY], ids=["plain", "encrypted"])
def test_corrupted_pack_is_named(store: FileStore, tmp_path: Path, key: bytes | None) -> None:
    summary = backup_tree(store, make_tree(tmp_path / "src"), volume_id="v", key=key)
    (pack,) = keys(store, "data/packs/")
    _flip_byte(store, pack, 100)
    with pytest.raises(DataCorrupt, match="corrupted") as err:
        restore_tree(store, summary.snapshot_id, tmp_path / "dst", key=key)
    assert err.value.key == pack and pack in str(err.value)


@pytest.mark.parametrize("key", [None, KEY], ids=["plain", "encrypted"])
def test_tampering_the_store_misses_is_caught_by_the_digests(store: FileStore, tmp_path: Path,
                                                             key: bytes | None) -> None:
    summary = backup_tree(store, make_tree(tmp_path / "src"), volume_id="v", key=key)
    tampering = FaultyStore(store)

    def flip(k: str, data: bytes) -> bytes:
        if not k.startswith("data/packs/") or len(data) < 10:
            return data
        return data[:5] + bytes([data[5] ^ 1]) + data[6:]

    tampering.tamper_get = flip
    with pytest.raises(DataCorrupt) as err:
        restore_tree(tampering, summary.snapshot_id, tmp_path / "dst", key=key)
    assert err.value.key is not None and err.value.key.startswith("data/packs/")


def test_missing_pack_is_named(store: FileStore, tmp_path: Path) -> None:
    summary = backup_tree(store, make_tree(tmp_path / "src"), volume_id="v")
    (pack,) = keys(store, "data/packs/")
    store.delete(pack)
    with pytest.raises(ObjectMissing, match="missing") as err:
        restore_tree(store, summary.snapshot_id, tmp_path / "dst")
    assert err.value.key == pack and pack in str(err.value)


def test_missing_pack_and_index_names_the_file(store: FileStore, tmp_path: Path) -> None:
    summary = backup_tree(store, make_tree(tmp_path / "src"), volume_id="v")
    for k in keys(store, "data/packs/") + keys(store, "data/index/"):
        store.delete(k)
    with pytest.raises(ObjectMissing, match="in no pack") as err:
        restore_tree(store, summary.snapshot_id, tmp_path / "dst")
    assert err.value.key is not None


def test_corrupted_index_is_named(store: FileStore, tmp_path: Path) -> None:
    summary = backup_tree(store, make_tree(tmp_path / "src"), volume_id="v")
    (index,) = keys(store, "data/index/")
    _flip_byte(store, index, 3)
    with pytest.raises(DataCorrupt) as err:
        restore_tree(store, summary.snapshot_id, tmp_path / "dst")
    assert err.value.key == index


def test_missing_or_corrupted_snapshot(store: FileStore, tmp_path: Path) -> None:
    summary = backup_tree(store, make_tree(tmp_path / "src"), volume_id="v", key=KEY)
    with pytest.raises(SnapshotNotFound) as missing:
        restore_tree(store, "no-such-snapshot", tmp_path / "dst", key=KEY)
    assert missing.value.key == "data/snapshots/no-such-snapshot"
    _flip_byte(store, summary.manifest_key, 20)
    with pytest.raises(DataCorrupt) as err:
        restore_tree(store, summary.snapshot_id, tmp_path / "dst", key=KEY)
    assert err.value.key == summary.manifest_key


def test_snapshot_swapped_under_another_name_is_refused(store: FileStore, tmp_path: Path) -> None:
    summary = backup_tree(store, make_tree(tmp_path / "src", big=False), volume_id="v", key=KEY)
    store.put("data/snapshots/other", store.get(summary.manifest_key))
    # Frames are sealed with the snapshot id: a copy under another name does not open.
    with pytest.raises(DataCorrupt) as err:
        restore_tree(store, "other", tmp_path / "dst", key=KEY)
    assert err.value.key == "data/snapshots/other"
