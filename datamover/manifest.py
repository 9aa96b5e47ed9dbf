"""Snapshot manifests: the file list of one volume backup, streamed to ``data/snapshots/<id>``.

Object layout::

    "KBCSNAP1" || frame* || footer-frame || u64 footer offset || "KBCSEND1"
    frame = u32 length || seal(zstd(JSON array of objects))

The first object of the first frame is the header (volume, parent, creation time); then one JSON
object per tree entry, in walk order (depth first, names sorted, see ``path_key``); the footer
frame holds the snapshot summary so it can be read with two range reads.  Frames are built and
written one at a time to a temporary file, so a huge tree never sits in memory, and each frame
is sealed with its position as associated data, so frames cannot be reordered or swapped.

Entry fields (short names keep big manifests small):
    p path (relative, '/'-separated, "." for the root)  t type: d dir, f file, l symlink, h hard link
    m permission bits  u uid  g gid  mt/at mtime/atime ns
    f only: s size, i inode, ct ctime ns, c [[chunk id hex, length], ...], h content digest hex,
            x 1 when the file changed while it was read (never reused as an incremental parent)
    l/h: lt link target (for h: the path of the first link, earlier in the manifest)
"""

from __future__ import annotations

import json
import struct
import tempfile
from collections.abc import Iterator
from typing import Any, BinaryIO, cast

import zstandard

from vault.store import ObjectStore

from .crypto import Crypto, SealError
from .errors import DataCorrupt, SnapshotNotFound, store_errors
from .repo import snapshot_key

_MAGIC = b"KBCSNAP1"
_END = struct.Struct("<Q8s")
_END_MAGIC = b"KBCSEND1"
_FRAME = struct.Struct("<I")
# Entries per frame: one json.dumps/loads per frame instead of per entry is most of the speed of
# incremental runs; a frame of plain entries is a few MiB of Python objects at most.
FRAME_ENTRIES = 4096
FRAME_CHUNK_REFS = 65536

Entry = dict[str, Any]


def _tempfile() -> BinaryIO:
    # Closed by the owner's close(); a context manager cannot span the object's life.
    return cast(BinaryIO, tempfile.TemporaryFile(prefix="kbc-manifest-"))


def path_key(path: str) -> tuple[str, ...]:
    """Sort key matching the walk order: components compare one by one ("a/b" < "a.txt")."""
    return () if path == "." else tuple(path.split("/"))


_ENCODER = json.JSONEncoder(separators=(",", ":"), check_circular=False)


def _aad(snapshot_id: str, frame: int | str) -> bytes:
    return f"kbc snapshot {snapshot_id} frame {frame}".encode()


class ManifestWriter:
    def __init__(self, crypto: Crypto, snapshot_id: str, header: dict[str, Any], *, level: int = 3) -> None:
        self.crypto = crypto
        self.snapshot_id = snapshot_id
        self.file = _tempfile()
        self.file.write(_MAGIC)
        self._cctx = zstandard.ZstdCompressor(level=level)
        self._entries: list[Entry] = []
        self._refs = 0
        self._frames = 0
        self.add(header)

    def add(self, entry: Entry) -> None:
        self._entries.append(entry)
        chunks = entry.get("c")
        if chunks:
            self._refs += len(chunks)
        if len(self._entries) >= FRAME_ENTRIES or self._refs >= FRAME_CHUNK_REFS:
            self._flush()

    def _write_frame(self, raw: bytes, aad: bytes) -> None:
        payload = self.crypto.seal(self._cctx.compress(raw), aad)
        self.file.write(_FRAME.pack(len(payload)))
        self.file.write(payload)

    def _flush(self) -> None:
        if not self._entries:
            return
        raw = _ENCODER.encode(self._entries).encode()
        self._write_frame(raw, _aad(self.snapshot_id, self._frames))
        self._frames += 1
        self._entries = []
        self._refs = 0

    def finish(self, footer: dict[str, Any]) -> tuple[BinaryIO, int]:
        """The complete object (file positioned at 0) and its size."""
        self._flush()
        footer_offset = self.file.tell()
        self._write_frame(_ENCODER.encode(footer).encode(), _aad(self.snapshot_id, "footer"))
        self.file.write(_END.pack(footer_offset, _END_MAGIC))
        size = self.file.tell()
        self.file.seek(0)
        return self.file, size

    def close(self) -> None:
        self.file.close()


def _corrupt(key: str, what: str) -> DataCorrupt:
    return DataCorrupt(f"vault object {key} is corrupted: {what}", key=key)


class ManifestReader:
    """Downloads a manifest to a temporary file and iterates its entries lazily."""

    def __init__(self, store: ObjectStore, crypto: Crypto, snapshot_id: str) -> None:
        self.key = snapshot_key(snapshot_id)
        self.snapshot_id = snapshot_id
        self.crypto = crypto
        self._dctx = zstandard.ZstdDecompressor()
        self.file = _tempfile()
        try:
            with store_errors(self.key, missing=SnapshotNotFound, what=f"snapshot {snapshot_id}"):
                store.get_stream(self.key, self.file)
        except BaseException:
            self.file.close()
            raise
        self.size = self.file.tell()
        self.file.seek(self.size - _END.size)
        self.footer_offset, magic = _END.unpack(self.file.read(_END.size))
        self.file.seek(0)
        if self.file.read(len(_MAGIC)) != _MAGIC or magic != _END_MAGIC or self.footer_offset >= self.size:
            self.file.close()
            raise _corrupt(self.key, "not a snapshot manifest")
        self._entries = self._iter_entries()
        header = next(self._entries, None)
        if header is None:
            raise _corrupt(self.key, "no header")
        self.header: Entry = header

    def _decode(self, payload: bytes, aad: bytes) -> bytes:
        try:
            return self._dctx.decompress(self.crypto.open(payload, aad))
        except (SealError, zstandard.ZstdError) as exc:
            raise _corrupt(self.key, f"frame does not decode ({exc})") from None

    def _iter_entries(self) -> Iterator[Entry]:
        pos = len(_MAGIC)
        frame = 0
        while pos < self.footer_offset:
            self.file.seek(pos)
            (length,) = _FRAME.unpack(self.file.read(_FRAME.size))
            payload = self.file.read(length)
            if len(payload) != length:
                raise _corrupt(self.key, "truncated frame")
            pos += _FRAME.size + length
            raw = self._decode(payload, _aad(self.snapshot_id, frame))
            frame += 1
            try:
                entries = json.loads(raw)
            except ValueError as exc:
                raise _corrupt(self.key, f"frame is not JSON ({exc})") from None
            yield from entries

    def entries(self) -> Iterator[Entry]:
        """The tree entries, in walk order (consumes the reader: iterate once)."""
        return self._entries

    def footer(self) -> dict[str, Any]:
        self.file.seek(self.footer_offset)
        (length,) = _FRAME.unpack(self.file.read(_FRAME.size))
        raw = self._decode(self.file.read(length), _aad(self.snapshot_id, "footer"))
        result: dict[str, Any] = json.loads(raw)
        return result

    def close(self) -> None:
        self.file.close()

    def __enter__(self) -> ManifestReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_footer(store: ObjectStore, crypto: Crypto, snapshot_id: str) -> dict[str, Any]:
    """The summary stored with a snapshot, with range reads only."""
    key = snapshot_key(snapshot_id)
    with store_errors(key, missing=SnapshotNotFound, what=f"snapshot {snapshot_id}"):
        size = store.head(key).size
        offset, magic = _END.unpack(store.get(key, start=size - _END.size, end=size - 1))
        if magic != _END_MAGIC or offset + _FRAME.size > size - _END.size:
            raise _corrupt(key, "not a snapshot manifest")
        frame = store.get(key, start=offset, end=size - _END.size - 1)
    (length,) = _FRAME.unpack_from(frame, 0)
    try:
        raw = zstandard.ZstdDecompressor().decompress(
            crypto.open(frame[_FRAME.size:_FRAME.size + length], _aad(snapshot_id, "footer"))
        )
    except (SealError, zstandard.ZstdError) as exc:
        raise _corrupt(key, f"footer does not decode ({exc})") from None
    result: dict[str, Any] = json.loads(raw)
    return result
