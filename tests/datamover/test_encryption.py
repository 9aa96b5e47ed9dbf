"""Client-side encryption: nothing readable in the vault, and a wrong key is a clear error."""

from __future__ import annotations

import random
from pathlib import Path

import blake3
import pytest

from datamover import (
    EncryptionKeyMismatch,
    EncryptionKeyRequired,
    EncryptionNotEnabled,
    backup_tree,
    gc,
    restore_tree,
)
from datamover.crypto import Crypto
from vault.filestore import FileStore

from .conftest import KEY, make_tree

MARKER = b"PLAINTEXT-MARKER-" * 64


def _vault_bytes(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())


def test_vault_holds_no_plaintext_and_no_plain_chunk_ids(store: FileStore, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", big=False)
    (src / "marker.txt").write_bytes(MARKER)
    summary = backup_tree(store, src, volume_id="v", key=KEY)
    raw = _vault_bytes(store.root)
    assert b"PLAINTEXT-MARKER" not in raw
    assert b"readme.txt" not in raw  # file names live in the sealed manifest
    # Chunk ids are keyed: the plain blake3 of a file does not appear anywhere.
    assert blake3.blake3(MARKER).hexdigest().encode() not in raw
    assert blake3.blake3(MARKER).digest() not in raw
    restore_tree(store, summary.snapshot_id, tmp_path / "dst", key=KEY)
    assert (tmp_path / "dst" / "marker.txt").read_bytes() == MARKER


def test_wrong_key_is_a_clear_error(store: FileStore, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", big=False)
    summary = backup_tree(store, src, volume_id="v", key=KEY)
    wrong = b"another key of thirty-two bytes!"
    with pytest.raises(EncryptionKeyMismatch, match="does not match") as err:
        restore_tree(store, summary.snapshot_id, tmp_path / "dst", key=wrong)
    assert err.value.key == "data/config"
    with pytest.raises(EncryptionKeyMismatch):
        backup_tree(store, src, volume_id="v", key=wrong)
    with pytest.raises(EncryptionKeyMismatch):
        gc(store, [summary.snapshot_id], key=wrong)
    assert not (tmp_path / "dst").exists() or not any((tmp_path / "dst").iterdir())


def test_missing_or_unexpected_key(store: FileStore, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", big=False)
    summary = backup_tree(store, src, volume_id="v", key=KEY)
    with pytest.raises(EncryptionKeyRequired) as err:
        restore_tree(store, summary.snapshot_id, tmp_path / "dst")
    assert err.value.key == "data/config"

    plain = FileStore(tmp_path / "plain-vault", create=True)
    backup_tree(plain, src, volume_id="v")
    with pytest.raises(EncryptionNotEnabled):
        backup_tree(plain, src, volume_id="v", key=KEY)


def test_short_key_is_refused(store: FileStore, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", big=False)
    with pytest.raises(ValueError, match="at least 16 bytes"):
        backup_tree(store, src, volume_id="v", key=b"short")


@pytest.mark.parametrize("key", [None, KEY], ids=["plain", "keyed"])
def test_a_threaded_file_digest_is_the_same_digest(key: bytes | None) -> None:
    # Restore re-hashes a big restored file on every core: it must still be the backup's digest.
    crypto = Crypto(key, b"salt" * 4)
    data = random.Random(5).randbytes(9 * 1024 * 1024)
    one, many = crypto.hasher(), crypto.hasher(threads=True)
    for start in range(0, len(data), 4 * 1024 * 1024):
        one.update(data[start:start + 4 * 1024 * 1024])
        many.update(data[start:start + 4 * 1024 * 1024])
    assert one.digest() == many.digest()
    assert one.digest() != Crypto(None if key else KEY, b"salt" * 4).hasher().update(data).digest()
