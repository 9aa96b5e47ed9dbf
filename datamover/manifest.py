"""Snapshot manifests: the file list of one volume backup, streamed to ``data/snapshots/<id>``.

Object layout::

    magic || frame* || footer-frame || u64 footer offset || "KBCSEND1"
    frame = u32 length || seal(zstd(frame body))

The first element of the first frame is the header (a map: volume, parent, creation time); then
one element per tree entry, in walk order (depth first, names sorted, see ``path_key``); the
footer frame (JSON in both versions) holds the snapshot summary so it can be read with two range
reads.  Frames are built and written one at a time to a temporary file, so a huge tree never
sits in memory, and each frame is sealed with its position as associated data, so frames cannot
be reordered or swapped.

Version 2 (magic "KBCSNAP2", written now): a frame body is a msgpack array of rows, one tuple per
entry with its fields by position; decoding a row costs a fraction of a JSON object, which is most
of an incremental run over a tree of small files.  Row layouts, by type (second field):

    common   (p, t, m, u, g, mt, at)
    d        common
    l, h     common + (lt,)
    f        common + (s, i, ct, c, h, x)   c: ((chunk id bytes, length), ...), h: digest bytes

Version 1 (magic "KBCSNAP1", still read): a frame body is a JSON array of objects with the same
short names, chunk ids and digests in hex.  ``entries()`` gives every consumer (restore, check,
gc) entries of the version-1 shape whatever the object's version; the backup's parent cursor reads
``row_frames()``.

Field names:
    p path (relative, '/'-separated, "." for the root)  t type: d dir, f file, l symlink, h hard link
    m permission bits  u uid  g gid  mt/at mtime/atime ns
    f only: s size, i inode, ct ctime ns, c chunks [[id, length], ...], h content digest,
            x 1 when the file changed while it was read (never reused as an incremental parent)
    l/h: lt link target (for h: the path of the first link, earlier in the manifest)
"""

from __future__ import annotations

import json
import struct
import tempfile
from collections.abc import Iterator, Sequence
from typing import Any, BinaryIO, cast

import msgpack
import zstandard

from vault.store import ObjectStore

from .crypto import Crypto, SealError
from .errors import DataCorrupt, SnapshotNotFound, store_errors
from .repo import snapshot_key

_MAGIC_V1 = b"KBCSNAP1"
_MAGIC_V2 = b"KBCSNAP2"
_END = struct.Struct("<Q8s")
_END_MAGIC = b"KBCSEND1"
_FRAME = struct.Struct("<I")
# Entries per frame: one encode/decode call per frame instead of per entry; a frame of plain
# entries is a few MiB of Python objects at most.
FRAME_ENTRIES = 4096
FRAME_CHUNK_REFS = 65536

Entry = dict[str, Any]
Row = tuple[Any, ...]

_COMMON = ("p", "t", "m", "u", "g", "mt", "at")
# Positions of the fields a backup reads from a file row.
R_PATH, R_TYPE, R_MTIME = 0, 1, 5
R_SIZE, R_INODE, R_CTIME, R_CHUNKS, R_DIGEST, R_CHANGED = 7, 8, 9, 10, 11, 12
_FILE_ROW = 13
_ROW_MIN = len(_COMMON)


def _tempfile() -> BinaryIO:
    # Closed by the owner's close(); a context manager cannot span the object's life.
    return cast(BinaryIO, tempfile.TemporaryFile(prefix="kbc-manifest-"))


def path_key(path: str) -> tuple[str, ...]:
    """Sort key matching the walk order: components compare one by one ("a/b" < "a.txt")."""
    return () if path == "." else tuple(path.split("/"))


_ENCODER = json.JSONEncoder(separators=(",", ":"), check_circular=False)


def _aad(snapshot_id: str, frame: int | str) -> bytes:
    return f"kbc snapshot {snapshot_id} frame {frame}".encode()


def _aad_v2(snapshot_id: str, frame: int) -> bytes:
    return f"kbc snapshot v2 {snapshot_id} frame {frame}".encode()


def _array_header(count: int) -> bytes:
    """msgpack's array header for ``count`` elements."""
    if count < 16:
        return bytes((0x90 | count,))
    if count < 1 << 16:
        return b"\xdc" + count.to_bytes(2, "big")
    return b"\xdd" + count.to_bytes(4, "big")


def entry_to_row(entry: Entry) -> Row:
    """The version-2 row of a version-1 shaped entry (hex chunk ids and digest)."""
    common = tuple(entry[k] for k in _COMMON)
    kind = entry["t"]
    if kind == "f":
        chunks = tuple((bytes.fromhex(c[0]), c[1]) for c in entry["c"])
        return (*common, entry["s"], entry["i"], entry["ct"], chunks, bytes.fromhex(entry["h"]),
                int(entry.get("x", 0)))
    if kind in ("l", "h"):
        return (*common, entry["lt"])
    return common


def row_to_entry(row: Row) -> Entry:
    """The version-1 shaped entry of a row (what restore, check and gc read)."""
    if len(row) < _ROW_MIN:
        raise ValueError("too few fields")
    entry = dict(zip(_COMMON, row, strict=False))
    kind = row[R_TYPE]
    if kind == "f":
        entry.update(s=row[7], i=row[8], ct=row[9], c=[[c[0].hex(), c[1]] for c in row[10]], h=row[11].hex())
        if row[12]:
            entry["x"] = 1
    elif kind in ("l", "h"):
        entry["lt"] = row[7]
    return entry


class ManifestWriter:
    """Writes a version-2 manifest (``version=1`` writes the old format, for compatibility tests)."""

    def __init__(self, crypto: Crypto, snapshot_id: str, header: dict[str, Any], *, level: int = 3,
                 version: int = 2) -> None:
        self.crypto = crypto
        self.snapshot_id = snapshot_id
        self.version = version
        self.file = _tempfile()
        self.file.write(_MAGIC_V2 if version == 2 else _MAGIC_V1)
        self._cctx = zstandard.ZstdCompressor(level=level)
        # surrogateescape: paths that are not UTF-8 arrive from os as lone surrogates and must
        # round-trip to the same bytes.
        self._packer = msgpack.Packer(unicode_errors="surrogateescape")
        self._items: list[Any] = [header]
        # Elements of the frame already encoded (add_raw), ahead of _items, and how many they are.
        self._parts: list[bytes] = []
        self._encoded = 0
        self._refs = 0
        self._frames = 0

    def add(self, entry: Entry) -> None:
        """Adds an entry of the version-1 shape."""
        if self.version == 2:
            self.add_row(entry_to_row(entry))
            return
        self._items.append(entry)
        self._refs += len(entry.get("c") or ())
        if len(self._items) >= FRAME_ENTRIES or self._refs >= FRAME_CHUNK_REFS:
            self._flush()

    def add_row(self, row: Row) -> None:
        items = self._items
        items.append(row)
        if len(row) == _FILE_ROW:
            self._refs += len(row[R_CHUNKS])
        if len(items) + self._encoded >= FRAME_ENTRIES or self._refs >= FRAME_CHUNK_REFS:
            self._flush()

    def add_raw(self, rows: bytes, count: int, chunk_refs: int) -> None:
        """``count`` rows already encoded (msgpack elements, one after the other), in walk order
        after those added before: the native scan's (native/fastwalk/src/scan.rs)."""
        if self.version != 2:
            raise ValueError("encoded rows go into version-2 manifests only")
        if self._items:
            self._parts.append(b"".join(map(self._packer.pack, self._items)))
            self._encoded += len(self._items)
            self._items = []
        self._parts.append(rows)
        self._encoded += count
        self._refs += chunk_refs
        if self._encoded >= FRAME_ENTRIES or self._refs >= FRAME_CHUNK_REFS:
            self._flush()

    def _write_frame(self, raw: bytes, aad: bytes) -> None:
        payload = self.crypto.seal(self._cctx.compress(raw), aad)
        self.file.write(_FRAME.pack(len(payload)))
        self.file.write(payload)

    def _flush(self) -> None:
        if not self._items and not self._parts:
            return
        if self.version == 2:
            if self._parts:
                rest = b"".join(map(self._packer.pack, self._items))
                raw = _array_header(self._encoded + len(self._items)) + b"".join(self._parts) + rest
                self._parts = []
                self._encoded = 0
            else:
                raw = self._packer.pack(self._items)
            aad = _aad_v2(self.snapshot_id, self._frames)
        else:
            raw = _ENCODER.encode(self._items).encode()
            aad = _aad(self.snapshot_id, self._frames)
        self._write_frame(raw, aad)
        self._frames += 1
        self._items = []
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
            self.size = self.file.tell()
            if self.size < len(_MAGIC_V1) + _END.size:
                raise _corrupt(self.key, "not a snapshot manifest")
            self.file.seek(self.size - _END.size)
            self.footer_offset, magic = _END.unpack(self.file.read(_END.size))
            self.file.seek(0)
            head = self.file.read(len(_MAGIC_V1))
            if head not in (_MAGIC_V1, _MAGIC_V2) or magic != _END_MAGIC or self.footer_offset >= self.size:
                raise _corrupt(self.key, "not a snapshot manifest")
            self.version = 2 if head == _MAGIC_V2 else 1
            self._raw = self._raw_frames()
            first_raw = next(self._raw, None)
            first = self._parse(first_raw) if first_raw is not None else None
            if not first or not isinstance(first[0], dict):
                raise _corrupt(self.key, "no header")
        except BaseException:
            self.file.close()
            raise
        self.header: Entry = first[0]
        self._first = first[1:]
        self._first_raw: bytes | None = first_raw
        self._frames = (self._parse(raw) for raw in self._raw)

    def _decode(self, payload: bytes, aad: bytes) -> bytes:
        try:
            return self._dctx.decompress(self.crypto.open(payload, aad))
        except (SealError, zstandard.ZstdError) as exc:
            raise _corrupt(self.key, f"frame does not decode ({exc})") from None

    def _raw_frames(self) -> Iterator[bytes]:
        """Each frame's body, opened and decompressed (the header is the first element of the first)."""
        pos = len(_MAGIC_V1)
        frame = 0
        aad = _aad_v2 if self.version == 2 else _aad
        while pos < self.footer_offset:
            self.file.seek(pos)
            (length,) = _FRAME.unpack(self.file.read(_FRAME.size))
            payload = self.file.read(length)
            if len(payload) != length:
                raise _corrupt(self.key, "truncated frame")
            pos += _FRAME.size + length
            raw = self._decode(payload, aad(self.snapshot_id, frame))
            frame += 1
            yield raw

    def _parse(self, raw: bytes) -> Sequence[Any]:
        """A frame's elements."""
        try:
            if self.version == 2:
                items = msgpack.unpackb(raw, use_list=False, unicode_errors="surrogateescape")
            else:
                items = json.loads(raw)
        except ValueError as exc:
            raise _corrupt(self.key, f"frame does not parse ({exc})") from None
        if not isinstance(items, (list, tuple)):
            raise _corrupt(self.key, "frame is not a list of entries")
        return cast(Sequence[Any], items)

    def raw_row_frames(self) -> Iterator[bytes]:
        """Version 2: each frame's msgpack body as written, the first one beginning with the header
        (what the native scan of an incremental backup reads; consumes the reader)."""
        if self.version != 2:
            raise ValueError(f"snapshot {self.snapshot_id} is a version-{self.version} manifest")
        if self._first_raw is not None:
            first, self._first_raw = self._first_raw, None
            yield first
        yield from self._raw

    def corrupt(self, what: str) -> DataCorrupt:
        """The error naming this manifest's vault object as corrupted."""
        return _corrupt(self.key, what)

    def _entry_frames(self) -> Iterator[Sequence[Any]]:
        yield self._first
        yield from self._frames

    def entries(self) -> Iterator[Entry]:
        """The tree entries as version-1 shaped dicts, in walk order (consumes the reader)."""
        for items in self._entry_frames():
            if self.version == 1:
                yield from items
            else:
                for item in items:
                    yield self._convert(item, row_to_entry)

    def row_frames(self) -> Iterator[Sequence[Row]]:
        """The tree entries as rows, a frame at a time, in walk order (consumes the reader)."""
        for items in self._entry_frames():
            if self.version == 1:
                yield [self._convert(item, entry_to_row) for item in items]
                continue
            for row in items:
                # What the backup's parent cursor relies on; the rest is checked where it is used.
                if type(row) is not tuple or len(row) < _ROW_MIN or type(row[R_PATH]) is not str or (
                    row[R_TYPE] == "f" and len(row) != _FILE_ROW
                ):
                    raise _corrupt(self.key, f"malformed entry {str(row)[:80]}")
            yield items

    def _convert(self, item: Any, convert: Any) -> Any:
        try:
            return convert(item)
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            raise _corrupt(self.key, f"malformed entry {str(item)[:80]} ({type(exc).__name__})") from None

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
    """The summary stored with a snapshot, with range reads only (the same in both versions)."""
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
