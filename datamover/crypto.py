"""Keys, chunk ids and sealing of vault objects.

The caller gives one secret (bytes from a Kubernetes Secret).  HKDF derives independent
sub-keys from it with the vault's random salt: an AES-256-GCM key for object contents, a
blake3 key for chunk ids (so ids do not reveal whether a vault holds some known content), and
a seed for the chunker's gear table (so chunk boundaries do not fingerprint files either).
Without a secret, ids are plain blake3 and objects are stored unsealed.
"""

from __future__ import annotations

import os
import threading

import blake3
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

NONCE_SIZE = 12
TAG_SIZE = 16
SEAL_OVERHEAD = NONCE_SIZE + TAG_SIZE
MIN_SECRET_SIZE = 16


class SealError(Exception):
    """Authentication failed: wrong key, or the bytes were altered.  Callers name the object."""


def _derive(secret: bytes, salt: bytes, info: bytes, length: int = 32) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(secret)


class Crypto:
    """Chunk-id hashing and (optional) authenticated encryption for one vault."""

    def __init__(self, secret: bytes | None, salt: bytes) -> None:
        if secret is not None and len(secret) < MIN_SECRET_SIZE:
            raise ValueError(f"encryption key must be at least {MIN_SECRET_SIZE} bytes")
        self.encrypted = secret is not None
        self._args = (secret, salt)
        self._random = threading.local()
        self._aead: AESGCM | None = None
        self._id_key: bytes | None = None
        self.cdc_seed = 0
        if secret is not None:
            self._aead = AESGCM(_derive(secret, salt, b"kbc datamover v1 data"))
            self._id_key = _derive(secret, salt, b"kbc datamover v1 chunk-id")
            # pyfastcdc shifts the seed left by one into a uint64 (so < 2**63), and ignores seed 0.
            seed = int.from_bytes(_derive(secret, salt, b"kbc datamover v1 cdc", 8), "little")
            self.cdc_seed = seed >> 1 | 1

    def hasher(self, *, threads: bool = False) -> blake3.blake3:
        """A fresh hasher producing chunk ids / file digests (keyed when encrypted).

        One thread by default: parallelism comes from hashing many chunks at once. ``threads``
        hashes each big update on every core (the same digest), for one big file hashed alone."""
        max_threads = blake3.blake3.AUTO if threads else 1
        if self._id_key is not None:
            return blake3.blake3(key=self._id_key, max_threads=max_threads)
        return blake3.blake3(max_threads=max_threads)

    def chunk_id(self, data: bytes | memoryview) -> bytes:
        if self._id_key is not None:
            return blake3.blake3(data, key=self._id_key).digest()
        return blake3.blake3(data).digest()

    def seal(self, plaintext: bytes | memoryview, aad: bytes) -> bytes:
        """nonce || ciphertext || tag; the identity when not encrypted."""
        if self._aead is None:
            return bytes(plaintext)
        # Random 96-bit nonces: safe for far more objects than a vault will hold (< 2^32 per key).
        nonce = self._nonce()
        return nonce + self._aead.encrypt(nonce, plaintext, aad)

    def _nonce(self) -> bytes:
        # One getrandom() call per 512 nonces instead of one per blob (small files add up).
        local = self._random
        pool: bytes | None = getattr(local, "pool", None)
        pos: int = getattr(local, "pos", 0)
        if pool is None or pos >= len(pool):
            pool, pos = os.urandom(NONCE_SIZE * 512), 0
            local.pool = pool
        local.pos = pos + NONCE_SIZE
        return pool[pos:pos + NONCE_SIZE]

    def open(self, sealed: bytes | memoryview, aad: bytes) -> bytes:
        if self._aead is None:
            return bytes(sealed)
        if len(sealed) < SEAL_OVERHEAD:
            raise SealError("sealed data too short")
        view = memoryview(sealed)
        try:
            return self._aead.decrypt(view[:NONCE_SIZE], view[NONCE_SIZE:], aad)
        except InvalidTag:
            raise SealError("authentication failed") from None

    def __reduce__(self) -> tuple[type[Crypto], tuple[bytes | None, bytes]]:
        # For the backup's reader processes (a local pipe): they derive the same keys.
        return Crypto, self._args

    @property
    def overhead(self) -> int:
        return SEAL_OVERHEAD if self._aead is not None else 0
