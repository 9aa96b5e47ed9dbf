"""The data mover's layout inside a vault, and its config object.

Keys (relative to the vault root):

    data/config                     chunker parameters, encryption salt and key check (JSON)
    data/packs/<xx>/<pack-id>       packs: many chunks in one object (see packs.py)
    data/index/<xx>/<pack-id>       a copy of each pack's index, so the chunk index loads fast
    data/snapshots/<snapshot-id>    one volume backup's manifest (see manifest.py)
    data/locks/<kind>-<id>          backup / gc locks (see locks.py)

The config is written once (put-if-absent) by the first backup; every later run must use the
same chunker parameters and the same key, which is what makes chunks deduplicate across files,
volumes and backups of the vault.
"""

from __future__ import annotations

import base64
import json
import os
import re
import uuid
from dataclasses import dataclass

from vault.store import ObjectExists, ObjectStore

from .crypto import Crypto, SealError
from .errors import (
    DataCorrupt,
    EncryptionKeyMismatch,
    EncryptionKeyRequired,
    EncryptionNotEnabled,
    ObjectMissing,
    store_errors,
)

CONFIG_KEY = "data/config"
PACKS_PREFIX = "data/packs/"
INDEX_PREFIX = "data/index/"
SNAPSHOTS_PREFIX = "data/snapshots/"
LOCKS_PREFIX = "data/locks/"

FORMAT_VERSION = 1
_KEY_CHECK = b"kbc datamover key check v1"


@dataclass(frozen=True)
class ChunkerParams:
    # pyfastcdc's effective average is avg + min; 256 KiB / 1 MiB / 4 MiB gives ~1.25 MiB chunks:
    # big enough that per-chunk Python overhead is negligible, small enough to dedup edits.
    min_size: int = 256 * 1024
    avg_size: int = 1024 * 1024
    max_size: int = 4 * 1024 * 1024


def pack_key(pack_id: str) -> str:
    return f"{PACKS_PREFIX}{pack_id[:2]}/{pack_id}"


def index_key(pack_id: str) -> str:
    return f"{INDEX_PREFIX}{pack_id[:2]}/{pack_id}"


_SNAPSHOT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def snapshot_key(snapshot_id: str) -> str:
    if not _SNAPSHOT_ID.fullmatch(snapshot_id):
        raise ValueError(f"invalid snapshot id {snapshot_id!r}: use letters, digits, '.', '_' and '-'")
    return f"{SNAPSHOTS_PREFIX}{snapshot_id}"


def pack_id_of(key: str) -> str:
    return key.rsplit("/", 1)[-1]


class _NoConfig(ObjectMissing):
    pass


@dataclass
class Repo:
    store: ObjectStore
    crypto: Crypto
    chunker: ChunkerParams
    repo_id: str

    @classmethod
    def open(cls, store: ObjectStore, key: bytes | None, *, create: bool = True) -> Repo:
        """Read (or, for the first backup, create) data/config and check the key against it."""
        try:
            with store_errors(CONFIG_KEY, missing=_NoConfig):
                raw = store.get(CONFIG_KEY)
        except _NoConfig:
            if not create:
                raise ObjectMissing(
                    f"vault has no data mover config ({CONFIG_KEY}): nothing was ever backed up here",
                    key=CONFIG_KEY,
                ) from None
            raw = _new_config(key)
            try:
                store.put(CONFIG_KEY, raw, if_absent=True)
            except ObjectExists:
                with store_errors(CONFIG_KEY):
                    raw = store.get(CONFIG_KEY)  # another backup created it first: use theirs
        return cls._from_config(store, raw, key)

    @classmethod
    def _from_config(cls, store: ObjectStore, raw: bytes, key: bytes | None) -> Repo:
        try:
            cfg = json.loads(raw)
            version = int(cfg["version"])
            chunker = ChunkerParams(**cfg["chunker"])
            enc = cfg.get("encryption")
            salt = base64.b64decode(enc["salt"]) if enc else b""
        except (ValueError, KeyError, TypeError) as exc:
            raise DataCorrupt(
                f"vault object {CONFIG_KEY} is not a valid config: {exc}", key=CONFIG_KEY
            ) from exc
        if version != FORMAT_VERSION:
            raise DataCorrupt(f"{CONFIG_KEY}: unsupported format version {version}", key=CONFIG_KEY)
        if enc and key is None:
            raise EncryptionKeyRequired(
                f"the vault's data is encrypted ({CONFIG_KEY}); the encryption key Secret is required",
                key=CONFIG_KEY,
            )
        if not enc and key is not None:
            raise EncryptionNotEnabled(
                f"an encryption key was given but the vault's data is not encrypted ({CONFIG_KEY}); "
                "use a new vault for encrypted backups",
                key=CONFIG_KEY,
            )
        crypto = Crypto(key, salt)
        if enc:
            try:
                ok = crypto.open(base64.b64decode(enc["key_check"]), b"config") == _KEY_CHECK
            except SealError:
                ok = False
            if not ok:
                raise EncryptionKeyMismatch(
                    f"the encryption key does not match the key of the vault's data ({CONFIG_KEY})",
                    key=CONFIG_KEY,
                )
        return cls(store=store, crypto=crypto, chunker=chunker, repo_id=str(cfg["id"]))


def _new_config(key: bytes | None) -> bytes:
    cfg: dict[str, object] = {
        "version": FORMAT_VERSION,
        "id": uuid.uuid4().hex,
        "chunker": ChunkerParams().__dict__,
        "encryption": None,
    }
    if key is not None:
        salt = os.urandom(32)
        check = Crypto(key, salt).seal(_KEY_CHECK, b"config")
        cfg["encryption"] = {
            "cipher": "aes-256-gcm",
            "kdf": "hkdf-sha256",
            "salt": base64.b64encode(salt).decode(),
            "key_check": base64.b64encode(check).decode(),
        }
    return json.dumps(cfg, indent=1).encode()
