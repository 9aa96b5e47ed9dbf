"""Packs: many chunks stored as one vault object.

A pack is ``blob* || sealed-index || u32 len(sealed-index) || "KBCPACK1"``.  A blob is one chunk,
zstd-compressed when that makes it smaller, then sealed (AES-256-GCM with the chunk id as
associated data, so a blob cannot be passed off as another chunk).  The index lists
``(chunk id, offset, stored length, plain length, flags)`` for every blob; the same sealed bytes
are also written as ``data/index/<xx>/<pack-id>`` so the chunk index loads without reading packs.
The trailer copy lets a pack whose index object was never written (a crash between the two
puts) be re-indexed from the pack itself.

The pack id is the blake3 of the pack's bytes, so packs are content-addressed and written
put-if-absent.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import blake3
import zstandard

from vault.store import ObjectStore

from .crypto import Crypto, SealError
from .errors import DataCorrupt, store_errors

FLAG_ZSTD = 1

_ENTRY = struct.Struct("<32sQIIB")  # chunk id, offset, stored length, plain length, flags
_INDEX_HEADER = struct.Struct("<8sI")  # magic, entry count
_INDEX_MAGIC = b"KBCIDX1\0"
_TRAILER = struct.Struct("<I8s")  # sealed index length, magic
_PACK_MAGIC = b"KBCPACK1"
_INDEX_AAD = b"kbc pack index v1"

# Store compressed only when it saves at least this fraction: decompressing costs time on
# restore and near-random data gains nothing.
_MIN_SAVING = 1 / 32


@dataclass(slots=True, frozen=True)
class BlobEntry:
    chunk_id: bytes
    offset: int
    length: int
    raw_len: int
    flags: int


def encode_blob(crypto: Crypto, cctx: zstandard.ZstdCompressor, chunk_id: bytes,
                data: bytes | memoryview) -> tuple[bytes, int]:
    """(stored bytes, flags) for one chunk."""
    flags = 0
    payload: bytes | memoryview = data
    compressed = cctx.compress(data)
    if len(compressed) <= len(data) * (1 - _MIN_SAVING):
        payload, flags = compressed, FLAG_ZSTD
    return crypto.seal(payload, chunk_id), flags


def decode_blob(crypto: Crypto, dctx: zstandard.ZstdDecompressor, entry: BlobEntry,
                stored: bytes | memoryview, *, object_key: str) -> bytes:
    """Plain chunk bytes, verified against the chunk id; DataCorrupt names ``object_key``."""
    cid_hex = entry.chunk_id.hex()
    try:
        payload = crypto.open(stored, entry.chunk_id)
    except SealError:
        raise DataCorrupt(
            f"vault object {object_key} is corrupted: chunk {cid_hex} fails authentication", key=object_key
        ) from None
    if entry.flags & FLAG_ZSTD:
        try:
            data = dctx.decompress(payload, max_output_size=entry.raw_len)
        except zstandard.ZstdError as exc:
            raise DataCorrupt(
                f"vault object {object_key} is corrupted: chunk {cid_hex} does not decompress ({exc})",
                key=object_key,
            ) from None
    else:
        data = bytes(payload)
    if len(data) != entry.raw_len or crypto.chunk_id(data) != entry.chunk_id:
        raise DataCorrupt(
            f"vault object {object_key} is corrupted: chunk {cid_hex} does not match its digest",
            key=object_key,
        )
    return data


def encode_index(crypto: Crypto, entries: list[BlobEntry]) -> bytes:
    parts = [_INDEX_HEADER.pack(_INDEX_MAGIC, len(entries))]
    parts.extend(_ENTRY.pack(e.chunk_id, e.offset, e.length, e.raw_len, e.flags) for e in entries)
    return crypto.seal(b"".join(parts), _INDEX_AAD)


def open_index(crypto: Crypto, sealed: bytes, *, object_key: str) -> bytes:
    """A pack index's entry table (``entry_count`` fixed-size entries), authenticated and checked."""
    try:
        raw = crypto.open(sealed, _INDEX_AAD)
        magic, count = _INDEX_HEADER.unpack_from(raw, 0)
        if magic != _INDEX_MAGIC or len(raw) != _INDEX_HEADER.size + count * _ENTRY.size:
            raise ValueError("bad header")
    except (SealError, ValueError, struct.error) as exc:
        raise DataCorrupt(
            f"vault object {object_key} is corrupted: bad pack index ({exc})", key=object_key
        ) from None
    return raw[_INDEX_HEADER.size:]


def table_ids(table: bytes) -> list[bytes]:
    """The chunk ids of an entry table, in order."""
    size = _ENTRY.size
    return [table[o:o + 32] for o in range(0, len(table), size)]


def table_entry(table: bytes, i: int) -> BlobEntry:
    return BlobEntry(*_ENTRY.unpack_from(table, i * _ENTRY.size))


def decode_index(crypto: Crypto, sealed: bytes, *, object_key: str) -> list[BlobEntry]:
    table = open_index(crypto, sealed, object_key=object_key)
    return [BlobEntry(*fields) for fields in _ENTRY.iter_unpack(table)]


class PackBuilder:
    """Accumulates blobs in memory until the pack is big enough to upload."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.entries: list[BlobEntry] = []
        self.size = 0
        self.raw_size = 0

    def add(self, chunk_id: bytes, blob: bytes, raw_len: int, flags: int) -> None:
        self.entries.append(BlobEntry(chunk_id, self.size, len(blob), raw_len, flags))
        self.parts.append(blob)
        self.size += len(blob)
        self.raw_size += raw_len

    def finish(self, crypto: Crypto) -> tuple[str, bytes, bytes]:
        """(pack id, pack bytes, sealed index).  Releases the blob buffers."""
        sealed_index = encode_index(crypto, self.entries)
        self.parts.append(sealed_index)
        self.parts.append(_TRAILER.pack(len(sealed_index), _PACK_MAGIC))
        data = b"".join(self.parts)
        self.parts = []
        return blake3.blake3(data).hexdigest(), data, sealed_index


def read_pack_index(store: ObjectStore, crypto: Crypto, key: str) -> tuple[bytes, list[BlobEntry]]:
    """Re-read a pack's index from its trailer (for packs whose index object is missing)."""
    with store_errors(key):
        size = store.head(key).size
        if size < _TRAILER.size:
            raise DataCorrupt(f"vault object {key} is corrupted: too short for a pack", key=key)
        length, magic = _TRAILER.unpack(store.get(key, start=size - _TRAILER.size, end=size - 1))
        if magic != _PACK_MAGIC or length > size - _TRAILER.size:
            raise DataCorrupt(f"vault object {key} is corrupted: bad pack trailer", key=key)
        start = size - _TRAILER.size - length
        sealed = store.get(key, start=start, end=size - _TRAILER.size - 1)
    return sealed, decode_index(crypto, sealed, object_key=key)
